"""/metrics against live gateways: two workers whose counts must add up exactly, and a single worker
serving the page without a key (``require_auth_for_metrics_endpoint: false``)."""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx2
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import MASTER_KEY, launch_gateway, wait_for

pytestmark = pytest.mark.e2e

PRICE_IN, PRICE_OUT = 0.0001, 0.0002
REDIS_URL = "redis://127.0.0.1:6379/10"


def metrics_config(upstream_base: str, *, require_auth: bool = True) -> str:
    return f"""
model_list:
  - model_name: metered
    litellm_params:
      model: openai/house-model
      api_base: {upstream_base}/v1
      api_key: os.environ/E2E_UPSTREAM_KEY
      input_cost_per_token: {PRICE_IN}
      output_cost_per_token: {PRICE_OUT}
litellm_settings:
  callbacks: ["prometheus"]
  require_auth_for_metrics_endpoint: {"true" if require_auth else "false"}
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture(scope="module")
def multiproc_dir(e2e_dir):
    path = e2e_dir / "metrics-multiproc"
    path.mkdir(exist_ok=True)
    # Left by a "previous run": the gateway must empty the directory, or the scrape would choke on it.
    (path / "counter_999999.db").write_bytes(b"not a metrics file")
    return path


@pytest.fixture(scope="module")
def two_workers(e2e_dir, upstream, multiproc_dir):
    # Shared counters (Redis), as several workers need for budgets: the remaining-budget gauge is then exact.
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir), "REDIS_URL": REDIS_URL,
           "GATEWAY_REDIS_PREFIX": f"metrics-{uuid.uuid4().hex}:"}
    with launch_gateway(e2e_dir, metrics_config(upstream.base_url), name="metrics-2w", workers=2, env=env) as live:
        yield live


@pytest.fixture(scope="module")
def open_metrics(e2e_dir, upstream):
    with launch_gateway(e2e_dir, metrics_config(upstream.base_url, require_auth=False), name="metrics-open") as live:
        yield live


def scrape(base_url: str, **headers: str) -> dict[str, list]:
    response = httpx2.get(f"{base_url}/metrics/", headers=headers, trust_env=False, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def total(samples: dict[str, list], name: str, match: Callable[[dict], bool] = lambda labels: True) -> float:
    return sum(s.value for s in samples.get(name, ()) if match(s.labels))


def worker_pids(path) -> set[str]:
    return {name.rsplit("_", 1)[1].removesuffix(".db") for name in os.listdir(path) if name.startswith("counter_")}


def call(base_url: str, api_key: str) -> openai.types.chat.ChatCompletion:
    # A client per call: a fresh connection, which either worker may accept.
    with openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0) as client:
        return client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "count me in"}],
                                              user="customer-7")


def test_counts_add_up_across_two_workers(two_workers, stand_in, multiproc_dir):
    key = two_workers.new_key(key_alias="metrics-key", max_budget=5.0)
    base = two_workers.base_url
    answers = []
    with ThreadPoolExecutor(4) as pool:
        # Until both workers have served some (bounded): connections land on either.
        while len(answers) < 200 and (len(answers) < 12 or len(worker_pids(multiproc_dir)) < 2):
            answers += pool.map(lambda _: call(base, key), range(4))
    assert len(worker_pids(multiproc_dir)) == 2
    stand_in.behave(status=400, times=3)
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            call(base, key)

    samples = scrape(base, Authorization=f"Bearer {key}")
    mine = lambda labels: labels.get("api_key_alias") == "metrics-key"  # noqa: E731
    succeeded = len(answers)
    prompt = sum(a.usage.prompt_tokens for a in answers)
    completion = sum(a.usage.completion_tokens for a in answers)
    assert total(samples, "litellm_proxy_total_requests_metric_total", mine) == succeeded + 3
    assert total(samples, "litellm_proxy_total_requests_metric_total",
                 lambda l: mine(l) and l["status_code"] == "200" and l["end_user"] == "customer-7"
                 and l["route"] == "/chat/completions" and l["requested_model"] == "metered") == succeeded
    assert total(samples, "litellm_proxy_failed_requests_metric_total", mine) == 3
    assert total(samples, "litellm_requests_metric_total", lambda l: mine(l) and l["model"] == "house-model") \
        == succeeded + 3
    assert total(samples, "litellm_input_tokens_metric_total", mine) == prompt
    assert total(samples, "litellm_output_tokens_metric_total", mine) == completion
    assert total(samples, "litellm_total_tokens_metric_total", mine) == prompt + completion
    assert total(samples, "litellm_spend_metric_total", mine) == pytest.approx(prompt * PRICE_IN
                                                                              + completion * PRICE_OUT)
    for histogram in ("litellm_request_total_latency_metric", "litellm_llm_api_latency_metric",
                      "litellm_overhead_latency_metric"):
        assert total(samples, f"{histogram}_count", mine) == succeeded + 3
    assert total(samples, "litellm_deployment_success_responses_total",
                 lambda l: l["litellm_model_name"] == "house-model") == succeeded
    assert total(samples, "litellm_deployment_failure_responses_total",
                 lambda l: l["litellm_model_name"] == "house-model") == 3
    key_labels = {s.labels["hashed_api_key"] for s in samples["litellm_proxy_total_requests_metric_total"]
                  if mine(s.labels)}
    assert len(key_labels) == 1 and len(key_labels.pop()) == 64   # the key's digest, never the key
    assert total(samples, "litellm_api_key_max_budget_metric", mine) == 5.0
    # Set by whichever worker answered last, from the shared counters: not a sum over the workers.
    assert total(samples, "litellm_remaining_api_key_budget_metric", mine) == pytest.approx(
        5.0 - prompt * PRICE_IN - completion * PRICE_OUT)
    assert total(samples, "litellm_request_queue_time_seconds_count", mine) == succeeded + 3
    # The 400s were the requests' fault, not the deployment's: healthy in every live worker.
    assert total(samples, "litellm_deployment_state", lambda l: l["litellm_model_name"] == "house-model") == 0


def test_metrics_redirects_to_trailing_slash(two_workers):
    response = httpx2.get(f"{two_workers.base_url}/metrics", trust_env=False, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/metrics/"


def test_metrics_need_a_key_by_default(two_workers):
    response = httpx2.get(f"{two_workers.base_url}/metrics/", trust_env=False)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "401"


def test_master_key_calls_are_labelled_as_the_master_key(open_metrics, stand_in):
    call(open_metrics.base_url, MASTER_KEY)
    samples = scrape(open_metrics.base_url)   # no key: require_auth_for_metrics_endpoint is false
    assert total(samples, "litellm_proxy_total_requests_metric_total",
                 lambda l: l["hashed_api_key"] == "litellm_proxy_master_key") == 1


def test_metrics_are_off_without_the_prometheus_callback(gateway):
    response = gateway.admin("GET", "/metrics/")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


# --- Streams, budgets, failing deployments and fallbacks (one worker: cooldowns are per process) ---------

def reliability_config(upstream_base: str, dead_port: int) -> str:
    dead = f"http://127.0.0.1:{dead_port}/v1"

    def deployment(name: str, model_id: str, api_base: str, extra: str = "") -> str:
        return (f"  - model_name: {name}\n    litellm_params:\n      model: openai/house-model\n"
                f"      api_base: {api_base}\n      api_key: os.environ/E2E_UPSTREAM_KEY\n"
                f"      input_cost_per_token: {PRICE_IN}\n      output_cost_per_token: {PRICE_OUT}\n{extra}"
                f"    model_info:\n      id: {model_id}\n")

    return "model_list:\n" + "".join([
        deployment("metered", "metered-deployment", f"{upstream_base}/v1"),
        # The dead one is picked first (weight) and cools down after its first failure; the retry answers.
        deployment("half-dead", "dead-deployment", dead, "      weight: 1000\n"),
        deployment("half-dead", "live-deployment", f"{upstream_base}/v1", "      weight: 1\n"),
        deployment("lonely-dead", "lonely-dead-deployment", dead),
        deployment("also-dead", "also-dead-deployment", dead),
    ]) + f"""litellm_settings:
  callbacks: ["prometheus", "banned_keywords"]
  banned_keywords_list: ["contraband"]
  require_auth_for_metrics_endpoint: false
