"""Far more concurrent requests than a worker takes: fast 503s with retry-after, then full recovery."""
import concurrent.futures
import time

import httpx2
import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def small_gateway(e2e_dir, upstream):
    config = f"""model_list:
  - model_name: slow
    litellm_params: {{model: openai/slow, api_base: {upstream.base_url}/v1, api_key: os.environ/E2E_UPSTREAM_KEY}}
general_settings:
  master_key: {MASTER_KEY}
"""
    with launch_gateway(e2e_dir, config, name="overload", env={"GATEWAY_MAX_CONCURRENT_REQUESTS": "3"}) as live:
        yield live


def call(base_url):
    started = time.monotonic()
    response = httpx2.post(f"{base_url}/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                           json={"model": "slow", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    return response, time.monotonic() - started


def test_excess_requests_are_shed_fast_and_the_gateway_recovers(small_gateway, stand_in):
    stand_in.behave(delay_ms=800)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: call(small_gateway.base_url), range(12)))

    ok = [r for r, _ in results if r.status_code == 200]
    shed = [(r, seconds) for r, seconds in results if r.status_code == 503]
    assert len(ok) == 3 and len(shed) == 9
    assert all(r.headers["retry-after"] == "1" and seconds < 0.5 for r, seconds in shed)
    assert shed[0][0].json()["error"]["type"] == "service_unavailable"
    assert small_gateway.http.get("/health/liveliness").status_code == 200

    stand_in.reset()
    assert all(call(small_gateway.base_url)[0].status_code == 200 for _ in range(5))
