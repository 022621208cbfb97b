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


def _budget_lines(levels: list[Level]) -> tuple[list[BudgetLine], list[Level]]:
    budgeted = [lvl for lvl in levels if lvl.limits.max_budget is not None]
    return [BudgetLine(scope=lvl.scope(f":budget:{_period(lvl.limits)}"), limit=to_nano(lvl.limits.max_budget),
                       baseline=to_nano(lvl.limits.spend)) for lvl in budgeted], budgeted


def _buckets(levels: list[Level], model_group: str) -> tuple[list[Bucket], list[int], list[tuple[Level, str]]]:
    buckets, costs, owners = [], [], []
    for lvl in levels:
        for limit, kind, suffix in ((lvl.limits.rpm_limit, "requests", ":rpm"), (lvl.limits.tpm_limit, "tokens", ":tpm"),
                                    (lvl.model_rpm, "requests", f":model:{model_group}:rpm"),
                                    (lvl.model_tpm, "tokens", f":model:{model_group}:tpm")):
            if limit is not None:
                buckets.append(Bucket(scope=lvl.scope(suffix), capacity=int(limit)))
                costs.append(1 if kind == "requests" else 0)   # tokens are charged after the call
                owners.append((lvl, kind))
    return buckets, costs, owners


async def admit(store: CounterStore, levels: list[Level], call: CallShape, *, fail_open: bool = False) -> Admission:
    admission = Admission()
    if not any(lvl.limits.any or lvl.model_rpm or lvl.model_tpm for lvl in levels):
        return admission
    admission.active = True
    try:
        await _lease(store, levels, admission)
        try:
            await _take_buckets(store, levels, call, admission)
            await _reserve(store, levels, call, admission)
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


async def _lease(store: CounterStore, levels: list[Level], admission: Admission) -> None:
    limited = [lvl for lvl in levels if lvl.limits.max_parallel_requests is not None]
    if not limited:
        return
    admission.lease_id = uuid.uuid4().hex
    scopes = [lvl.scope(":parallel") for lvl in limited]
    full = await store.lease(scopes, [int(lvl.limits.max_parallel_requests) for lvl in limited], admission.lease_id)
    if full is not None:
        lvl = limited[full]
        raise _rate_error(lvl, "parallel_requests", int(lvl.limits.max_parallel_requests), 0, retry_after=1.0)
    admission.lease_scopes = scopes


async def _take_buckets(store: CounterStore, levels: list[Level], call: CallShape, admission: Admission) -> None:
    buckets, costs, owners = _buckets(levels, call.model_group)
    if not buckets:
        return
    left: list[float] = []
    refusal = await store.take(buckets, costs, left)
    if refusal is not None:
        lvl, kind = owners[refusal.index]
        raise _rate_error(lvl, kind, buckets[refusal.index].capacity, refusal.remaining, refusal.retry_after)
    model_left = {kind: max(0, int(level)) for (lvl, kind), bucket, level in zip(owners, buckets, left)
                  if lvl.kind == "key" and ":model:" in bucket.scope}
    if model_left:
        admission.key_model_left = (model_left.get("requests"), model_left.get("tokens"))
    admission.token_buckets = [b for b, (_, kind) in zip(buckets, owners) if kind == "tokens"]


async def _reserve(store: CounterStore, levels: list[Level], call: CallShape, admission: Admission) -> None:
    lines, budgeted = _budget_lines(levels)
    admission.budgeted = budgeted
    if not lines or call.price is None:
        if lines:
            logger.warning("model group %s has no known price: its budget cannot be enforced", call.model_group)
        return
    price = call.price
    left = await store.remaining(lines)
    admission.budget_left = left
    poorest = min(range(len(lines)), key=left.__getitem__)
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
