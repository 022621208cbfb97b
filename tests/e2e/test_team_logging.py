"""Team-based logging, end to end: a live gateway, three stand-in Langfuse projects (team A's, team B's
and the global one), requests through the official openai SDK.

Team A logs to project A through ``metadata.logging`` (success and failure), team B to project B through
``POST /team/{id}/callback`` (success only, its secret an ``os.environ/`` reference), team C had project A
too but switched logging off, team D has nothing of its own; every request also goes to the global
project (``litellm_settings.success_callback/failure_callback: ["langfuse"]``) except team C's.
"""
from __future__ import annotations

import sys
import uuid
from contextlib import ExitStack, contextmanager

import openai
import orjson
import pytest

from tests.e2e.conftest import MASTER_KEY, ROOT, launch_gateway, wait_for
from tests.servers.fake_langfuse import INGESTION_PATH, accepted_events
from tests.servers.fake_upstream import StandInClient
from tests.servers.process import ServerProcess, free_port

pytestmark = pytest.mark.e2e

PROJECTS = {"a": ("pk-lf-project-a", "sk-lf-project-a-secret-0001"),
            "b": ("pk-lf-project-b", "sk-lf-project-b-secret-0002"),
            "global": ("pk-lf-global", "sk-lf-global-secret-0003")}
WRONG_SECRET = "sk-lf-not-the-right-secret-9999"
PRIVATE = "my-private-gdpr-phrase"
HI = [{"role": "user", "content": "Hello there"}]


@contextmanager
def launch_langfuse(e2e_dir, name: str):
    public, secret = PROJECTS[name]
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "tests.servers.fake_langfuse", "--port", str(port),
                            "--public-key", public, "--secret-key", secret],
                           log_dir=e2e_dir, name=f"langfuse-{name}", cwd=ROOT)
    with server, StandInClient(f"http://127.0.0.1:{port}") as client:
        server.wait_until_ready(port)
        yield client


def langfuse_vars(project: StandInClient, name: str, secret: str | None = None) -> dict:
    public, real_secret = PROJECTS[name]
    return {"langfuse_public_key": public, "langfuse_secret_key": secret or real_secret,
            "langfuse_host": project.base_url}


class Setup:
    def __init__(self, gateway, projects):
        self.gateway, self.projects = gateway, projects
        self.keys: dict[str, str] = {}

    def team(self, team_id: str, **fields) -> str:
        response = self.gateway.admin("POST", "/team/new", json={"team_id": team_id, **fields})
        assert response.status_code == 200, response.text
        self.keys[team_id] = self.gateway.new_key(team_id=team_id)
        return team_id

    def chat(self, team_id: str, content: str = "Hello there", **kwargs):
        """A chat call with the team's key: (call id, parsed response)."""
        raw = self.gateway.sdk(self.keys[team_id]).chat.completions.with_raw_response.create(
            model="gpt-3.5-turbo", messages=[{"role": "user", "content": content}], **kwargs)
        return raw.headers["x-litellm-call-id"], raw.parse()

    def events(self, name: str, call_id: str | None = None) -> list[dict]:
        found = accepted_events(self.projects[name])
        return [e for e in found if call_id is None or call_id in (e["body"].get("id"), _call_id(e))]

    def wait_events(self, name: str, call_id: str, count: int = 2) -> list[dict]:
        return wait_for(lambda: len(found := self.events(name, call_id)) >= count and found)


def _call_id(event: dict) -> str | None:
    return (event["body"].get("metadata") or {}).get("call_id")


@pytest.fixture(scope="module")
def setup(e2e_dir, upstream):
    with ExitStack() as stack:
        projects = {name: stack.enter_context(launch_langfuse(e2e_dir, name)) for name in PROJECTS}
        config = f"""
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: openai/gpt-3.5-turbo
      api_base: {upstream.base_url}/v1
      api_key: os.environ/E2E_UPSTREAM_KEY
      input_cost_per_token: 0.0001
      output_cost_per_token: 0.0002
litellm_settings:
  success_callback: ["langfuse"]
  failure_callback: ["langfuse"]
general_settings:
  master_key: {MASTER_KEY}
"""
        public, secret = PROJECTS["global"]
        env = {"LANGFUSE_PUBLIC_KEY": public, "LANGFUSE_SECRET_KEY": secret,
               "LANGFUSE_HOST": projects["global"].base_url, "TEAM_B_LANGFUSE_SECRET": PROJECTS["b"][1],
               "GATEWAY_CALLBACK_FLUSH_INTERVAL": "0.05", "GATEWAY_CALLBACK_RETRY_BACKOFF": "0.05"}
        gateway = stack.enter_context(launch_gateway(e2e_dir, config, name="gateway-team-logging", env=env))
        s = Setup(gateway, projects)
        s.team("team-a", metadata={"logging": [{"callback_name": "langfuse", "callback_type": "success_and_failure",
                                                "callback_vars": langfuse_vars(projects["a"], "a")}]})
        s.team("team-b")
        b_vars = {**langfuse_vars(projects["b"], "b"), "langfuse_secret_key": "os.environ/TEAM_B_LANGFUSE_SECRET"}
        response = gateway.admin("POST", "/team/team-b/callback", json={
            "callback_name": "langfuse", "callback_type": "success", "callback_vars": b_vars})
        assert response.status_code == 200, response.text
        s.team("team-c", metadata={"logging": [{"callback_name": "langfuse",
                                                "callback_vars": langfuse_vars(projects["a"], "a")}]})
        assert gateway.admin("POST", "/team/team-c/disable_logging").status_code == 200
        s.team("team-d")
        yield s


