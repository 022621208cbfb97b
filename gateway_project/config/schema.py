"""Typed, immutable models of the LiteLLM-format config.yaml.

Unknown keys are kept (LiteLLM configs carry many we do not use) and reported once at load, so a
migrated config starts; a known key of the wrong type stops start-up with the field's path.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway_project import secrets
from gateway_project.durations import parse_duration


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
    # Names a key's or team's `models` list may use to grant this model (e.g. "beta-models").
    access_groups: tuple[str, ...] = ()
    mode: str = "chat"
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    max_tokens: int | None = None


class Deployment(_Frozen):
    model_name: str = Field(min_length=1)
    litellm_params: LitellmParams
    model_info: ModelInfo = ModelInfo()


def _ip_networks(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network") from None
    return values


# Asymmetric only: a JWKS holds public keys, and HS* would verify an HMAC keyed with one of them.
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class JwtAuthSettings(_Frozen):
    """general_settings.litellm_jwtauth: how bearer JWTs are verified and mapped to callers (docs/jwt-auth.md).

    URL, issuer and audience fall back to JWT_PUBLIC_KEY_URL, JWT_ISSUER and JWT_AUDIENCE.
    """

    public_key_url: str | None = None           # comma-separated for several JWKS URLs
    public_key_ttl: float = Field(default=600, gt=0)
    public_key_refresh_interval: float = Field(default=5, ge=0)   # least seconds between unknown-kid refreshes
    issuer: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = Field(default=JWT_ALGORITHMS, min_length=1)
    leeway: float = Field(default=30, ge=0, le=300)
    admin_jwt_scope: str | None = "litellm_proxy_admin"
    user_id_jwt_field: str | None = "sub"
    team_id_jwt_field: str | None = None
    team_ids_jwt_field: str | None = None
    team_id_default: str | None = None
    user_roles_jwt_field: str | None = None
    user_allowed_roles: tuple[str, ...] | None = None
    end_user_id_jwt_field: str | None = None

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        refused = [value for value in values if value not in JWT_ALGORITHMS]
        if refused:
            raise ValueError(f"{', '.join(refused)} not accepted: JWTs are verified with the identity provider's "
                             f"public keys, so only {', '.join(JWT_ALGORITHMS)} may be listed")
        return values

    @model_validator(mode="after")
    def _roles_in_pairs(self) -> JwtAuthSettings:
        if (self.user_roles_jwt_field is None) != (self.user_allowed_roles is None):
            raise ValueError("user_roles_jwt_field and user_allowed_roles are set together or not at all")
        return self


def _durations(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)  # raises InvalidDuration (a ValueError) with the accepted forms
    return value


class AlertingArgs(_Frozen):
    """general_settings.alerting_args: how alerts are de-duplicated and where they go (docs/alerts.md)."""

    dedupe_window: float = Field(default=3600, gt=0)            # seconds: one alert per kind and subject
    budget_alert_ttl: float | None = Field(default=None, gt=0)  # LiteLLM's: the window for budget alerts
    outage_alert_ttl: float | None = Field(default=None, gt=0)  # LiteLLM's: the window for deployment alerts
    budget_thresholds: tuple[float, ...] = (0.8, 1.0)           # fractions of max_budget that alert
    slack_webhook_url: str | None = None                        # else the env SLACK_WEBHOOK_URL
    email_recipients: tuple[str, ...] = ()

    @field_validator("budget_thresholds")
    @classmethod
    def _fractions(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if any(value <= 0 for value in values):
            raise ValueError("thresholds are fractions of max_budget above 0, e.g. [0.8, 1.0]")
        return tuple(sorted(set(values)))


# Paths the gateway serves itself, each with everything under it: a pass-through path may not sit
# inside one, nor (with sub-paths) cover one. tests/proxy/test_passthrough_config.py holds this list
# against the URLconf, so a new gateway route cannot be shadowed silently.
GATEWAY_ROUTES = tuple(tuple(route.split("/")) for route in (
    "admin", "static", "key", "team", "user", "customer", "end_user", "spend", "global", "audit", "config",
    "chat", "completions", "embeddings", "models", "model", "model_group", "model_hub", "openai", "engines",
    "health", "docs", "openapi.json", "metrics", "public", "sso", "routes", "tag", "v1/chat", "v1/completions",
    "v1/embeddings", "v1/models", "v1/model", "v1/model_group"))
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()+,;=:@-]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Set by the HTTP client for the target, or hop-by-hop: never configured.
_UNSETTABLE_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
                                 "trailer", "upgrade", "proxy-connection", "proxy-authorization"})


class PassThroughEndpoint(_Frozen):
    """A general_settings.pass_through_endpoints entry: requests to ``path`` go to ``target`` as they are
    (docs/pass-through.md). A path ending in ``/*``, or ``include_subpath``, forwards its sub-paths too."""

    path: str
    target: str
    headers: dict[str, str] = Field(default_factory=dict)
    auth: bool = False
    forward_headers: bool = False
    include_subpath: bool = False

    @property
    def prefix(self) -> str:
        """``path`` without its ``/*``: the exact path, or the root of the sub-paths."""
        return self.path[:-2] if self.path.endswith("/*") else self.path

    @property
    def subpaths(self) -> bool:
        return self.include_subpath or self.path.endswith("/*")

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.prefix.split("/")[1:]) if self.prefix not in ("", "/") else ()

    @field_validator("path")
    @classmethod
    def _plain_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r}: a path starts with '/', e.g. '/v1/rerank'")
        prefix = value[:-2] if value.endswith("/*") else value
        if prefix not in ("", "/") and not all(_PATH_SEGMENT.fullmatch(s) and s not in (".", "..")
                                               for s in prefix[1:].split("/")):
            raise ValueError(f"{value!r}: use plain segments ('/v1/rerank', '/bria/*'): no '..', '//', "
                             "trailing '/', '*' except a final '/*', query or percent-encoding")
        return value

    @field_validator("target")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = urlsplit(value)
            url.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise ValueError("target is not a valid URL") from None
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("target must be an http:// or https:// URL with a host")
        if url.username is not None or url.password is not None or url.fragment:
            raise ValueError("target must not carry credentials or a fragment: put credentials in headers")
        return value

    @field_validator("headers")
    @classmethod
    def _resolved_headers(cls, values: dict[str, str]) -> dict[str, str]:
        return {name: _header_value(name, value) for name, value in values.items()}


def _header_value(name: str, value: str) -> str:
    """The header's value with an embedded ``os.environ/NAME`` (LiteLLM's "bearer os.environ/KEY") resolved."""
    if not _HEADER_NAME.fullmatch(name) or name.lower() in _UNSETTABLE_HEADERS:
        raise ValueError(f"header {name!r} cannot be configured")
    before, reference, env_name = value.partition(secrets.REFERENCE_PREFIX)
    if reference:
        try:
            value = before + secrets.resolve(reference + env_name)
        except secrets.SecretError as exc:
            raise ValueError(f"header {name!r}: {exc}") from None
    if any((ord(char) < 32 and char != "\t") or ord(char) == 127 for char in value):
        raise ValueError(f"header {name!r}: the value contains control characters")
    return value


def _within(inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
    return inner[:len(outer)] == outer


def _pass_through_conflict(entry: PassThroughEndpoint, earlier: tuple[PassThroughEndpoint, ...]) -> str | None:
    segments = entry.segments
    if not segments or any(_within(segments, route) or (entry.subpaths and _within(route, segments))
                           for route in GATEWAY_ROUTES):
        return "shadows the gateway's own routes"
    for other in earlier:
        if segments == other.segments:
            return f"duplicates {other.path!r}"
        if (other.subpaths and _within(segments, other.segments)) or (
                entry.subpaths and _within(other.segments, segments)):
            return f"overlaps {other.path!r}"
    return None


def _pass_through_paths(entries: tuple[PassThroughEndpoint, ...]) -> tuple[PassThroughEndpoint, ...]:
    for index, entry in enumerate(entries):
        if problem := _pass_through_conflict(entry, entries[:index]):
            raise ValueError(f"entry {index} ({entry.path!r}) {problem}")
    return entries


class GeneralSettings(_Frozen):
    master_key: str | None = None
    database_url: str | None = None
    # Seconds between batched spend writes (GATEWAY_SPEND_FLUSH_INTERVAL when unset).
    proxy_batch_write_at: float | None = Field(default=None, gt=0)
    # No spend-log rows; spend is still added to keys, teams, users and customers (docs/spend.md).
    disable_spend_logs: bool = False
    # The caller's IP is not kept in spend-log rows, their metadata or callbacks' events.
    disable_requester_ip_address_logging: bool = False
    # Accepted for LiteLLM configs; prompts are not stored in the spend log (check gateway.W003).
    store_prompts_in_spend_logs: bool = False
    public_routes: tuple[str, ...] = ()
    admin_only_routes: tuple[str, ...] = ()
    allowed_routes: tuple[str, ...] = ()
    enforced_params: tuple[str, ...] = ()
    allowed_ips: tuple[str, ...] = ()
    use_x_forwarded_for: bool = False
    # Peers whose X-Forwarded-For is believed (load balancers); nobody else's is.
    trusted_proxies: tuple[str, ...] = ()
    max_request_size_mb: float | None = Field(default=None, gt=0)
    max_response_size_mb: float | None = Field(default=None, gt=0)
    # When the shared counters (Redis) are unreachable: refuse requests (false) or admit them unchecked.
    counters_fail_open: bool = False
    # /public/model_hub and /model_hub readable without a key (docs/model-hub.md).
    enable_public_model_hub: bool = False
    enable_jwt_auth: bool = False
    litellm_jwtauth: JwtAuthSettings = JwtAuthSettings()
    # Background jobs and alerts (docs/background-jobs.md, docs/alerts.md). No period: kept forever.
    maximum_spend_logs_retention_period: str | None = None
    maximum_spend_logs_retention_interval: str | None = None
    maximum_audit_logs_retention_period: str | None = None   # docs/audit-logs.md; no period: kept forever
    alerting: tuple[Literal["slack", "email"], ...] = ()
    alert_types: tuple[str, ...] | None = None      # None: every kind
    alerting_threshold: float | None = Field(default=None, gt=0)   # LiteLLM's slow-request alert: accepted, unused
    alerting_args: AlertingArgs = AlertingArgs()
    pass_through_endpoints: tuple[PassThroughEndpoint, ...] = ()
    # Where os.environ/ references are read from (docs/secret-managers.md); applied before validation.
    key_management_system: secrets.KeyManagementSystem | None = None
    key_management_settings: secrets.KeyManagementSettings = secrets.KeyManagementSettings()

    _check_pass_through = field_validator("pass_through_endpoints")(_pass_through_paths)
    _check_allowed_ips = field_validator("allowed_ips", "trusted_proxies")(_ip_networks)
    _check_durations = field_validator("maximum_spend_logs_retention_period",
                                       "maximum_spend_logs_retention_interval",
                                       "maximum_audit_logs_retention_period")(_durations)


Fallbacks = tuple[dict[str, tuple[str, ...]], ...]


class _Reliability(_Frozen):
    """Retry, fallback and cooldown settings: accepted in router_settings and litellm_settings."""

    num_retries: int | None = Field(default=None, ge=0)
    allowed_fails: int | None = Field(default=None, ge=0)
    cooldown_time: float | None = Field(default=None, ge=0)
    fallbacks: Fallbacks | None = None
    context_window_fallbacks: Fallbacks | None = None
    default_fallbacks: tuple[str, ...] | None = None


FailureMode = Literal["open", "closed"]


def _threshold(default: float | None = None):
    return Field(default=default, ge=0, le=1)


class _Guardrails(_Frozen):
    """Guardrail settings, read by guardrails/ (docs/guardrails.md)."""

    blocked_user_list: tuple[str, ...] | str | None = None      # a list, or a file with one id a line
    banned_keywords_list: tuple[str, ...] | str | None = None
    guardrail_failure_mode: FailureMode = "closed"             # remote service down: refuse or let through
    guardrail_timeout: float = Field(default=10.0, gt=0)       # seconds per remote guardrail call
    llm_guard_mode: Literal["all", "key-specific", "request-specific"] = "all"
    llm_guard_failure_mode: FailureMode | None = None
    llamaguard_model_name: str | None = None                    # sagemaker/<endpoint name>
    llamaguard_unsafe_content_categories: str | None = None     # file replacing the default categories
    llamaguard_failure_mode: FailureMode | None = None
    google_moderation_api_base: str = "https://language.googleapis.com"
    google_moderation_api_key: str | None = None
    google_moderation_failure_mode: FailureMode | None = None
    google_moderation_confidence_threshold: float = _threshold(0.8)
    toxic_confidence_threshold: float | None = _threshold()
    insult_confidence_threshold: float | None = _threshold()
    profanity_confidence_threshold: float | None = _threshold()
    derogatory_confidence_threshold: float | None = _threshold()
    sexual_confidence_threshold: float | None = _threshold()
    death_harm_and_tragedy_threshold: float | None = _threshold()
    violent_threshold: float | None = _threshold()
    firearms_and_weapons_threshold: float | None = _threshold()
    public_safety_threshold: float | None = _threshold()
    health_threshold: float | None = _threshold()
    religion_and_belief_threshold: float | None = _threshold()
    illicit_drugs_threshold: float | None = _threshold()
    war_and_conflict_threshold: float | None = _threshold()
    politics_threshold: float | None = _threshold()
    finance_threshold: float | None = _threshold()
    legal_threshold: float | None = _threshold()


class LitellmSettings(_Reliability, _Guardrails):
    callbacks: tuple[str, ...] = ()
    # Logging callbacks for every request ("langfuse": LANGFUSE_* env vars), docs/team-logging.md.
    success_callback: tuple[str, ...] = ()
    failure_callback: tuple[str, ...] = ()
    drop_params: bool = False
    request_timeout: float | None = Field(default=None, gt=0)
    store_audit_logs: bool = False   # record changes to keys, teams, users, customers (docs/audit-logs.md)
    # /metrics (callbacks: ["prometheus"], docs/metrics.md) asks for a key unless this is false.
    require_auth_for_metrics_endpoint: bool = True
    # The model groups the public model hub lists (empty: every model); docs/model-hub.md.
    public_model_groups: tuple[str, ...] = ()


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
