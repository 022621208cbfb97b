"""Guardrail name (as config.yaml's ``callbacks`` and keys name it) → class, imported only when used.

The order here is the order they run in: cheap local checks first, then remote services.
"""
from __future__ import annotations

from importlib import import_module

from gateway_project.config import GatewayConfig
from guardrails.base import Guardrail

GUARDRAILS = {
    "blocked_user_check": "guardrails.builtin.blocked_users.BlockedUserCheck",
    "banned_keywords": "guardrails.builtin.banned_keywords.BannedKeywords",
    "hide_secrets": "guardrails.builtin.hide_secrets.HideSecrets",
    "llmguard_moderations": "guardrails.remote.llm_guard.LlmGuard",
    "llamaguard_moderations": "guardrails.remote.llama_guard.LlamaGuard",
    "google_text_moderation": "guardrails.remote.google_moderation.GoogleTextModeration",
}
ORDER = tuple(GUARDRAILS)


def guardrail_class(name: str) -> type[Guardrail]:
    module, _, attribute = GUARDRAILS[name].rpartition(".")
    return getattr(import_module(module), attribute)


def build(name: str, config: GatewayConfig) -> Guardrail:
    """The guardrail ``name`` configured from ``config``; ConfigError says what is missing."""
    return guardrail_class(name).from_config(config)