@pytest.fixture
def quiet_upstream(upstream):
    upstream.reset()
    yield upstream
    upstream.reset()


def test_each_project_receives_only_its_own_teams_requests(setup, quiet_upstream):
    a_call, a_response = setup.chat("team-a", extra_body={"metadata": {
        "generation_name": "poem-writer", "trace_user_id": "end-user-7", "tags": ["tag-a"]}})
    b_call, _ = setup.chat("team-b")
    c_call, _ = setup.chat("team-c", content=PRIVATE)
    d_call, _ = setup.chat("team-d")
    sentinel, _ = setup.chat("team-a")   # after C's call on the same projects: C's would be there by now

    setup.wait_events("a", sentinel)
    setup.wait_events("global", sentinel)
    a_ids = {_call_id(e) for e in setup.events("a")}
    global_ids = {_call_id(e) for e in setup.events("global")}
    assert a_call in a_ids and not {b_call, c_call, d_call} & a_ids
    assert {a_call, b_call, d_call} <= global_ids and c_call not in global_ids
    assert {_call_id(e) for e in setup.wait_events("b", b_call)} == {b_call}
    generation = next(e["body"] for e in setup.events("a", a_call) if e["type"] == "generation-create")
    assert generation["model"] == "gpt-3.5-turbo" and generation["name"] == "poem-writer"
    assert generation["usage"]["input"] == a_response.usage.prompt_tokens
    assert generation["usage"]["output"] == a_response.usage.completion_tokens
    assert generation["output"]["content"] == a_response.choices[0].message.content
    assert generation["input"] == [{"role": "user", "content": "Hello there"}]
    assert generation["costDetails"]["total"] == pytest.approx(
        a_response.usage.prompt_tokens * 0.0001 + a_response.usage.completion_tokens * 0.0002)
    assert generation["metadata"]["user_api_key_team_id"] == "team-a" and generation["level"] == "DEFAULT"
    trace = next(e["body"] for e in setup.events("a", a_call) if e["type"] == "trace-create")
    assert trace["id"] == generation["traceId"] and trace["userId"] == "end-user-7" and "tag-a" in trace["tags"]


def test_nothing_of_a_disabled_team_leaves_the_gateway(setup, quiet_upstream):
    c_call, _ = setup.chat("team-c", content=PRIVATE)
    sentinel, _ = setup.chat("team-a")

    setup.wait_events("a", sentinel)
    setup.wait_events("global", sentinel)
    for name in PROJECTS:
        everything = orjson.dumps([r["body"] for r in setup.projects[name].requests(INGESTION_PATH)]).decode()
        assert PRIVATE not in everything and "team-c" not in everything and c_call not in everything


def test_a_streamed_answer_is_logged_whole(setup, quiet_upstream):
    raw = setup.gateway.sdk(setup.keys["team-b"]).chat.completions.with_raw_response.create(
        model="gpt-3.5-turbo", messages=HI, stream=True)
    call_id = raw.headers["x-litellm-call-id"]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)

    generation = next(e["body"] for e in setup.wait_events("b", call_id) if e["type"] == "generation-create")

    assert generation["output"] == {"role": "assistant", "content": text} and text
    assert generation["usage"]["output"] > 0


def _fail_upstream(upstream) -> None:
    upstream.behave(status=400, body={"error": {"message": f"context rejected: {PRIVATE}",
                                                "type": "invalid_request_error"}})


