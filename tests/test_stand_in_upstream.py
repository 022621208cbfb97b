"""The stand-in upstream and the server-process helpers, checked over real HTTP on 127.0.0.1."""
from __future__ import annotations

import base64
import concurrent.futures
import os
import signal
import struct
import sys
import time
from pathlib import Path

import httpx2
import openai
import pytest

from tests.servers.fake_upstream import DEFAULT_REPLY, StandInClient
from tests.servers.process import ServerNotReady, ServerProcess, free_port

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parent.parent
REPLY_WORDS = 5  # "Hello from the stand-in upstream." split on whitespace


def start_stand_in(log_dir: Path, *extra_args: str) -> tuple[ServerProcess, str]:
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "tests.servers.fake_upstream", "--port", str(port), *extra_args],
                           log_dir=log_dir, name="stand-in", cwd=REPO_ROOT).start()
    server.wait_until_ready(f"http://127.0.0.1:{port}/_stand_in/health", timeout=15)
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory):
    server, url = start_stand_in(tmp_path_factory.mktemp("stand-in-logs"))
    with server:
        yield url


@pytest.fixture
def upstream(base_url: str):
    with StandInClient(base_url) as client:
        client.reset()
        client.clear()
        yield client


@pytest.fixture
def http(base_url: str):
    with httpx2.Client(base_url=base_url, trust_env=False, timeout=10) as client:
        yield client


@pytest.fixture
def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=10)


def test_chat_completion_has_openai_shape_and_word_count_usage(upstream, http):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Say hello"},
                                             {"type": "image_url", "image_url": {"url": "data:,"}}]}]

    response = http.post("/v1/chat/completions", json={"model": "gpt-x", "messages": messages})

    assert response.status_code == 200
    completion = response.json()
    assert completion["id"].startswith("chatcmpl-")
    assert isinstance(completion["created"], int)
    assert {k: v for k, v in completion.items() if k not in ("id", "created")} == {
        "object": "chat.completion", "model": "gpt-x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": DEFAULT_REPLY}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": REPLY_WORDS, "total_tokens": 4 + REPLY_WORDS},
        "system_fingerprint": None}


def test_reply_header_and_max_tokens_shape_the_reply(upstream, http):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

    completion = http.post("/chat/completions", json=body, headers={"x-stand-in-reply": "one two three"}).json()

    assert completion["choices"][0]["message"]["content"] == "one two"
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


@pytest.mark.parametrize("include_usage", [True, False])
def test_streaming_through_the_openai_sdk(upstream, sdk, include_usage):
    stream = sdk.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "a b c"}], stream=True,
                                         stream_options={"include_usage": include_usage})
    chunks = list(stream)

    assert len({chunk.id for chunk in chunks}) == 1
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == "gpt-x" for chunk in chunks)
    content_chunks = [c for c in chunks if c.choices]
    assert content_chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == DEFAULT_REPLY
    assert len(content_chunks) == 1 + REPLY_WORDS + 1  # role, one per word, finish
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in content_chunks)
    if include_usage:
        assert chunks[-1].choices == []
        assert chunks[-1].usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}) == {
            "prompt_tokens": 3, "completion_tokens": REPLY_WORDS, "total_tokens": 3 + REPLY_WORDS}
    else:
        assert chunks[-1] is content_chunks[-1]


def test_requests_are_recorded_until_cleared(upstream, http):
    http.post("/v1/chat/completions?trace=1", json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
              headers={"Authorization": "Bearer sk-upstream", "X-Custom": "yes"})
    http.post("/v1/embeddings", content=b"not json")

    recorded = upstream.requests()

    assert [(r["method"], r["path"]) for r in recorded] == [("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings")]
    chat, embeddings = recorded
    assert chat["query"] == "trace=1"
    assert chat["headers"]["authorization"] == "Bearer sk-upstream"
    assert chat["headers"]["x-custom"] == "yes"
    assert chat["body"] == {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert embeddings["body"] == "not json"
    assert chat["timestamp"] <= embeddings["timestamp"]
    assert upstream.requests("/v1/embeddings") == [embeddings]

    upstream.clear()

    assert upstream.requests() == []  # control calls (requests(), clear()) are not recorded either


def test_injected_500_twice_then_success(upstream, sdk, http):
    upstream.behave(status=500, times=2, retry_after=3)

    raw = http.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    completion = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])

    assert raw.status_code == 500
    assert raw.headers["retry-after"] == "3"
    assert raw.json() == {"error": {"message": "The stand-in upstream failed on purpose (500)",
                                    "type": "server_error", "param": None, "code": None}}
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert len(upstream.requests()) == 3  # failed requests are recorded too


