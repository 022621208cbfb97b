"""Typed, immutable models of the LiteLLM-format config.yaml.

Unknown keys are kept (LiteLLM configs carry many we do not use) and reported once at load, so a
migrated config starts; a known key of the wrong type stops start-up with the field's path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class LitellmParams(_Frozen):
    model: str
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    weight: float | None = Field(default=None, gt=0)

    @field_validator("model")
    @classmethod
    def _provider_prefixed(cls, value: str) -> str:
        if "/" not in value:
            raise ValueError("must be '<provider>/<model>', e.g. 'openai/gpt-4o'")
        return value

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0]

    @property
    def upstream_model(self) -> str:
        return self.model.split("/", 1)[1]


class ModelInfo(_Frozen):
    id: str | None = None
    # The model a custom deployment name runs (Azure: azure/my-deployment → gpt-4o), for prices.
    base_model: str | None = None
    mode: str = "chat"
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    max_tokens: int | None = None


class Deployment(_Frozen):
    model_name: str = Field(min_length=1)
    litellm_params: LitellmParams
    model_info: ModelInfo = ModelInfo()


class GeneralSettings(_Frozen):
    master_key: str | None = None
    database_url: str | None = None
    proxy_batch_write_at: float | None = Field(default=None, gt=0)
    disable_spend_logs: bool = False
    public_routes: tuple[str, ...] = ()
    admin_only_routes: tuple[str, ...] = ()
    allowed_routes: tuple[str, ...] = ()
    enforced_params: tuple[str, ...] = ()


Fallbacks = tuple[dict[str, tuple[str, ...]], ...]


class _Reliability(_Frozen):
    """Retry, fallback and cooldown settings: accepted in router_settings and litellm_settings."""

    num_retries: int | None = Field(default=None, ge=0)
    allowed_fails: int | None = Field(default=None, ge=0)
    cooldown_time: float | None = Field(default=None, ge=0)
    fallbacks: Fallbacks | None = None
    context_window_fallbacks: Fallbacks | None = None
    default_fallbacks: tuple[str, ...] | None = None


class LitellmSettings(_Reliability):
    callbacks: tuple[str, ...] = ()
    drop_params: bool = False
    request_timeout: float | None = Field(default=None, gt=0)


class RouterSettings(_Reliability):
    routing_strategy: Literal["simple-shuffle", "least-busy", "latency-based-routing"] = "simple-shuffle"
    timeout: float | None = Field(default=None, gt=0)


@dataclass(frozen=True)
class Reliability:
    """The effective settings: router_settings wins over litellm_settings, then the defaults."""

    num_retries: int
    allowed_fails: int
    cooldown_time: float
    fallbacks: dict[str, tuple[str, ...]]
    context_window_fallbacks: dict[str, tuple[str, ...]]
    default_fallbacks: tuple[str, ...]


def _merge(entries: Fallbacks | None) -> dict[str, tuple[str, ...]]:
    merged: dict[str, tuple[str, ...]] = {}
    for entry in entries or ():
        merged.update(entry)
    return merged


class GatewayConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model_list: tuple[Deployment, ...] = ()
    general_settings: GeneralSettings = GeneralSettings()
    litellm_settings: LitellmSettings = LitellmSettings()
    router_settings: RouterSettings = RouterSettings()
    environment_variables: dict[str, str] = Field(default_factory=dict)
    source: str = "built-in demo config"

    @property
    def reliability(self) -> Reliability:
        router, module = self.router_settings, self.litellm_settings

        def pick(name: str, default):
            value = getattr(router, name)
            value = getattr(module, name) if value is None else value
            return default if value is None else value

        return Reliability(num_retries=pick("num_retries", 0), allowed_fails=pick("allowed_fails", 3),
                           cooldown_time=pick("cooldown_time", 5.0), fallbacks=_merge(pick("fallbacks", ())),
                           context_window_fallbacks=_merge(pick("context_window_fallbacks", ())),
                           default_fallbacks=tuple(pick("default_fallbacks", ())))

    @property
    def model_names(self) -> tuple[str, ...]:
        """Public model names, in config order, without duplicates."""
        return tuple(dict.fromkeys(d.model_name for d in self.model_list))


def unknown_keys(model: BaseModel, path: str = "") -> list[str]:
    """Dotted paths of keys the schema does not know (kept, but unused)."""
    found: list[str] = [f"{path}{key}" for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        value: Any = getattr(model, name)
        if isinstance(value, BaseModel):
            found += unknown_keys(value, f"{path}{name}.")
        elif isinstance(value, tuple):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found += unknown_keys(item, f"{path}{name}.{index}.")
    return found
