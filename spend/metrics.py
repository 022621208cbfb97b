"""Prometheus metric families, defined once, and ``observe_call``: what one finished request adds.

Names and labels follow LiteLLM's prometheus callback (docs/metrics.md). Under several workers
``manage.py gateway`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers
start; prometheus-client then keeps every value in a per-process mmap file and a scrape sums them.
Updating a metric is an in-memory (or mmap) write: never a query, never a network call.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from django.conf import settings
from django.db import DatabaseError
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

logger = logging.getLogger("gateway.metrics")

MASTER_KEY_LABEL = "litellm_proxy_master_key"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"   # what generate_latest writes
MISSING = "None"   # LiteLLM's label value for missing data

PROXY_LABELS = ("api_key_alias", "api_provider", "client_ip", "end_user", "hashed_api_key", "model_id",
                "org_alias", "org_id", "requested_model", "route", "status_code", "team", "team_alias", "user",
                "user_agent", "user_email")
FAILURE_LABELS = PROXY_LABELS + ("exception_class", "exception_status")
CALL_LABELS = ("api_key_alias", "end_user", "hashed_api_key", "model", "model_id", "requested_model", "team",
               "team_alias", "user")
LATENCY_LABELS = ("api_key_alias", "end_user", "hashed_api_key", "model", "model_group", "team", "team_alias",
                  "user")
STATE_LABELS = ("api_base", "api_provider", "litellm_model_name", "model_id")
DEPLOYMENT_LABELS = STATE_LABELS + ("requested_model",)
PER_TOKEN_LABELS = STATE_LABELS + ("api_key_alias", "hashed_api_key", "team", "team_alias")
FALLBACK_LABELS = ("api_key_alias", "exception_class", "exception_status", "fallback_model", "hashed_api_key",
                   "requested_model", "team", "team_alias")
KEY_LABELS = ("api_key_alias", "hashed_api_key")
TEAM_LABELS = ("team", "team_alias")
USER_LABELS = ("user",)
CUSTOMER_LABELS = ("end_user",)
KEY_MODEL_LABELS = ("api_key_alias", "hashed_api_key", "model")

# Seconds: from a cache hit's milliseconds to a long streamed answer.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                   600.0, float("inf"))

PROXY_REQUESTS = Counter("litellm_proxy_total_requests_metric", "Requests to the proxy, by outcome", PROXY_LABELS)
PROXY_FAILURES = Counter("litellm_proxy_failed_requests_metric", "Requests the proxy answered with an error",
                         FAILURE_LABELS)
CALLS = Counter("litellm_requests_metric", "LLM calls", CALL_LABELS)
SPEND = Counter("litellm_spend_metric", "Spend in USD", CALL_LABELS)
INPUT_TOKENS = Counter("litellm_input_tokens_metric", "Prompt tokens", CALL_LABELS)
OUTPUT_TOKENS = Counter("litellm_output_tokens_metric", "Completion tokens", CALL_LABELS)
TOTAL_TOKENS = Counter("litellm_total_tokens_metric", "Prompt plus completion tokens", CALL_LABELS)
CACHED_TOKENS = Counter("litellm_cached_tokens_metric", "Prompt tokens the provider served from its cache",
                        CALL_LABELS)
TOTAL_LATENCY = Histogram("litellm_request_total_latency_metric", "Whole request, seconds", LATENCY_LABELS,
                          buckets=LATENCY_BUCKETS)
UPSTREAM_LATENCY = Histogram("litellm_llm_api_latency_metric", "Upstream call, seconds", LATENCY_LABELS,
                             buckets=LATENCY_BUCKETS)
OVERHEAD_LATENCY = Histogram("litellm_overhead_latency_metric", "Gateway's own time (total - upstream), seconds",
                             LATENCY_LABELS, buckets=LATENCY_BUCKETS)
FIRST_TOKEN_LATENCY = Histogram("litellm_llm_api_time_to_first_token_metric",
                                "Streams: upstream call start to its first chunk, seconds", LATENCY_LABELS,
                                buckets=LATENCY_BUCKETS)
QUEUE_TIME = Histogram("litellm_request_queue_time_seconds",
                       "Request arrival to the start of pre-call processing (authentication included), seconds",
                       LATENCY_LABELS, buckets=LATENCY_BUCKETS)
LATENCY_PER_OUTPUT_TOKEN = Histogram("litellm_deployment_latency_per_output_token",
                                     "Upstream seconds per completion token", PER_TOKEN_LABELS,
                                     buckets=LATENCY_BUCKETS)
# Deployment counters count attempts (a retried call counts once per deployment it tried).
DEPLOYMENT_REQUESTS = Counter("litellm_deployment_total_requests", "Calls per deployment", DEPLOYMENT_LABELS)
DEPLOYMENT_SUCCESSES = Counter("litellm_deployment_success_responses", "Successful calls per deployment",
                               DEPLOYMENT_LABELS)
DEPLOYMENT_FAILURES = Counter("litellm_deployment_failure_responses", "Failed calls per deployment",
                              DEPLOYMENT_LABELS + ("exception_status",))
DEPLOYMENT_COOLED_DOWN = Counter("litellm_deployment_cooled_down", "Times a deployment was put in cooldown",
                                 STATE_LABELS + ("exception_status",))
SUCCESSFUL_FALLBACKS = Counter("litellm_deployment_successful_fallbacks", "Fallbacks to another model group that "
                               "answered", FALLBACK_LABELS)
FAILED_FALLBACKS = Counter("litellm_deployment_failed_fallbacks", "Fallbacks to another model group that failed too",
                           FALLBACK_LABELS)
# Each worker keeps its own view of a deployment (cooldowns are per process): the scrape shows the worst
# state any live worker sees; a worker that exits drops its values.
DEPLOYMENT_STATE = Gauge("litellm_deployment_state", "0 healthy, 1 partial outage (last call failed), "
                         "2 complete outage (cooling down)", STATE_LABELS, multiprocess_mode="livemax")

# Proxied calls this worker is serving (streams until their last chunk); the scrape sums live workers.
IN_FLIGHT = Gauge("litellm_in_flight_requests", "LLM requests in progress", multiprocess_mode="livesum")
# Read from the database when /metrics/ is scraped, never on a request.
TOTAL_USERS = Gauge("litellm_total_users", "Internal users", multiprocess_mode="mostrecent")
TEAMS_COUNT = Gauge("litellm_teams_count", "Teams", multiprocess_mode="mostrecent")
# With Redis: spend events in the stream not yet written to the database (docs/spend.md, "Nothing lost");
# read from Redis when /metrics/ is scraped.
SPEND_EVENTS_PENDING = Gauge("gateway_spend_events_pending", "Spend events waiting in the Redis stream to be "
                             "written to the database", multiprocess_mode="mostrecent")

# Spend rows in a worker's memory, not yet written (or handed to the stream); summed over the live workers. Set by
# the writer after each round (about once a second) and by the worker answering the scrape: bounded by
# GATEWAY_SPEND_MAX_BACKLOG while the database takes writes (docs/spend.md, "When the writer falls behind").
SPEND_ROWS_BUFFERED = Gauge("gateway_spend_rows_buffered", "Spend rows in the workers' memory waiting to be "
                            "written", multiprocess_mode="livesum")

GUARDRAIL_REQUESTS = Counter("litellm_guardrail_requests", "Guardrail runs", ("guardrail_name", "hook_type", "status"))
GUARDRAIL_ERRORS = Counter("litellm_guardrail_errors", "Guardrail runs that refused the call or failed",
                           ("error_type", "guardrail_name", "hook_type"))
GUARDRAIL_LATENCY = Histogram("litellm_guardrail_latency_seconds", "Guardrail run time, seconds",
                              ("error_type", "guardrail_name", "hook_type", "status"), buckets=LATENCY_BUCKETS)

# Budget gauges: several workers set them, each from what its last request of that key/team/... knew.
# The most recent write is the freshest value (a budget reset raises it again, so min/max would stick).
def _budget_gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
    return Gauge(name, doc, labels, multiprocess_mode="mostrecent")


KEY_REMAINING = _budget_gauge("litellm_remaining_api_key_budget_metric", "Key budget left, USD", KEY_LABELS)
KEY_MAX = _budget_gauge("litellm_api_key_max_budget_metric", "Key max budget, USD", KEY_LABELS)
KEY_HOURS = _budget_gauge("litellm_api_key_budget_remaining_hours_metric", "Hours until the key budget resets",
                          KEY_LABELS)
TEAM_REMAINING = _budget_gauge("litellm_remaining_team_budget_metric", "Team budget left, USD", TEAM_LABELS)
TEAM_MAX = _budget_gauge("litellm_team_max_budget_metric", "Team max budget, USD", TEAM_LABELS)
TEAM_HOURS = _budget_gauge("litellm_team_budget_remaining_hours_metric", "Hours until the team budget resets",
                           TEAM_LABELS)
USER_REMAINING = _budget_gauge("litellm_remaining_user_budget_metric", "Internal user budget left, USD",
                               USER_LABELS)
USER_MAX = _budget_gauge("litellm_user_max_budget_metric", "Internal user max budget, USD", USER_LABELS)
USER_HOURS = _budget_gauge("litellm_user_budget_remaining_hours_metric", "Hours until the user budget resets",
                           USER_LABELS)
CUSTOMER_REMAINING = _budget_gauge("litellm_remaining_customer_budget_metric", "End-user (customer) budget left, "
                                   "USD", CUSTOMER_LABELS)
CUSTOMER_MAX = _budget_gauge("litellm_customer_max_budget_metric", "End-user (customer) max budget, USD",
                             CUSTOMER_LABELS)
CUSTOMER_HOURS = _budget_gauge("litellm_customer_budget_remaining_hours_metric",
                               "Hours until the end-user (customer) budget resets", CUSTOMER_LABELS)
KEY_MODEL_REQUESTS_LEFT = _budget_gauge("litellm_remaining_api_key_requests_for_model",
                                        "Requests the key may still make to the model this minute "
                                        "(model_rpm_limit)", KEY_MODEL_LABELS)
KEY_MODEL_TOKENS_LEFT = _budget_gauge("litellm_remaining_api_key_tokens_for_model",
                                      "Tokens the key may still use on the model this minute (model_tpm_limit)",
                                      KEY_MODEL_LABELS)
BUDGET_GAUGES = {"key": (KEY_REMAINING, KEY_MAX, KEY_HOURS), "team": (TEAM_REMAINING, TEAM_MAX, TEAM_HOURS),
                 "user": (USER_REMAINING, USER_MAX, USER_HOURS),
                 "customer": (CUSTOMER_REMAINING, CUSTOMER_MAX, CUSTOMER_HOURS)}


@dataclass(frozen=True, slots=True)
class BudgetSample:
    """One budget the request was admitted under, as it stands after the request."""

    kind: str                     # key | team | user | customer
    labels: tuple[str, ...]       # the gauge's label values, in its label order
    max_budget: float
    remaining: float
    reset_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallSample:
    """One finished request, as the metrics see it. Strings are label values (``None`` allowed)."""

    hashed_api_key: str | None
    api_key_alias: str | None
    team: str | None
    team_alias: str | None
    user: str | None
    end_user: str | None
    requested_model: str | None
    model: str | None           # the provider model; None when no deployment was picked
    model_id: str | None
    api_provider: str | None
    api_base: str | None
    route: str
    client_ip: str | None
    user_agent: str | None
    status_code: int
    exception_class: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    spend: float
    total_seconds: float
    upstream_seconds: float | None   # None: the upstream was never called
    first_token_seconds: float | None = None   # streams: upstream call start to the first chunk
    queue_seconds: float | None = None         # arrival until authenticated
    budgets: tuple[BudgetSample, ...] = ()
    key_model_left: tuple[int | None, int | None] | None = None   # (requests, tokens) left for the key on the model


def _label(value) -> str:
    return MISSING if value is None or value == "" else str(value)


# Resolving a label set costs a lock and a dict lookup per family; requests repeat the same few sets,
# so each set's children are resolved once per process.
@lru_cache(maxsize=4096)
def _call_children(values: tuple[str, ...]) -> tuple:
    return tuple(family.labels(*values) for family in (CALLS, SPEND, INPUT_TOKENS, OUTPUT_TOKENS, TOTAL_TOKENS,
                                                         CACHED_TOKENS))


@lru_cache(maxsize=4096)
def _latency_children(values: tuple[str, ...]) -> tuple:
    return tuple(family.labels(*values) for family in (TOTAL_LATENCY, UPSTREAM_LATENCY, OVERHEAD_LATENCY,
                                                         FIRST_TOKEN_LATENCY, QUEUE_TIME))


@lru_cache(maxsize=4096)
def _proxy_child(values: tuple[str, ...]):
    return PROXY_REQUESTS.labels(*values)


@lru_cache(maxsize=4096)
def _success_children(values: tuple[str, ...]) -> tuple:
    """A deployment's (state, total, success) children; ``values`` are DEPLOYMENT_LABELS' values."""
    return DEPLOYMENT_STATE.labels(*values[:-1]), DEPLOYMENT_REQUESTS.labels(*values), \
        DEPLOYMENT_SUCCESSES.labels(*values)


def observe_call(sample: CallSample) -> None:
    """Add one finished request (success or failure) to every family it concerns."""
    s = sample
    proxy_values = tuple(map(_label, (s.api_key_alias, s.api_provider, s.client_ip, s.end_user, s.hashed_api_key,
                                      s.model_id, None, None, s.requested_model, s.route, s.status_code, s.team,
                                      s.team_alias, s.user, s.user_agent, None)))
    _proxy_child(proxy_values).inc()
    failed = s.exception_class is not None
    if failed:
        # Failures are rare and their label sets varied: not worth a cache slot.
        PROXY_FAILURES.labels(*proxy_values, s.exception_class, str(s.status_code)).inc()
    base = tuple(map(_label, (s.api_key_alias, s.end_user, s.hashed_api_key)))
    people = tuple(map(_label, (s.team, s.team_alias, s.user)))
    if s.model is not None:
        _observe_llm_call(s, base, people, failed)
    for budget in s.budgets:
        observe_budget(budget)
    if s.key_model_left is not None:
        labels = (_label(s.api_key_alias), _label(s.hashed_api_key), _label(s.requested_model))
        requests, tokens = s.key_model_left
        if requests is not None:
            KEY_MODEL_REQUESTS_LEFT.labels(*labels).set(requests)
        if tokens is not None:
            KEY_MODEL_TOKENS_LEFT.labels(*labels).set(tokens)


def _observe_llm_call(s: CallSample, base: tuple, people: tuple, failed: bool) -> None:
    call_values = base + tuple(map(_label, (s.model, s.model_id, s.requested_model))) + people
    calls, spend, prompt, completion, total, cached = _call_children(call_values)
    calls.inc()
    if s.spend > 0:
        spend.inc(s.spend)
    if s.prompt_tokens:
        prompt.inc(s.prompt_tokens)
    if s.completion_tokens:
        completion.inc(s.completion_tokens)
    if s.prompt_tokens or s.completion_tokens:
        total.inc(s.prompt_tokens + s.completion_tokens)
    if s.cached_tokens:
        cached.inc(s.cached_tokens)
    total_latency, upstream_latency, overhead, first_token, queue = _latency_children(
        base + (_label(s.model), _label(s.requested_model)) + people)
    total_latency.observe(s.total_seconds)
    if s.queue_seconds is not None:
        queue.observe(s.queue_seconds)
    if s.first_token_seconds is not None:
        first_token.observe(s.first_token_seconds)
    if s.upstream_seconds is not None:
        upstream_latency.observe(s.upstream_seconds)
        overhead.observe(max(s.total_seconds - s.upstream_seconds, 0.0))
        if not failed and s.completion_tokens:
            LATENCY_PER_OUTPUT_TOKEN.labels(*map(_label, (
                s.api_base, s.api_provider, s.model, s.model_id, s.api_key_alias, s.hashed_api_key, s.team,
                s.team_alias))).observe(s.upstream_seconds / s.completion_tokens)


def observe_budget(budget: BudgetSample) -> None:
    remaining, maximum, hours = BUDGET_GAUGES[budget.kind]
    labels = tuple(map(_label, budget.labels))
    maximum.labels(*labels).set(budget.max_budget)
    remaining.labels(*labels).set(budget.remaining)
    if budget.reset_at is not None:
        left = (budget.reset_at - datetime.now(timezone.utc)).total_seconds() / 3600
        hours.labels(*labels).set(max(left, 0.0))


def observe_guardrail(name: str, hook_type: str, seconds: float, error: BaseException | None) -> None:
    """One guardrail run (``hook_type`` pre_call or post_call); ``error``: what it raised (a refusal too)."""
    status = "success" if error is None else "error"
    error_type = MISSING if error is None else type(error).__name__
    GUARDRAIL_REQUESTS.labels(name, hook_type, status).inc()
    GUARDRAIL_LATENCY.labels(error_type, name, hook_type, status).observe(seconds)
    if error is not None:
        GUARDRAIL_ERRORS.labels(error_type, name, hook_type).inc()


# --- Deployments: one observation per attempt (proxy.pipeline.attempts) ------------------------------

def deployment_labels(api_base: str | None, api_provider: str | None, model: str | None, model_id: str | None,
                      requested_model: str | None) -> tuple[str, ...]:
    """The label values of the deployment counters, in DEPLOYMENT_LABELS order (compute once per attempt)."""
    return tuple(map(_label, (api_base, api_provider, model, model_id, requested_model)))


def observe_attempt_succeeded(deployment: tuple[str, ...]) -> None:
    state, requests, successes = _success_children(deployment)
    requests.inc()
    successes.inc()
    state.set(0)


def observe_attempt_failed(deployment: tuple[str, ...], status: int, *, fault: bool, cooled_down: bool) -> None:
    """A failed attempt. ``fault``: the deployment's (5xx, 429, unreachable, refused credentials), which puts
    it in partial outage, or complete outage once cooling down; otherwise (a 400 for the request's
    content) it answered and stays healthy."""
    DEPLOYMENT_REQUESTS.labels(*deployment).inc()
    DEPLOYMENT_FAILURES.labels(*deployment, str(status)).inc()
    DEPLOYMENT_STATE.labels(*deployment[:-1]).set(2 if cooled_down else 1 if fault else 0)
    if cooled_down:
        DEPLOYMENT_COOLED_DOWN.labels(*deployment[:-1], str(status)).inc()


def observe_fallback(*, succeeded: bool, requested_model: str, fallback_model: str, hashed_api_key: str | None,
                     api_key_alias: str | None, team: str | None, team_alias: str | None, exception_class: str,
                     exception_status: int) -> None:
    """A fallback group was tried after ``requested_model`` failed with ``exception_*``."""
    family = SUCCESSFUL_FALLBACKS if succeeded else FAILED_FALLBACKS
    family.labels(*map(_label, (api_key_alias, exception_class, exception_status, fallback_model, hashed_api_key,
                                requested_model, team, team_alias))).inc()


# --- Scraping ----------------------------------------------------------------------------------------

def multiprocess_dir() -> str | None:
    # prometheus-client itself reads this variable when it is imported; `manage.py gateway` sets it.
    return settings.PROMETHEUS_MULTIPROC_DIR


async def refresh_totals() -> None:
    """User and team counts, when /metrics/ is scraped: two COUNT queries. A database outage keeps the
    last values."""
    from teams.models import Team, User

    try:
        TOTAL_USERS.set(await User.objects.acount())
        TEAMS_COUNT.set(await Team.objects.acount())
    except DatabaseError as exc:
        logger.warning("metrics: user and team counts not refreshed: %s", exc)


def exposition() -> tuple[bytes, str]:
    """The text format of every family (summed over the workers under several), and its content type.
    Reads the workers' files: call it off the event loop."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE
    return generate_latest(REGISTRY), CONTENT_TYPE


def prepare_multiprocess_dir(path: str) -> None:
    """Empty ``path`` (values of a previous run would be summed in) and create it."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def mark_process_dead(pid: int | None = None) -> None:
    """A worker exits: drop its live gauges' files (counters and histograms keep counting)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid or os.getpid(), settings.PROMETHEUS_MULTIPROC_DIR)
