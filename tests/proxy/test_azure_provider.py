"""The azure/ provider against the stand-in Azure OpenAI resource, over real HTTP on 127.0.0.1."""
from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import orjson
import pytest

from gateway_project.config.schema import LitellmParams
from gateway_project.errors import UpstreamError
from proxy.http import ClientPool
from proxy.providers.azure import AzureOpenAI
from tests.servers.fake_upstream import DEFAULT_REPLY, StandInClient
from tests.servers.process import ServerProcess, free_port

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "azure-key-never-shown"
AD_TOKEN = "entra-token-never-shown"
DEPLOYMENT_CHAT = "/openai/deployments/my-gpt4o/chat/completions"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello"}]}
T = TypeVar("T")


@pytest.fixture(scope="module")
def azure_base(tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "tests.servers.fake_azure", "--port", str(port),
                            "--api-key", API_KEY, "--ad-token", AD_TOKEN],
                           log_dir=tmp_path_factory.mktemp("fake-azure-logs"), name="fake-azure", cwd=REPO_ROOT)
    with server:
        server.wait_until_ready(f"http://127.0.0.1:{port}/_stand_in/health", timeout=15)
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def control(azure_base: str):
    with StandInClient(azure_base) as client:
        yield client


@pytest.fixture
def stand_in(control: StandInClient) -> StandInClient:
    """The stand-in with no recorded requests and no failure injection."""
    control.reset()
    control.clear()
    return control


@pytest.fixture
def call(azure_base: str, stand_in: StandInClient):
    """``call(operation, **litellm_params)``: run ``operation(provider)`` on a fresh event loop."""

    def run(operation: Callable[[AzureOpenAI], Awaitable[T]], **params: Any) -> T:
        clients = ClientPool(timeout=10)
        settings = {"model": "azure/my-gpt4o", "api_base": azure_base, "api_key": API_KEY,
                    "api_version": "2024-10-21", **params}
        provider = AzureOpenAI(LitellmParams(**settings), model_group="gpt-4o", clients=clients,
                               default_timeout=10)

        async def main() -> T:
            try:
                return await operation(provider)
            finally:
                await clients.aclose()

        return asyncio.run(main())

    return run


