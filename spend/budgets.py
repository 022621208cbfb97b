"""Admission: budgets and rpm/tpm/parallel limits of every level a request belongs to.

Budgets are reserved before the upstream call and settled after it, so concurrent requests on any
number of instances cannot overspend: a request reserves the most it can cost (its prompt, bounded
by its UTF-8 size, which no byte-level BPE tokenizer exceeds, plus ``max_tokens`` of output). When
the remaining budget cannot pay for that much output, ``max_tokens`` is lowered to what it can pay
for, so the call cannot cost more than was reserved. Under a budget a request that sets no
``max_tokens`` gets ``DEFAULT_OUTPUT_TOKENS`` (or the deployment's ``model_info.max_tokens``).
"""
from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from gateway_project.errors import BudgetExceededError, RateLimitError, ServiceUnavailableError
from gateway_project.snapshots import Derived
from spend.counters import NANO, Bucket, BudgetLine, CounterStore, CountersUnavailable, to_nano
from spend.prices import Price
from teams.cache import Limits

logger = logging.getLogger("gateway.limits")

DEFAULT_OUTPUT_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class Level:
    """A key, team, user or customer whose limits apply to a request."""

    kind: str          # key | team | user | customer
    ident: str
    label: str         # how errors name it
    limits: Limits
    model_rpm: int | None = None
    model_tpm: int | None = None

    def scope(self, suffix: str = "") -> str:
        return f"{self.kind}:{self.ident}{suffix}"


@dataclass(slots=True)
class Admission:
    lines: list[BudgetLine] = field(default_factory=list)
    reserved: int = 0
    token_buckets: list[Bucket] = field(default_factory=list)
    lease_scopes: list[str] = field(default_factory=list)
    lease_id: str = ""
    max_tokens: int | None = None       # set when the budget lowered (or imposed) max_tokens
    active: bool = False
    budgeted: list[Level] = field(default_factory=list)   # the levels with a max_budget (for metrics)
    budget_left: list[int] | None = None  # nano-USD each had left before this call (None: not read)
    key_model_left: tuple[int | None, int | None] | None = None   # the key's model rpm/tpm buckets after taking


@dataclass(frozen=True, slots=True)
class CallShape:
    """What admission needs to know of the call."""

    prompt_bytes: int
    max_tokens: int | None
    output_cap: int | None              # the deployment's model_info.max_tokens
    price: Price | None
    model_group: str


