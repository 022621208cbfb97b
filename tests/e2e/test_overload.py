"""Far more concurrent requests than a worker takes: the excess is refused at once with 503 and
retry-after (answered while the admitted requests are still held upstream, so nothing queued behind
them), memory stays bounded, and the gateway recovers fully."""
import concurrent.futures
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway, wait_for

pytestmark = pytest.mark.e2e

CAPACITY = 3
BURST = 200  # requests thrown at a full worker


@pytest.fixture(scope="module")
def small_gateway(e2e_dir, upstream):
    config = f"""model_list:
  - model_name: slow
    litellm_params: {{model: openai/slow, api_base: {upstream.base_url}/v1, api_key: os.environ/E2E_UPSTREAM_KEY}}
general_settings:
  master_key: {MASTER_KEY}
"""
    with launch_gateway(e2e_dir, config, name="overload",
                        env={"GATEWAY_MAX_CONCURRENT_REQUESTS": str(CAPACITY)}) as live:
        yield live


def call(base_url: str) -> httpx2.Response:
    # A request the gateway queued instead of refusing would wait for the held ones: the timeout turns
    # that into a failure of this test instead of a hang.
    return httpx2.post(f"{base_url}/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                       json={"model": "slow", "messages": [{"role": "user", "content": "hi"}]}, timeout=20,
                       trust_env=False)


def rss_bytes(leader_pid: int) -> int:
    """Resident memory of the gateway's process group (the server and any workers it started)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == leader_pid:  # the process group id
            total += int(fields[21]) * 4096  # rss, in pages
    return total


def test_excess_requests_are_shed_while_the_admitted_ones_are_held_and_the_gateway_recovers(small_gateway,
                                                                                              stand_in):
    stand_in.behave(hold=True)  # the upstream answers nothing until released
    with concurrent.futures.ThreadPoolExecutor(CAPACITY + 50) as pool:
        admitted = [pool.submit(call, small_gateway.base_url) for _ in range(CAPACITY)]
        stand_in.wait_for_requests(CAPACITY)  # the worker is full: all its slots wait on the upstream
        memory_before = rss_bytes(small_gateway.process.pid)
        assert memory_before > 0

        shed = list(pool.map(lambda _: call(small_gateway.base_url), range(BURST)))

        # Every excess request was answered while the admitted ones were still held upstream: refused,
        # not queued behind them (a queued one could not have been answered before the release).
        assert not any(future.done() for future in admitted)
        assert stand_in.behaviour()["hold"] is True
        assert [r.status_code for r in shed] == [503] * BURST
        assert all(r.headers["retry-after"] == "1" for r in shed)
        error = shed[0].json()["error"]
        assert error["type"] == "service_unavailable" and error["code"] == "503"
        assert "at capacity" in error["message"]
        assert len(stand_in.requests()) == CAPACITY  # the refused requests never reached the upstream
        assert small_gateway.http.get("/health/liveliness").status_code == 200
        # Bounded memory: refusing a burst costs no per-request state that stays behind.
        assert rss_bytes(small_gateway.process.pid) - memory_before < 64 * 2**20

        stand_in.behave(hold=False)
        assert [future.result().status_code for future in admitted] == [200] * CAPACITY

    # Full recovery: once the released requests have left the worker, it takes a full worker's worth at once.
    wait_for(lambda: call(small_gateway.base_url).status_code == 200)
    with concurrent.futures.ThreadPoolExecutor(CAPACITY) as pool:
        assert [r.status_code for r in pool.map(lambda _: call(small_gateway.base_url), range(CAPACITY))] == \
            [200] * CAPACITY
    assert all(call(small_gateway.base_url).status_code == 200 for _ in range(5))