def test_a_failed_call_reaches_failure_callbacks_only(setup, quiet_upstream):
    _fail_upstream(quiet_upstream)
    with pytest.raises(openai.BadRequestError):
        setup.chat("team-a")
    _fail_upstream(quiet_upstream)
    with pytest.raises(openai.BadRequestError):
        setup.chat("team-b")   # team B logs successes only
    sentinel, _ = setup.chat("team-b")

    setup.wait_events("b", sentinel)
    failures = wait_for(lambda: [e["body"] for e in setup.events("a")
                                 if e["type"] == "generation-create" and e["body"]["level"] == "ERROR"])
    assert PRIVATE in failures[-1]["statusMessage"]
    assert not [e for e in setup.events("b") if e["type"] == "generation-create" and e["body"]["level"] == "ERROR"]
    wait_for(lambda: len([e for e in setup.events("global")
                          if e["type"] == "generation-create" and e["body"]["level"] == "ERROR"
                          and e["body"]["metadata"]["user_api_key_team_id"] == "team-b"]) == 1)


def test_a_disabled_teams_spend_rows_keep_no_content(setup, quiet_upstream):
    rows = {}
    for team_id in ("team-a", "team-c"):
        _fail_upstream(quiet_upstream)
        with pytest.raises(openai.BadRequestError):
            setup.chat(team_id)
        rows[team_id] = wait_for(lambda: [r for r in setup.gateway.spend_logs(api_key=setup.keys[team_id])
                                          if r["status"] == "failure"])[-1]

    kept, scrubbed = rows["team-a"], rows["team-c"]
    assert PRIVATE in kept["metadata"]["error_information"]["error_message"]
    assert scrubbed["metadata"]["error_information"]["error_message"] is None
    assert scrubbed["metadata"]["error_information"]["error_code"] == "400"
    assert scrubbed["prompt_tokens"] == 0 and scrubbed["team_id"] == "team-c"
    assert PRIVATE not in orjson.dumps(scrubbed).decode()


def test_a_project_that_fails_for_a_while_gets_the_batch_after_retries(setup, quiet_upstream):
    settled, _ = setup.chat("team-a")
    setup.wait_events("a", settled)   # earlier tests' batches are in: the failures below hit this call's
    setup.projects["a"].behave(status=503, times=2)
    call_id, _ = setup.chat("team-a")

    setup.wait_events("a", call_id)

    attempts = [r for r in setup.projects["a"].requests(INGESTION_PATH) if call_id in orjson.dumps(r["body"]).decode()]
    assert len(attempts) == 3


def _log(setup) -> str:
    return setup.gateway.process.log_path.read_text(errors="replace")


def test_a_refused_batch_is_dropped_with_a_log_line_that_names_no_secret(setup, quiet_upstream):
    team_id = setup.team(f"team-wrong-{uuid.uuid4().hex[:6]}", metadata={"logging": [{
        "callback_name": "langfuse", "callback_vars": langfuse_vars(setup.projects["a"], "a", WRONG_SECRET)}]})

    call_id, response = setup.chat(team_id)

    assert response.choices[0].message.content
    wait_for(lambda: "refused 1 events, dropped: HTTP 401" in _log(setup))
    assert WRONG_SECRET not in _log(setup) and PROJECTS["a"][1] not in _log(setup)
    assert not setup.events("a", call_id)


def test_an_unreachable_project_never_fails_the_request(setup, quiet_upstream):
    dead = f"http://127.0.0.1:{free_port()}"
    callback_vars = {**langfuse_vars(setup.projects["a"], "a"), "langfuse_host": dead}
    team_id = setup.team(f"team-dead-{uuid.uuid4().hex[:6]}", metadata={"logging": [{
        "callback_name": "langfuse", "callback_vars": callback_vars}]})

    _, response = setup.chat(team_id)

    assert response.choices[0].message.content
    wait_for(lambda: f"at {dead} (public key pk-lf-proj…): 1 events dropped after 4 attempts" in _log(setup))


def test_disabling_logging_takes_effect_on_the_next_request(setup, quiet_upstream):
    team_id = setup.team(f"team-switch-{uuid.uuid4().hex[:6]}", metadata={"logging": [{
        "callback_name": "langfuse", "callback_vars": langfuse_vars(setup.projects["a"], "a")}]})
    before, _ = setup.chat(team_id)            # the team's snapshot is now in the gateway's cache
    setup.wait_events("a", before)

    assert setup.gateway.admin("POST", f"/team/{team_id}/disable_logging").status_code == 200
    after, _ = setup.chat(team_id)
    sentinel, _ = setup.chat("team-a")

    setup.wait_events("a", sentinel)
    setup.wait_events("global", sentinel)
    assert not setup.events("a", after) and not setup.events("global", after)


def test_an_input_too_large_for_langfuse_is_replaced_by_a_note(setup, quiet_upstream):
    call_id, response = setup.chat("team-a", content="word " * 120_000)

    generation = next(e["body"] for e in setup.wait_events("a", call_id) if e["type"] == "generation-create")

    assert generation["input"].endswith("bytes, too large to log]")
    assert generation["output"]["content"] == response.choices[0].message.content
