"""Azure OpenAI: OpenAI's API behind per-deployment URLs, an ``api-version`` query and an ``api-key`` header.

    litellm_params:
      model: azure/<deployment-name>
      api_base: https://<resource>.openai.azure.com
      api_key: os.environ/AZURE_API_KEY        # or azure_ad_token: os.environ/AZURE_AD_TOKEN (Entra ID)
      api_version: "2024-10-21"                 # the default

Two URL shapes are supported:

- deployment URLs, ``{api_base}/openai/deployments/{deployment}/chat/completions?api-version=…``. An
  ``api_base`` that already names a deployment (``…/openai/deployments/<name>[/chat/completions][?api-version=…]``,
  as copied from the portal) is used as given: its deployment wins over ``model``, and its api-version
  applies unless ``api_version`` is set;
- the v1 API, when ``api_base`` ends with ``/openai/v1``: OpenAI's paths, no api-version.

Other surfaces (``api_version: preview`` routes, assistants, responses) are not supported. Usage in
streams (``stream_options.include_usage``) needs a recent api-version: 2024-10-21 GA or later.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx2
import orjson

from gateway_project.config.schema import LitellmParams
from gateway_project.errors import UpstreamError
from proxy.http import ClientPool
from proxy.providers.base import final_as
from proxy.providers.openai_compatible import OpenAICompatible

DEFAULT_API_VERSION = "2024-10-21"
_DEPLOYMENT_URL = re.compile(r"(?P<base>.*?/openai/deployments/[^/?#]+)[^?#]*(?:\?(?P<query>[^#]*))?")


class AzureOpenAI(OpenAICompatible):
    name = "azure"
    default_api_base = ""  # every Azure resource has its own address

    @classmethod
    def config_problem(cls, params: LitellmParams) -> str | None:
        if not params.api_base:
            return "azure deployments need litellm_params.api_base (https://<resource>.openai.azure.com)"
        return None

    def __init__(self, params: LitellmParams, *, model_group: str, clients: ClientPool,
                 default_timeout: float) -> None:
        if problem := self.config_problem(params):  # system check gateway.E004 says so at start
            raise ValueError(f"model group {model_group!r}: {problem}")
        super().__init__(params, model_group=model_group, clients=clients, default_timeout=default_timeout)
        token = (params.model_extra or {}).get("azure_ad_token")
        self._ad_token = token if isinstance(token, str) and token else None
        self._host = urlsplit(self.api_base).netloc
        self._v1 = self.api_base.endswith("/openai/v1")
        given = _DEPLOYMENT_URL.fullmatch(self.api_base)
        if given:
            self._deployment_base = given["base"]
            query_version = parse_qs(given["query"] or "").get("api-version", [None])[0]
        else:
            self._deployment_base = f"{self.api_base}/openai/deployments/{quote(self.model, safe='')}"
            query_version = None
        self.api_version = params.api_version or query_version or DEFAULT_API_VERSION

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self._ad_token:
            headers["authorization"] = f"Bearer {self._ad_token}"
        elif self.params.api_key:
            headers["api-key"] = self.params.api_key
        return headers

    def url(self, path: str) -> str:
        if self._v1:
            return self.api_base + path
        return f"{self._deployment_base}{path}?api-version={quote(self.api_version, safe='')}"

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        # Azure opens a stream with a chunk that only carries prompt_filter_results (choices: []);
        # clients expect every chunk to have choices, or to be the usage chunk.
        async with aclosing(super().chat_stream(body)) as bursts:  # a client leaving closes the upstream now
            async for burst in bursts:
                chunks = [chunk for chunk in burst if chunk.get("choices") or chunk.get("usage")]
                if chunks:
                    yield final_as(burst, chunks)

    def failure(self, response: httpx2.Response) -> UpstreamError:
        error = super().failure(response)
        detail = _error_detail(response)
        # Azure refuses a prompt its content filter flagged with code "content_filter" and no type.
        if detail.get("code") == "content_filter" and not isinstance(detail.get("type"), str):
            error.type = "content_filter"
        return error

    def redact(self, text: str) -> str:
        """Also the Entra ID token and the bare host: it names the customer's Azure resource."""
        text = super().redact(text)
        if self._ad_token:
            text = text.replace(self._ad_token, "[REDACTED]")
        return text.replace(self._host, "[upstream]") if self._host else text


def _error_detail(response: httpx2.Response) -> dict[str, Any]:
    try:
        error = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}
