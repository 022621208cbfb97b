"""``stream=True`` relayed as server-sent events, chunk by chunk, with usage counted."""
import time

import pytest

from tests.e2e.conftest import wait_for

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