def test_held_requests_are_answered_only_once_released(upstream, sdk):
    upstream.behave(hold=True)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        calls = [pool.submit(sdk.chat.completions.create, model="m", messages=[{"role": "user", "content": "x"}])
                 for _ in range(2)]
        upstream.wait_for_requests(2)
        assert not any(call.done() for call in calls)  # both arrived, neither is answered
        upstream.behave(hold=False)
        assert all(call.result().choices[0].message.content == DEFAULT_REPLY for call in calls)


def test_cut_stream_raises_in_the_sdk(upstream, sdk):
    upstream.behave(cut_stream_after_chunks=2)
    received = []

    with pytest.raises((httpx2.TransportError, openai.APIConnectionError)):
        for chunk in sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True):
            received.append(chunk)

    assert len(received) == 2
    assert upstream.behaviour()["cut_stream_after_chunks"] is None  # used up: the next stream is whole
    assert len(list(sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                                stream=True))) == 1 + REPLY_WORDS + 1


def test_closed_connection_is_a_connection_error(upstream, sdk):
    upstream.behave(close_connection=True)

    with pytest.raises(openai.APIConnectionError):
        sdk.models.list()

    assert [m.id for m in sdk.models.list()] == ["stand-in-model"]


def test_bad_behaviour_settings_are_refused(upstream):
    with pytest.raises(RuntimeError, match="Unknown behaviour settings"):
        upstream.behave(stauts=500)


def test_embeddings_are_deterministic_floats_or_base64(upstream, http, sdk):
    floats = http.post("/v1/embeddings", json={"model": "e", "input": ["a b", "c"]}).json()
    via_sdk = sdk.embeddings.create(model="e", input=["a b", "c"])  # the SDK asks for base64
    raw_base64 = http.post("/embeddings", json={"model": "e", "input": "a b", "encoding_format": "base64"}).json()

    assert floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    vectors = [item["embedding"] for item in floats["data"]]
    assert [len(v) for v in vectors] == [8, 8] and vectors[0] != vectors[1]
    assert [item.embedding for item in via_sdk.data] == vectors
    assert list(struct.unpack("<8f", base64.b64decode(raw_base64["data"][0]["embedding"]))) == vectors[0]


def test_text_completions_and_unknown_paths(upstream, http):
    completion = http.post("/v1/completions", json={"model": "m", "prompt": "one two"}).json()
    missing = http.get("/v1/nothing-here")

    assert completion["object"] == "text_completion"
    assert completion["choices"][0]["text"] == DEFAULT_REPLY
    assert completion["usage"] == {"prompt_tokens": 2, "completion_tokens": REPLY_WORDS, "total_tokens": 2 + REPLY_WORDS}
    assert missing.status_code == 404 and "error" in missing.json()


def test_api_key_is_checked_when_configured(tmp_path):
    server, url = start_stand_in(tmp_path, "--api-key", "sk-right")
    with server, httpx2.Client(base_url=url, trust_env=False) as http:
        wrong = http.get("/v1/models", headers={"Authorization": "Bearer sk-wrong"})
        bearer = http.get("/v1/models", headers={"Authorization": "Bearer sk-right"})
        azure_style = http.get("/v1/models", headers={"api-key": "sk-right"})

    assert wrong.status_code == 401
    assert wrong.json() == {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                      "param": None, "code": "invalid_api_key"}}
    assert (bearer.status_code, azure_style.status_code) == (200, 200)
    assert not server.is_running()


def test_server_that_exits_early_reports_its_log(tmp_path):
    server = ServerProcess([sys.executable, "-c", "print('boom: bad config'); raise SystemExit(3)"],
                           log_dir=tmp_path, name="broken").start()

    with pytest.raises(ServerNotReady, match=r"(?s)exited with status 3.*boom: bad config"):
        server.wait_until_ready(free_port(), timeout=10)


def test_server_that_never_listens_times_out_and_is_stopped(tmp_path):
    server = ServerProcess([sys.executable, "-c", "import time; time.sleep(60)"], log_dir=tmp_path,
                           name="silent").start()

    with pytest.raises(ServerNotReady, match="was not ready"):
        server.wait_until_ready(free_port(), timeout=0.3)

    assert not server.is_running()


def test_stop_kills_grandchildren(tmp_path):
    # The child ignores SIGTERM (so stop() must escalate) and its grandchild reports its pid in the log.
    script = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              "print(p.pid, flush=True); time.sleep(60)")
    with ServerProcess([sys.executable, "-c", script], log_dir=tmp_path, name="parent") as server:
        while not server.log_path.read_text().strip():
            assert server.is_running(), server.log_tail()
        grandchild = int(server.log_path.read_text().split()[0])
        assert server.stop(timeout=0.2) == -signal.SIGKILL

    deadline = time.monotonic() + 5  # SIGKILL is delivered asynchronously
    while is_alive(grandchild):
        assert time.monotonic() < deadline, f"grandchild {grandchild} survived stop()"
        time.sleep(0.01)


def is_alive(pid: int) -> bool:
    """False once ``pid`` is gone or a zombie (dead, waiting for a parent that may never reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
