"""google_text_moderation: the request's text is rated by Google Cloud Natural Language's
``documents:moderateText``; a category whose confidence reaches its threshold refuses the request.

Thresholds: ``google_moderation_confidence_threshold`` (default 0.8) for every category, unless the
category has its own setting (``toxic_confidence_threshold``, ``violent_threshold``, … below).

Authentication: ``google_moderation_api_key`` (an API key, sent as ``x-goog-api-key``), else the
service account of ``GOOGLE_APPLICATION_CREDENTIALS`` through google-auth (installed separately:
``pip install google-auth requests``; imported only then).
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx2

from gateway_project.config import ConfigError, GatewayConfig
from guardrails.base import Call, FailurePolicy, Guardrail, GuardrailBlocked, logger
from guardrails.config import env_setting, failure_policy
from guardrails.remote.http import describe, service_client
from guardrails.texts import prompt_text

MODERATE_PATH = "v1/documents:moderateText"
SCOPE = "https://www.googleapis.com/auth/cloud-language"
# category (as Google names it, normalised) → its litellm_settings threshold
CATEGORY_SETTINGS = {
    "toxic": "toxic_confidence_threshold", "insult": "insult_confidence_threshold",
    "profanity": "profanity_confidence_threshold", "derogatory": "derogatory_confidence_threshold",
    "sexual": "sexual_confidence_threshold", "death_harm_and_tragedy": "death_harm_and_tragedy_threshold",
    "violent": "violent_threshold", "firearms_and_weapons": "firearms_and_weapons_threshold",
    "public_safety": "public_safety_threshold", "health": "health_threshold",
    "religion_and_belief": "religion_and_belief_threshold", "illicit_drugs": "illicit_drugs_threshold",
    "war_and_conflict": "war_and_conflict_threshold", "politics": "politics_threshold",
    "finance": "finance_threshold", "legal": "legal_threshold",
}


def category_key(name: str) -> str:
    """Google's category name as a setting stem: "Death, Harm & Tragedy" → "death_harm_and_tragedy"."""
    return "_".join(name.lower().replace("&", "and").replace(",", " ").split())


class GoogleTextModeration(Guardrail):
    name = "google_text_moderation"
    remote = True

    def __init__(self, *, api_base: str, thresholds: dict[str, float], default_threshold: float,
                 auth: ApiKey | ServiceAccount, policy: FailurePolicy, timeout: float) -> None:
        self.api_base = api_base.rstrip("/") + "/"
        self.thresholds = thresholds
        self.default_threshold = default_threshold
        self.auth = auth
        self.policy = policy
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: GatewayConfig) -> GoogleTextModeration:
        settings = config.litellm_settings
        default = settings.google_moderation_confidence_threshold
        thresholds = {category: default if getattr(settings, setting) is None else getattr(settings, setting)
                      for category, setting in CATEGORY_SETTINGS.items()}
        return cls(api_base=settings.google_moderation_api_base, thresholds=thresholds, default_threshold=default,
                   auth=_auth(config), timeout=settings.guardrail_timeout,
                   policy=failure_policy(config, cls.name, settings.google_moderation_failure_mode))

    async def pre_call(self, call: Call) -> None:
        text = prompt_text(call.body)
        if not text:
            return
        categories = await self._moderate(text)
        if categories is None:
            return
        violation = self.violation(categories)
        if violation is not None:
            category, confidence, threshold = violation
            logger.info("Google text moderation: %s confidence %.3f ≥ threshold %s", category, confidence, threshold)
            raise GuardrailBlocked(f"Violated content safety policy. Guardrail={self.name}, category={category} "
                                   f"(confidence {confidence:.2f} >= threshold {threshold})")

    def violation(self, categories: list[dict[str, Any]]) -> tuple[str, float, float] | None:
        """The most confident category at or over its threshold: (category, confidence, threshold)."""
        worst = None
        for entry in categories:
            name, confidence = entry.get("name"), entry.get("confidence")
            if not isinstance(name, str) or not isinstance(confidence, (int, float)):
                continue
            category = category_key(name)
            threshold = self.thresholds.get(category, self.default_threshold)
            if confidence >= threshold and (worst is None or confidence > worst[1]):
                worst = (category, float(confidence), threshold)
        return worst

    async def _moderate(self, text: str) -> list[dict[str, Any]] | None:
        """Google's ``moderationCategories``, or None when the policy lets the call on without them."""
        try:
            headers = await self.auth.headers()
            response = await service_client(self.api_base).post(
                MODERATE_PATH, json={"document": {"type": "PLAIN_TEXT", "content": text}}, headers=headers,
                timeout=self.timeout)
            response.raise_for_status()
            categories = response.json().get("moderationCategories", [])
            if not isinstance(categories, list):
                raise ValueError("moderationCategories is not a list")
            return categories
        except (httpx2.HTTPError, ValueError, AttributeError) as exc:
            self.policy.unavailable(f"Google moderateText {describe(exc)}", f"{self.api_base}: {exc!r}")
            return None
        except ServiceAccountError as exc:
            self.policy.unavailable("no Google access token", str(exc))
            return None


class ApiKey:
    def __init__(self, key: str) -> None:
        self._headers = {"x-goog-api-key": key}

    async def headers(self) -> dict[str, str]:
        return self._headers


class ServiceAccountError(Exception):
    """google-auth could not get an access token."""


class ServiceAccount:
    """Bearer tokens from google-auth's default credentials, refreshed (in a thread) when expired."""

    def __init__(self) -> None:
        import google.auth
        from google.auth.transport.requests import Request

        self._credentials, _ = google.auth.default(scopes=[SCOPE])
        self._request = Request()
        self._lock = threading.Lock()

    async def headers(self) -> dict[str, str]:
        if not self._credentials.valid:
            await asyncio.to_thread(self._refresh)
        return {"Authorization": f"Bearer {self._credentials.token}"}

    def _refresh(self) -> None:
        from google.auth.exceptions import GoogleAuthError

        with self._lock:
            if self._credentials.valid:
                return
            try:
                self._credentials.refresh(self._request)
            except GoogleAuthError as exc:
                raise ServiceAccountError(str(exc)) from exc


def _auth(config: GatewayConfig) -> ApiKey | ServiceAccount:
    key = config.litellm_settings.google_moderation_api_key
    if key:
        return ApiKey(key)
    if not env_setting(config, "GOOGLE_APPLICATION_CREDENTIALS"):
        raise ConfigError(f"{config.source}: google_text_moderation needs credentials: set "
                          "litellm_settings.google_moderation_api_key or GOOGLE_APPLICATION_CREDENTIALS")
    try:
        from google.auth.exceptions import GoogleAuthError
    except ImportError:
        raise ConfigError(f"{config.source}: google_text_moderation with GOOGLE_APPLICATION_CREDENTIALS needs "
                          "google-auth: pip install google-auth requests") from None
    try:
        return ServiceAccount()
    except GoogleAuthError as exc:
        raise ConfigError(f"{config.source}: google_text_moderation: cannot load Google credentials: {exc}") from None