router_settings:
  num_retries: 1
  allowed_fails: 0
  cooldown_time: 600
  fallbacks: [{{"lonely-dead": ["metered"]}}, {{"also-dead": ["lonely-dead"]}}]
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture(scope="module")
def reliable(e2e_dir, upstream):
    from tests.servers.process import free_port

    with launch_gateway(e2e_dir, reliability_config(upstream.base_url, free_port()), name="metrics-rel") as live:
        yield live


def labelled(**wanted: str) -> Callable[[dict], bool]:
    return lambda labels: all(labels.get(k) == v for k, v in wanted.items())


def test_streams_observe_time_to_first_token(reliable, stand_in):
    key = reliable.new_key(key_alias="stream-key")
    with reliable.sdk(key) as client:
        stream = client.chat.completions.create(model="metered", stream=True, messages=[{"role": "user",
                                                "content": "stream to me"}])
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "not streamed"}])
    samples = scrape(reliable.base_url)
    mine = labelled(api_key_alias="stream-key")
    assert total(samples, "litellm_llm_api_time_to_first_token_metric_count", mine) == 1   # streams only
    assert total(samples, "litellm_llm_api_time_to_first_token_metric_sum", mine) > 0
    assert total(samples, "litellm_llm_api_time_to_first_token_metric_count",
                 lambda l: mine(l) and l["model_group"] == "metered" and l["model"] == "house-model") == 1
    assert total(samples, "litellm_request_queue_time_seconds_count", mine) == 2
    assert total(samples, "litellm_deployment_latency_per_output_token_count", mine) == 2