def _period(limits: Limits) -> str:
    """A budget period: until the next reset, and since the last time spend was set by hand."""
    reset = limits.budget_reset_at.isoformat() if limits.budget_reset_at else "all"
    return f"{reset}:{limits.budget_epoch}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What admission checks for a set of levels calling a model group: the counters' names and limits,
    derived once per set (the levels come from cached records, and so does the plan)."""

    levels: tuple[Level, ...]
    active: bool                              # any limit at all
    leased: tuple[Level, ...]                 # with max_parallel_requests
    lease_scopes: list[str]
    lease_limits: list[int]
    buckets: list[Bucket]
    costs: list[int]                          # 1 per request bucket; tokens are charged after the call
    owners: list[tuple[Level, str]]           # (level, "requests" | "tokens") of each bucket
    token_buckets: list[Bucket]
    key_model: tuple[int | None, int | None]  # indexes of the key's model rpm / tpm buckets
    lines: list[BudgetLine]
    budgeted: list[Level]                     # the levels with a max_budget, one per line


def _plan(levels: tuple[Level, ...], model_group: str) -> Plan:
    buckets, costs, owners = [], [], []
    key_model: list[int | None] = [None, None]
    for lvl in levels:
        for limit, kind, suffix in ((lvl.limits.rpm_limit, "requests", ":rpm"), (lvl.limits.tpm_limit, "tokens", ":tpm"),
                                    (lvl.model_rpm, "requests", f":model:{model_group}:rpm"),
                                    (lvl.model_tpm, "tokens", f":model:{model_group}:tpm")):
            if limit is not None:
                if lvl.kind == "key" and suffix.startswith(":model:"):
                    key_model[kind == "tokens"] = len(buckets)
                buckets.append(Bucket(scope=lvl.scope(suffix), capacity=int(limit)))
                costs.append(1 if kind == "requests" else 0)
                owners.append((lvl, kind))
    budgeted = [lvl for lvl in levels if lvl.limits.max_budget is not None]
    leased = tuple(lvl for lvl in levels if lvl.limits.max_parallel_requests is not None)
    return Plan(
        levels=levels, active=any(lvl.limits.any or lvl.model_rpm or lvl.model_tpm for lvl in levels),
        leased=leased, lease_scopes=[lvl.scope(":parallel") for lvl in leased],
        lease_limits=[int(lvl.limits.max_parallel_requests) for lvl in leased],
        buckets=buckets, costs=costs, owners=owners,
        token_buckets=[b for b, (_, kind) in zip(buckets, owners) if kind == "tokens"], key_model=tuple(key_model),
        lines=[BudgetLine(scope=lvl.scope(f":budget:{_period(lvl.limits)}"), limit=to_nano(lvl.limits.max_budget),
                          baseline=to_nano(lvl.limits.spend)) for lvl in budgeted],
        budgeted=budgeted)


_PLANS: Derived[Plan] = Derived(max_entries=4096)


def plan_for(levels: list[Level], model_group: str) -> Plan:
    """The plan of these levels, made once for the very level objects (levels are immutable, and a record's
    change makes new ones)."""
    sources = tuple(levels)
    return _PLANS.get(sources, model_group, lambda: _plan(sources, model_group))


async def admit(store: CounterStore, levels: list[Level], call: CallShape, *, fail_open: bool = False) -> Admission:
    plan = plan_for(levels, call.model_group)
    if not plan.active:
        return Admission()
    admission = Admission(active=True)
    try:
        await _lease(store, plan, admission)
        try:
            await _take_buckets(store, plan, admission)
            await _reserve(store, plan, call, admission)
        except BaseException:
            await store.unlease(admission.lease_scopes, admission.lease_id)
            raise
    except CountersUnavailable:
        if fail_open:
            logger.warning("shared counters unreachable: request admitted without budget and rate-limit "
                           "checks (counters_fail_open is on)")
            return Admission()
        logger.error("shared counters unreachable: request refused (counters_fail_open is off)")
        raise ServiceUnavailableError(
            "Budget and rate-limit checks are unavailable (the shared counters cannot be reached), so the "
            "request is refused. Set general_settings.counters_fail_open: true to let requests through.") from None
    return admission


async def _lease(store: CounterStore, plan: Plan, admission: Admission) -> None:
    if not plan.leased:
        return
    admission.lease_id = uuid.uuid4().hex
    full = await store.lease(plan.lease_scopes, plan.lease_limits, admission.lease_id)
    if full is not None:
        lvl = plan.leased[full]
        raise _rate_error(lvl, "parallel_requests", plan.lease_limits[full], 0, retry_after=1.0)
    admission.lease_scopes = plan.lease_scopes


async def _take_buckets(store: CounterStore, plan: Plan, admission: Admission) -> None:
    if not plan.buckets:
        return
    left: list[float] = []
    refusal = await store.take(plan.buckets, plan.costs, left)
    if refusal is not None:
        lvl, kind = plan.owners[refusal.index]
        raise _rate_error(lvl, kind, plan.buckets[refusal.index].capacity, refusal.remaining, refusal.retry_after)
    if plan.key_model != (None, None):
        admission.key_model_left = tuple(None if index is None else max(0, int(left[index]))
                                         for index in plan.key_model)
    admission.token_buckets = plan.token_buckets


async def _reserve(store: CounterStore, plan: Plan, call: CallShape, admission: Admission) -> None:
    lines, budgeted = plan.lines, plan.budgeted
    admission.budgeted = budgeted
    if not lines or call.price is None:
        if lines:
            logger.warning("model group %s has no known price: its budget cannot be enforced", call.model_group)
        return
    price = call.price
    left = await store.remaining(lines)
    admission.budget_left = left
    poorest = min(range(len(lines)), key=left.__getitem__) if len(lines) > 1 else 0
    prompt_cost = to_nano(call.prompt_bytes * price.input_cost_per_token)
    wanted = call.max_tokens or call.output_cap or DEFAULT_OUTPUT_TOKENS
    affordable = _affordable_output(left[poorest] - prompt_cost, price)
    if left[poorest] <= 0 or left[poorest] < prompt_cost or (affordable is not None and affordable < 1):
        raise _budget_error(budgeted[poorest], lines[poorest], left[poorest])
    output_tokens = wanted if affordable is None else min(wanted, affordable)
    amount = prompt_cost + to_nano(output_tokens * price.output_cost_per_token)
    failed = await store.reserve(lines, amount)
    if failed is not None:  # another request took the room in between
        raise _budget_error(budgeted[failed], lines[failed], (await store.remaining([lines[failed]]))[0])
    admission.lines, admission.reserved = lines, amount
    if price.output_cost_per_token > 0 and output_tokens != call.max_tokens:
        admission.max_tokens = output_tokens


def _affordable_output(room: int, price: Price) -> int | None:
    per_token = to_nano(price.output_cost_per_token) if price.output_cost_per_token else 0
    if per_token <= 0:
        return None
    return math.floor(room / (price.output_cost_per_token * NANO)) if room > 0 else 0


async def finish(store: CounterStore, admission: Admission, *, cost: float | None, tokens: int) -> None:
    """After the call: the reservation becomes the actual cost, tokens are charged, leases freed."""
    if not admission.active:
        return
    try:
        if admission.lines:
            await store.settle(admission.lines, admission.reserved, to_nano(cost or 0.0))
        if admission.token_buckets and tokens:
            await store.spend_tokens(admission.token_buckets, tokens)
        if admission.lease_scopes:
            await store.unlease(admission.lease_scopes, admission.lease_id)
    except CountersUnavailable:
        logger.error("could not settle a request's counters (shared counters unreachable); the spend log "
                     "still records it")


def _budget_error(level: Level, line: BudgetLine, left: int) -> BudgetExceededError:
    spent = (line.limit - left) / NANO
    names = {"key": "Key", "team": "Team", "user": "User", "customer": "Customer"}
    subject = f"{names[level.kind]}={level.label if level.kind == 'key' else level.ident}"
    return BudgetExceededError(f"Budget has been exceeded! {subject} Current cost: {spent}, "
                               f"Max budget: {level.limits.max_budget}", param=None)


def _rate_error(level: Level, kind: str, limit: int, remaining: int, retry_after: float) -> RateLimitError:
    wait = max(1, math.ceil(retry_after))
    resets = datetime.fromtimestamp(datetime.now(timezone.utc).timestamp() + wait, timezone.utc)
    descriptor = {"key": "api_key", "team": "team", "user": "user", "customer": "end_user"}[level.kind]
    unit = "requests" if kind == "parallel_requests" else kind
    headers = {"retry-after": str(wait), f"x-ratelimit-limit-{unit}": str(limit),
               f"x-ratelimit-remaining-{unit}": str(remaining), f"x-ratelimit-reset-{unit}": f"{wait}s"}
    return RateLimitError(
        f"Rate limit exceeded for {descriptor}: {level.label}. Limit type: {kind}. Current limit: {limit}, "
        f"Remaining: {remaining}. Limit resets at: {resets:%Y-%m-%d %H:%M:%S} UTC", headers=headers)
