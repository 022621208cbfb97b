"""``stream=True`` relayed as server-sent events, with usage counted: the chunks that arrived from the
upstream together (one network read) leave together (one write), each as soon as it arrived; the stream's
first event leaves on its own, at once."""
import queue
import socket
import socketserver
import threading
import time
from urllib.parse import urlsplit

import orjson
import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway, wait_for

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "stream me a short poem please"}]


def test_stream_chunks_concatenate_to_the_reply(gateway, stand_in):
    stream = gateway.sdk().chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, stream=True)

    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the stand-in upstream."
    assert len(chunks) >= 5
    assert all(c.model == "gpt-3.5-turbo" for c in chunks)


def test_the_gateway_asks_the_upstream_for_usage_but_hides_it_from_a_client_that_did_not(gateway, stand_in):
    chunks = list(gateway.sdk().chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, stream=True))

    [seen] = stand_in.requests()
    assert seen["body"]["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_a_client_that_asks_for_usage_gets_the_usage_chunk(gateway, stand_in):
    chunks = list(gateway.sdk().chat.completions.create(
        model="gpt-3.5-turbo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))

    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (6, 5)


def test_streamed_and_buffered_calls_cost_the_same_for_the_same_usage(gateway, stand_in):
    buffered = gateway.sdk().chat.completions.create(model="priced-model", messages=MESSAGES)
    streamed_id = [c.id for c in gateway.sdk().chat.completions.create(
        model="priced-model", messages=MESSAGES, stream=True)][0]

    buffered_row, streamed_row = gateway.spend_row(buffered.id), gateway.spend_row(streamed_id)

    assert streamed_row["status"] == "success"
    assert streamed_row["total_tokens"] == buffered_row["total_tokens"] == 11
    assert streamed_row["spend"] == pytest.approx(buffered_row["spend"])
    assert streamed_row["completionStartTime"] is not None


def test_chunks_arrive_one_by_one_not_in_one_piece(gateway, stand_in):
    """With upstream latency between chunks, the first chunk reaches the client before the stream ends."""
    stand_in.behave(delay_ms=0, chunk_delay_ms=100)
    started = time.monotonic()
    stream = gateway.sdk().chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, stream=True)
    first_at = None
    for chunk in stream:
        if first_at is None:
            first_at = time.monotonic() - started
    total = time.monotonic() - started

    assert total - first_at >= 0.4


def test_a_stream_cut_by_the_upstream_ends_with_an_error_event_and_a_failed_spend_row(gateway, stand_in):
    stand_in.behave(cut_stream_after_chunks=2)
    key = gateway.new_key(key_alias="cut-stream-key")

    with pytest.raises(Exception):
        for _ in gateway.sdk(key).chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, stream=True):
            pass

    rows = wait_for(lambda: gateway.spend_logs(api_key=key))
    assert rows[0]["status"] == "failure"



def test_a_stream_without_usage_is_estimated_and_flagged(gateway, stand_in):
    stand_in.behave(omit_usage=True)

    stream = gateway.sdk().chat.completions.create(model="priced-model", messages=MESSAGES, stream=True)
    chunk_id = [c.id for c in stream][0]

    row = gateway.spend_row(chunk_id)
    assert row["metadata"]["usage_estimated"] is True
    # "Hello from the stand-in upstream." is 33 characters: about 9 tokens; the prompt about 3 + 3 + 8.
    assert row["completion_tokens"] == 9 and row["prompt_tokens"] == 14
    assert row["spend"] == pytest.approx(14 * 0.0001 + 9 * 0.0002)


# Relay of bursts: an upstream on a socket of the test's own, writing whole streams at once or one event
# at a time, as the test allows.

DONE = b"data: [DONE]\n\n"
RESPONSE_LIMIT = int(0.01 * 1024 * 1024)  # max_response_size_mb: 0.01 below


def upstream_chunks(words: int) -> list[dict]:
    """What the upstream streams: a role chunk, ``words`` content chunks, a finish chunk, a usage chunk."""
    base = {"id": "chatcmpl-burst", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "burst-model", "system_fingerprint": None}

    def chunk(delta: dict, finish_reason: str | None = None) -> dict:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    return ([chunk({"role": "assistant", "content": ""})]
            + [chunk({"content": f" word{n}"}) for n in range(words)] + [chunk({}, "stop")]
            + [{**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": words,
                                                 "total_tokens": 3 + words}}])


