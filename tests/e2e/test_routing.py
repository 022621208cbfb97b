"""Load balancing, retries, fallbacks and cooldowns, proven by what each stand-in received."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway, launch_stand_in, wait_for

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "route me"}]
CONTEXT_TOO_LONG = {"error": {"message": "This model's maximum context length is 4097 tokens.",
                              "type": "invalid_request_error", "param": "messages",
                              "code": "context_length_exceeded"}}


def routing_config(a: str, b: str, dead_port: int) -> str:
    def deployment(name, base, model, extra=""):
        return (f"  - model_name: {name}\n    litellm_params:\n      model: openai/{model}\n"
                f"      api_base: {base}/v1\n      api_key: os.environ/E2E_UPSTREAM_KEY\n{extra}")

    dead = f"http://127.0.0.1:{dead_port}"
    return "model_list:\n" + "".join([
        deployment("balanced", a, "balanced-a", "      rpm: 300\n"),
        deployment("balanced", b, "balanced-b", "      rpm: 100\n"),
        deployment("single", a, "single"),
        deployment("half-dead", dead, "dead"),
        deployment("half-dead", b, "alive"),
        deployment("cooling", a, "cooling-a", "      weight: 1000\n"),
        deployment("cooling", b, "cooling-b", "      weight: 1\n"),
        deployment("primary", a, "primary"),
        deployment("backup", b, "backup"),
        deployment("small-context", a, "small-context"),
        deployment("big-context", b, "big-context"),
    ]) + f"""general_settings:
  master_key: {MASTER_KEY}
router_settings:
  num_retries: 1
  allowed_fails: 0
  cooldown_time: 1
  fallbacks: [{{"primary": ["backup"]}}]
  context_window_fallbacks: [{{"small-context": ["big-context"]}}]
"""


@pytest.fixture(scope="module")
def stand_ins(e2e_dir):
    with launch_stand_in(e2e_dir, "routing-a") as a, launch_stand_in(e2e_dir, "routing-b") as b:
        yield a, b


@pytest.fixture(scope="module")
def routing_gateway(e2e_dir, stand_ins):
    from tests.servers.process import free_port

    a, b = stand_ins
    with launch_gateway(e2e_dir, routing_config(a.base_url, b.base_url, free_port()), name="routing") as live:
        yield live


@pytest.fixture
def a_b(stand_ins):
    for stand_in in stand_ins:
        stand_in.reset()
        stand_in.clear()
    yield stand_ins
    for stand_in in stand_ins:
        stand_in.reset()


def models_seen(stand_in) -> list[str]:
    return [r["body"]["model"] for r in stand_in.requests()]


def chat(gateway, model, **kwargs):
    return gateway.admin("POST", "/chat/completions", json={"model": model, "messages": MESSAGES, **kwargs})


def test_simple_shuffle_spreads_load_by_rpm_weight(routing_gateway, a_b):
    a, b = a_b
    for _ in range(200):
        assert chat(routing_gateway, "balanced").status_code == 200

    share_a = len(a.requests()) / 200
    # rpm 300 vs 100: A should take about 75%; 200 draws keep it well inside these bounds.
    assert 0.6 < share_a < 0.9
    assert len(a.requests()) + len(b.requests()) == 200


def test_a_failed_call_is_retried_on_the_same_lone_deployment(routing_gateway, a_b):
    a, _ = a_b
    a.behave(status=500, times=1)

    response = chat(routing_gateway, "single")

    assert response.status_code == 200
    assert response.headers["x-litellm-attempted-retries"] == "1"
    assert models_seen(a) == ["single", "single"]


def test_retries_stop_after_num_retries(routing_gateway, a_b):
    a, _ = a_b
    a.behave(status=503, times=5)

    response = chat(routing_gateway, "single")

    assert response.status_code == 503
    assert len(a.requests()) == 2  # the call and one retry


def test_a_client_error_is_not_retried(routing_gateway, a_b):
    a, _ = a_b
    a.behave(status=400, times=1)

    assert chat(routing_gateway, "single").status_code == 400
    assert len(a.requests()) == 1


def test_a_retry_goes_to_a_deployment_not_yet_tried(routing_gateway, a_b):
    _, b = a_b

    for _ in range(10):
        assert chat(routing_gateway, "half-dead").status_code == 200

    assert models_seen(b) == ["alive"] * 10


def test_a_failing_deployment_cools_down_then_comes_back(routing_gateway, a_b):
    a, b = a_b
    a.behave(status=500, times=1000)

    assert chat(routing_gateway, "cooling").status_code == 200  # A failed, cooled down; B answered
    failures_on_a = len(a.requests())
    for _ in range(5):
        assert chat(routing_gateway, "cooling").status_code == 200
    assert len(a.requests()) == failures_on_a == 1  # skipped while cooling down
    assert models_seen(b) == ["cooling-b"] * 6

    a.reset()
    a.clear()
    wait_for(lambda: chat(routing_gateway, "cooling").status_code == 200 and "cooling-a" in models_seen(a),
             timeout=5, interval=0.1)


def test_fallback_to_another_group_when_the_group_fails(routing_gateway, a_b):
    a, b = a_b
    a.behave(status=503, times=2)

    response = chat(routing_gateway, "primary")

    assert response.status_code == 200
    assert response.json()["model"] == "primary"
    assert response.headers["x-litellm-attempted-fallbacks"] == "1"
    assert models_seen(a) == ["primary", "primary"] and models_seen(b) == ["backup"]
    row = routing_gateway.spend_row(response.json()["id"])
    assert row["model_group"] == "primary" and row["model"] == "backup"
    assert row["metadata"]["fallback_model_group"] == "backup"


def test_a_prompt_too_long_falls_back_to_the_context_window_fallback(routing_gateway, a_b):
    a, b = a_b
    a.behave(status=400, times=1, body=CONTEXT_TOO_LONG)

    response = chat(routing_gateway, "small-context")

    assert response.status_code == 200
    assert models_seen(a) == ["small-context"] and models_seen(b) == ["big-context"]


def test_a_stream_fails_over_before_its_first_byte(routing_gateway, a_b):
    a, b = a_b
    a.behave(status=503, times=2)

    raw = routing_gateway.sdk().chat.completions.with_raw_response.create(model="primary", messages=MESSAGES,
                                                                          stream=True)
    chunks = list(raw.parse())

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the stand-in upstream."
    assert models_seen(b) == ["backup"]
    # The answer's headers name the attempt that answered.
    assert (raw.headers["x-litellm-attempted-retries"], raw.headers["x-litellm-attempted-fallbacks"]) == ("1", "1")
    deployments = routing_gateway.admin("GET", "/model/info").json()["data"]
    assert raw.headers["x-litellm-model-id"] == next(d["model_info"]["id"] for d in deployments
                                                     if d["model_name"] == "backup")


def test_every_deployment_cooling_down_is_a_429_with_retry_after(routing_gateway, a_b):
    a, b = a_b
    a.behave(status=500, times=1000)
    b.behave(status=500, times=1000)

    response = chat(routing_gateway, "cooling")  # A fails and cools down, the retry on B fails too
    assert response.status_code == 500
    response = chat(routing_gateway, "cooling")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert "cooling down" in response.json()["error"]["message"]