async def collect(bursts: AsyncIterator[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The chunks of a stream's bursts, in order; none of the bursts is empty."""
    chunks = []
    async for burst in bursts:
        assert burst
        chunks += burst
    return chunks


def only_request(stand_in: StandInClient) -> dict[str, Any]:
    [request] = stand_in.requests()
    return request


# URLs and authentication --------------------------------------------------------------------------


def test_chat_posts_to_the_deployment_url_with_the_api_version_and_api_key(call, stand_in):
    call(lambda azure: azure.chat(CHAT))

    request = only_request(stand_in)
    assert (request["path"], request["query"]) == (DEPLOYMENT_CHAT, "api-version=2024-10-21")
    assert request["headers"]["api-key"] == API_KEY
    assert "authorization" not in request["headers"]
    assert request["body"]["model"] == "my-gpt4o"


def test_api_version_defaults_to_the_current_ga_version(call, stand_in):
    call(lambda azure: azure.chat(CHAT), api_version=None)

    assert only_request(stand_in)["query"] == "api-version=2024-10-21"


def test_azure_ad_token_is_sent_as_a_bearer_token_instead_of_the_key(call, stand_in):
    call(lambda azure: azure.chat(CHAT), api_key=None, azure_ad_token=AD_TOKEN)

    headers = only_request(stand_in)["headers"]
    assert headers["authorization"] == f"Bearer {AD_TOKEN}"
    assert "api-key" not in headers


def test_an_api_base_naming_a_deployment_is_used_as_given(call, stand_in, azure_base):
    portal_url = f"{azure_base}/openai/deployments/portal-dep/chat/completions?api-version=2024-06-01"

    call(lambda azure: azure.embedding({"model": "gpt-4o", "input": "hi"}), api_base=portal_url, api_version=None)

    request = only_request(stand_in)
    assert (request["path"], request["query"]) == ("/openai/deployments/portal-dep/embeddings", "api-version=2024-06-01")


def test_a_v1_api_base_uses_openai_paths_without_an_api_version(call, stand_in, azure_base):
    answer = call(lambda azure: azure.chat(CHAT), api_base=f"{azure_base}/openai/v1")

    request = only_request(stand_in)
    assert (request["path"], request["query"]) == ("/openai/v1/chat/completions", "")
    assert request["headers"]["api-key"] == API_KEY
    assert answer["model"] == "my-gpt4o"


def test_a_deployment_without_api_base_is_refused_at_start():
    with pytest.raises(ValueError, match="api_base"):
        AzureOpenAI(LitellmParams(model="azure/my-gpt4o", api_key=API_KEY), model_group="gpt-4o",
                    clients=ClientPool(timeout=10), default_timeout=10)


# Operations ---------------------------------------------------------------------------------------


def test_chat_returns_azures_completion(call):
    answer = call(lambda azure: azure.chat(CHAT))

    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == DEFAULT_REPLY
    assert answer["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}


def test_stream_drops_the_prompt_filter_chunk_and_ends_with_usage(call, stand_in):
    chunks = call(lambda azure: collect(azure.chat_stream({**CHAT, "stream": True})))

    assert all(chunk["choices"] or chunk["usage"] for chunk in chunks)
    assert not any("prompt_filter_results" in chunk for chunk in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == DEFAULT_REPLY
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert only_request(stand_in)["body"]["stream_options"] == {"include_usage": True}


def test_completion_posts_to_the_deployment_completions_url(call, stand_in):
    answer = call(lambda azure: azure.completion({"model": "gpt-4o", "prompt": "Say hello"}))

    request = only_request(stand_in)
    assert (request["path"], request["query"]) == ("/openai/deployments/my-gpt4o/completions", "api-version=2024-10-21")
    assert answer["choices"][0]["text"] == DEFAULT_REPLY


def test_embedding_posts_to_the_deployment_embeddings_url(call, stand_in):
    answer = call(lambda azure: azure.embedding({"model": "gpt-4o", "input": ["a", "b"]}))

    request = only_request(stand_in)
    assert (request["path"], request["query"]) == ("/openai/deployments/my-gpt4o/embeddings", "api-version=2024-10-21")
    assert [item["index"] for item in answer["data"]] == [0, 1]


# Content filter and errors ------------------------------------------------------------------------


def test_a_filtered_prompt_is_a_400_content_filter_error(call):
    body = {**CHAT, "messages": [{"role": "user", "content": "please trigger content filter"}]}

    with pytest.raises(UpstreamError) as caught:
        call(lambda azure: azure.chat(body))

    assert (caught.value.status, caught.value.type) == (400, "content_filter")
    assert "content management policy" in caught.value.message


def test_a_filtered_answer_passes_through_with_its_finish_reason(call):
    body = {**CHAT, "messages": [{"role": "user", "content": "please trigger output filter"}]}

    answer = call(lambda azure: azure.chat(body))

    assert answer["choices"][0]["finish_reason"] == "content_filter"
    assert answer["choices"][0]["content_filter_results"]["violence"]["filtered"] is True


def test_a_wrong_key_is_a_401_naming_neither_key_nor_address(call, azure_base):
    host = azure_base.removeprefix("http://")

    with pytest.raises(UpstreamError) as caught:
        call(lambda azure: azure.chat(CHAT), api_key="wrong-azure-key")

    assert (caught.value.status, caught.value.type) == (401, "authentication_error")
    assert "Access denied" in caught.value.message
    assert "wrong-azure-key" not in caught.value.message and host not in caught.value.message


def test_secrets_and_address_echoed_by_azure_are_redacted(call, stand_in, azure_base):
    host = azure_base.removeprefix("http://")
    stand_in.behave(status=401, body={"error": {"code": "401", "message": (
        f"key {API_KEY} or token {AD_TOKEN} refused by {host} at {azure_base}{DEPLOYMENT_CHAT}")}})

    with pytest.raises(UpstreamError) as caught:
        call(lambda azure: azure.chat(CHAT), azure_ad_token=AD_TOKEN)

    assert caught.value.status == 401
    assert API_KEY not in caught.value.message and AD_TOKEN not in caught.value.message
    assert host not in caught.value.message


# The stand-in itself ------------------------------------------------------------------------------


def test_stand_in_opens_streams_with_a_prompt_filter_chunk(azure_base, stand_in):
    response = httpx2.post(f"{azure_base}{DEPLOYMENT_CHAT}?api-version=2024-10-21", headers={"api-key": API_KEY},
                           json={**CHAT, "stream": True}, trust_env=False)

    first = orjson.loads(response.text.split("\n\n")[0].removeprefix("data: "))
    assert first["choices"] == [] and first["prompt_filter_results"][0]["prompt_index"] == 0


def test_stand_in_answers_404_without_an_api_version(azure_base, stand_in):
    response = httpx2.post(f"{azure_base}{DEPLOYMENT_CHAT}", headers={"api-key": API_KEY}, json=CHAT,
                           trust_env=False)

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "404", "message": "Resource not found"}}