def relayed_events(model_group: str, words: int) -> list[bytes]:
    """The events the gateway relays of that stream to a client that did not ask for usage."""
    return [b"data: " + orjson.dumps({**chunk, "model": model_group}) + b"\n\n"
            for chunk in upstream_chunks(words) if chunk["choices"]]


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class BurstUpstream(socketserver.ThreadingTCPServer):
    """POST .../one-write/v1/chat/completions: the whole stream, [DONE] and the body's end in one write;
    POST .../paced/v1/chat/completions: the first event, then each next one (and [DONE]) only once the
    test put a token in ``released``. ``max_tokens`` is the number of content chunks (default 20)."""

    daemon_threads = True
    released: "queue.Queue[None]"

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = b""
            while b"\r\n\r\n" not in data:
                received = self.request.recv(65536)
                if not received:
                    return
                data += received
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += self.request.recv(65536)
            words = orjson.loads(body).get("max_tokens") or 20
            events = [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in upstream_chunks(words)] + [DONE]
            start = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
                     b"connection: close\r\n\r\n")
            if b" /one-write/" in head.split(b"\r\n", 1)[0]:
                self.request.sendall(start + b"".join(http_chunk(event) for event in events) + b"0\r\n\r\n")
                return
            self.request.sendall(start + http_chunk(events[0]))
            for event in events[1:]:
                self.server.released.get(timeout=30)  # a bound, not a pace: the test releases each event
                self.request.sendall(http_chunk(event))
            self.request.sendall(b"0\r\n\r\n")

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), self.Handler)
        self.released = queue.Queue()


@pytest.fixture(scope="module")
def burst_gateway(e2e_dir):
    server = BurstUpstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    config = f"""model_list:
  - model_name: one-write
    litellm_params: {{model: openai/burst-model, api_base: {base}/one-write/v1}}
  - model_name: paced
    litellm_params: {{model: openai/burst-model, api_base: {base}/paced/v1}}
general_settings:
  master_key: {MASTER_KEY}
  max_response_size_mb: 0.01
"""
    try:
        with launch_gateway(e2e_dir, config, name="bursts") as live:
            yield live, server
    finally:
        server.shutdown()
        server.server_close()


def http_chunks_of_stream(gateway, model: str, words: int) -> list[bytes]:
    """The chunked body of a streamed chat, read off the socket: one HTTP chunk per write of the gateway."""
    address = urlsplit(gateway.base_url)
    body = orjson.dumps({"model": model, "stream": True, "max_tokens": words,
                         "messages": [{"role": "user", "content": "hi"}]})
    request = (f"POST /chat/completions HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {MASTER_KEY}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
               ).encode() + body
    raw = b""
    with socket.create_connection((address.hostname, address.port), timeout=30) as conn:
        conn.sendall(request)
        while data := conn.recv(65536):
            raw += data
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower(), head
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        rest = rest[size + 2:]


def test_the_first_event_leaves_at_once_and_the_rest_of_its_read_with_done_in_one_write(burst_gateway):
    gateway, _ = burst_gateway

    chunks = http_chunks_of_stream(gateway, "one-write", 20)

    # The same bytes as relayed event by event (every event, in order, then [DONE]): the first event on its
    # own (time to first token), the others that came in the same read with [DONE] in one write.
    events = relayed_events("one-write", 20)
    assert chunks == [events[0], b"".join(events[1:]) + DONE]


def test_a_stream_over_the_size_limit_mid_burst_relays_the_events_before_it_then_the_error(burst_gateway):
    gateway, _ = burst_gateway
    events = relayed_events("one-write", 200)
    fitting = next(n for n in range(len(events) + 1) if len(b"".join(events[:n + 1])) > RESPONSE_LIMIT)

    first, chunk = http_chunks_of_stream(gateway, "one-write", 200)

    cut = len(b"".join(events[1:fitting]))
    before, error = chunk[:cut], chunk[cut:]
    assert 1 < fitting < len(events) and first == events[0] and before == b"".join(events[1:fitting])
    assert error.startswith(b"data: {") and error.endswith(b"\n\n") and error.count(b"\n\n") == 1
    assert orjson.loads(error[6:])["error"]["message"].startswith("Response size is too large")


def test_events_the_upstream_sends_apart_are_relayed_each_as_it_arrives(burst_gateway):
    """The upstream sends the next event only once the client has read the previous one through the
    gateway: a relay that waited for more than one event would never finish (the client's timeout fails it)."""
    gateway, upstream = burst_gateway
    stream = gateway.sdk(timeout=30).chat.completions.create(
        model="paced", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True,
        stream_options={"include_usage": True})

    received = []
    for chunk in stream:
        received.append(chunk)
        upstream.released.put(None)

    expected = upstream_chunks(3)
    assert [c.model_dump(exclude_unset=True) for c in received] == [{**c, "model": "paced"} for c in expected]
    assert upstream.released.empty()