def test_budget_and_rate_limit_gauges_of_every_level(reliable, stand_in):
    suffix = uuid.uuid4().hex[:8]
    team = reliable.admin("POST", "/team/new", json={"team_alias": f"team-{suffix}", "max_budget": 50.0}).json()
    user = f"user-{suffix}"
    customer = f"customer-{suffix}"
    assert reliable.admin("POST", "/user/new", json={"user_id": user, "max_budget": 20.0,
                                                     "auto_create_key": False}).status_code == 200
    assert reliable.admin("POST", "/customer/new", json={"user_id": customer, "max_budget": 10.0}).status_code == 200
    key = reliable.new_key(key_alias=f"key-{suffix}", max_budget=5.0, budget_duration="30d", team_id=team["team_id"],
                           user_id=user, model_rpm_limit={"metered": 10}, model_tpm_limit={"metered": 100000})
    costs, tokens = [], 0
    with reliable.sdk(key) as client:
        for _ in range(2):
            answer = client.chat.completions.create(model="metered", user=customer,
                                                    messages=[{"role": "user", "content": "what is left?"}])
            costs.append(answer.usage.prompt_tokens * PRICE_IN + answer.usage.completion_tokens * PRICE_OUT)
            tokens += answer.usage.total_tokens

    samples = scrape(reliable.base_url)
    mine = labelled(api_key_alias=f"key-{suffix}")
    spent = sum(costs)
    assert total(samples, "litellm_api_key_max_budget_metric", mine) == 5.0
    assert total(samples, "litellm_remaining_api_key_budget_metric", mine) == pytest.approx(5.0 - spent)
    assert 719 < total(samples, "litellm_api_key_budget_remaining_hours_metric", mine) <= 720   # budget_duration 30d
    its_team = labelled(team=team["team_id"], team_alias=f"team-{suffix}")
    assert total(samples, "litellm_team_max_budget_metric", its_team) == 50.0
    assert total(samples, "litellm_remaining_team_budget_metric", its_team) == pytest.approx(50.0 - spent)
    assert total(samples, "litellm_user_max_budget_metric", labelled(user=user)) == 20.0
    assert total(samples, "litellm_remaining_user_budget_metric", labelled(user=user)) == pytest.approx(20.0 - spent)
    assert total(samples, "litellm_customer_max_budget_metric", labelled(end_user=customer)) == 10.0
    assert total(samples, "litellm_remaining_customer_budget_metric", labelled(end_user=customer)) \
        == pytest.approx(10.0 - spent)
    # Model-specific limits of the key: a full bucket of 10 requests a minute, less the two made (a
    # minute's bucket refills, so at most a request's worth more); tokens charged after each call.
    assert 8 <= total(samples, "litellm_remaining_api_key_requests_for_model", labelled(model="metered", **{
        "api_key_alias": f"key-{suffix}"})) <= 9
    assert 100000 - tokens <= total(samples, "litellm_remaining_api_key_tokens_for_model", mine) <= 100000


def test_a_failing_deployment_is_counted_cooled_down_and_marked_out(reliable, stand_in):
    with reliable.sdk() as client:
        for _ in range(3):
            answer = client.chat.completions.with_raw_response.create(
                model="half-dead", messages=[{"role": "user", "content": "anyone there?"}])
            assert answer.headers["x-litellm-model-id"] == "live-deployment"
    samples = scrape(reliable.base_url)
    dead, live = labelled(model_id="dead-deployment"), labelled(model_id="live-deployment")
    # Tried once (weight 1000 to 1), refused the connection, cooled down for 600 s: never tried again.
    assert total(samples, "litellm_deployment_failure_responses_total",
                 lambda l: dead(l) and l["exception_status"] == "502" and l["requested_model"] == "half-dead") == 1
    assert total(samples, "litellm_deployment_total_requests_total", dead) == 1
    assert total(samples, "litellm_deployment_success_responses_total", dead) == 0
    assert total(samples, "litellm_deployment_cooled_down_total",
                 lambda l: dead(l) and l["exception_status"] == "502" and l["litellm_model_name"] == "house-model") == 1
    assert total(samples, "litellm_deployment_state", dead) == 2
    assert total(samples, "litellm_deployment_success_responses_total", live) == 3
    assert total(samples, "litellm_deployment_state", live) == 0
    # The client saw three successes: the proxy-level failure counter does not count the retried attempt.
    assert total(samples, "litellm_proxy_failed_requests_metric_total", labelled(requested_model="half-dead")) == 0


