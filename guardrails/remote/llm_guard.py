"""llmguard_moderations: the request's text is checked by an LLM Guard API server
(``POST {LLM_GUARD_API_BASE}/analyze/prompt``); ``is_valid: false`` refuses the request.

``llm_guard_mode`` says for whom it runs when switched on in ``callbacks``: ``all``, ``key-specific``
(keys with ``permissions.enable_llm_guard_check: true``) or ``request-specific`` (requests with
``metadata.permissions.enable_llm_guard_check: true``).
"""
from __future__ import annotations

from typing import Any

import orjson
import httpx2

from gateway_project.config import ConfigError, GatewayConfig
from guardrails.base import Call, FailurePolicy, Guardrail, GuardrailBlocked, logger
from guardrails.config import env_setting, failure_policy
from guardrails.remote.http import describe, service_client
from guardrails.texts import prompt_text

PERMISSION = "enable_llm_guard_check"


class LlmGuard(Guardrail):
    name = "llmguard_moderations"
    remote = True

    def __init__(self, *, api_base: str, mode: str, policy: FailurePolicy, timeout: float,
                 api_key: str | None = None) -> None:
        self.api_base = api_base.rstrip("/") + "/"
        self.mode = mode
        self.policy = policy
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @classmethod
    def from_config(cls, config: GatewayConfig) -> LlmGuard:
        api_base = env_setting(config, "LLM_GUARD_API_BASE")
        if not api_base:
            raise ConfigError(f"{config.source}: llmguard_moderations needs the LLM Guard API's address: set "
                              "LLM_GUARD_API_BASE in the environment or in environment_variables")
        settings = config.litellm_settings
        return cls(api_base=api_base, mode=settings.llm_guard_mode, timeout=settings.guardrail_timeout,
                   policy=failure_policy(config, cls.name, settings.llm_guard_failure_mode),
                   api_key=env_setting(config, "LLM_GUARD_API_KEY"))

    def wanted(self, call: Call) -> bool:
        if self.mode == "key-specific":
            return call.key_permissions.get(PERMISSION) is True
        if self.mode == "request-specific":
            return call.request_permissions.get(PERMISSION) is True
        return True

    async def pre_call(self, call: Call) -> None:
        text = prompt_text(call.body)
        if not text:
            return
        verdict = await self._analyze(text)
        if verdict is None:
            return
        logger.info("LLM Guard: Received response - %s", orjson.dumps(verdict).decode())
        if verdict.get("is_valid") is False:
            raise GuardrailBlocked(f"Violated content safety policy. Guardrail={self.name}, "
                                   f"scanners={_failed_scanners(verdict)}")

    async def _analyze(self, text: str) -> dict[str, Any] | None:
        """LLM Guard's verdict, or None when the service gave none and the policy lets the call on."""
        try:
            response = await service_client(self.api_base).post(
                "analyze/prompt", json={"prompt": text}, headers=self.headers, timeout=self.timeout)
            response.raise_for_status()
            verdict = response.json()
            if not isinstance(verdict, dict):
                raise ValueError("not a JSON object")
            return verdict
        except (httpx2.HTTPError, ValueError) as exc:
            self.policy.unavailable(f"LLM Guard {describe(exc)}", f"{self.api_base}: {exc!r}")
            return None


def _failed_scanners(verdict: dict[str, Any]) -> list[str]:
    """The scanners that flagged the prompt (a risk score above 0), most certain first."""
    scanners = verdict.get("scanners")
    if not isinstance(scanners, dict):
        return []
    scores = {name: score for name, score in scanners.items() if isinstance(score, (int, float)) and score > 0}
    return sorted(scores, key=scores.get, reverse=True)