def test_fallbacks_are_counted_by_outcome(reliable, stand_in):
    with reliable.sdk() as client:
        answer = client.chat.completions.create(model="lonely-dead", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="also-dead", messages=[{"role": "user", "content": "hi"}])
        assert failed.value.status_code == 502
    samples = scrape(reliable.base_url)
    assert total(samples, "litellm_deployment_successful_fallbacks_total",
                 labelled(requested_model="lonely-dead", fallback_model="metered", exception_status="502",
                          hashed_api_key="litellm_proxy_master_key")) == 1
    assert total(samples, "litellm_deployment_failed_fallbacks_total",
                 labelled(requested_model="also-dead", fallback_model="lonely-dead")) == 1
    assert total(samples, "litellm_deployment_successful_fallbacks_total", labelled(requested_model="also-dead")) == 0
    # A lone deployment is not cooled down (nothing to switch to), but its failures show it in partial outage.
    lonely = labelled(model_id="lonely-dead-deployment")
    assert total(samples, "litellm_deployment_state", lonely) == 1
    assert total(samples, "litellm_deployment_cooled_down_total", lonely) == 0
    # lonely-dead: two attempts of its own, then two more as also-dead's fallback.
    assert total(samples, "litellm_deployment_failure_responses_total", lonely) == 4


def test_guardrail_runs_are_counted_and_timed(reliable, stand_in):
    banned = labelled(guardrail_name="banned_keywords", hook_type="pre_call")
    before = scrape(reliable.base_url)
    with reliable.sdk() as client:
        client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "all clear"}])
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "contraband"}])
    after = scrape(reliable.base_url)

    def grew(name: str, match: Callable[[dict], bool]) -> float:
        return total(after, name, match) - total(before, name, match)

    assert grew("litellm_guardrail_requests_total", lambda l: banned(l) and l["status"] == "success") == 1
    assert grew("litellm_guardrail_requests_total", lambda l: banned(l) and l["status"] == "error") == 1
    errors = [s.labels["error_type"] for s in after["litellm_guardrail_errors_total"] if banned(s.labels)]
    assert len(errors) == 1 and errors[0] != "None"
    assert grew("litellm_guardrail_latency_seconds_count", banned) == 2


def test_in_flight_requests_include_open_streams(reliable, stand_in):
    wait_for(lambda: total(scrape(reliable.base_url), "litellm_in_flight_requests") == 1)   # only the scrape
    stand_in.behave(chunk_delay_ms=100)   # the stream stays open while the test scrapes
    with reliable.sdk() as client:
        stream = client.chat.completions.create(model="metered", stream=True,
                                                messages=[{"role": "user", "content": "take your time"}])
        next(iter(stream))
        # The open stream and the scrape itself.
        assert total(scrape(reliable.base_url), "litellm_in_flight_requests") == 2
        for _ in stream:
            pass
    wait_for(lambda: total(scrape(reliable.base_url), "litellm_in_flight_requests") == 1)


def test_the_spend_rows_waiting_in_memory_are_a_gauge_that_falls_to_zero_once_written(reliable):
    with reliable.sdk() as client:
        client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "count me"}])
    wait_for(lambda: [s.value for s in scrape(reliable.base_url).get("gateway_spend_rows_buffered", ())] == [0.0])


def test_user_and_team_counts_are_read_at_scrape_time(reliable):
    before = scrape(reliable.base_url)
    assert reliable.admin("POST", "/team/new", json={"team_alias": "counted"}).status_code == 200
    assert reliable.admin("POST", "/user/new", json={"user_id": f"counted-{uuid.uuid4().hex[:6]}",
                                                     "auto_create_key": False}).status_code == 200
    after = scrape(reliable.base_url)
    assert total(after, "litellm_teams_count") == total(before, "litellm_teams_count") + 1
    assert total(after, "litellm_total_users") == total(before, "litellm_total_users") + 1
