"""Step 5: budgets and rpm/tpm/parallel limits of the key, its team, its user and the end user."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway_project.errors import InvalidRequestError
from gateway_project.snapshots import Derived
from keys.cache import KeyRecord
from proxy.pipeline.context import RequestContext
from proxy.runtime import get_runtime
from spend.budgets import CallShape, Level, admit, finish
from teams.cache import CustomerRecord, TeamRecord, UserRecord, customer_lookup, user_lookup

PER_MESSAGE_BYTES = 8   # role and separators, generously


def _key_level(key: KeyRecord, model_group: str) -> Level:
    label = f"{key.key_alias or key.key_name} ({key.key_name})"
    return Level(kind="key", ident=key.token, label=label, limits=key.limits,
                 model_rpm=(key.model_rpm_limit or {}).get(model_group),
                 model_tpm=(key.model_tpm_limit or {}).get(model_group))


def _user_level(user: UserRecord, model_group: str) -> Level:
    return Level(kind="user", ident=user.user_id, label=user.user_id, limits=user.limits)


def _team_level(team: TeamRecord, model_group: str) -> Level:
    return Level(kind="team", ident=team.team_id, label=team.team_id, limits=team.limits)


def _customer_level(customer: CustomerRecord, model_group: str) -> Level:
    return Level(kind="customer", ident=customer.user_id, label=customer.user_id, limits=customer.limits)


# A level is made once per record (records are immutable snapshots from the caches), and the same level
# objects let spend.budgets reuse its plan of counters.
_LEVELS: Derived[Level] = Derived(max_entries=8192)


def _level(make: Callable[[Any, str], Level], record: Any, model_group: str) -> Level:
    return _LEVELS.get((record,), model_group, lambda: make(record, model_group))


async def _levels(ctx: RequestContext) -> list[Level]:
    principal, levels, group = ctx.principal, [], ctx.model_group
    if principal.key is not None:
        levels.append(_level(_key_level, principal.key, group))
        user = await user_lookup(principal.user_id) if principal.user_id else None
        if user is not None:
            levels.append(_level(_user_level, user, ""))
    if principal.team is not None:
        levels.append(_level(_team_level, principal.team, ""))
    if ctx.end_user:
        customer = await customer_lookup(ctx.end_user)
        if customer is not None and customer.blocked:
            # Blocked through /customer/block: refused whatever guardrails are configured.
            raise InvalidRequestError(f"User blocked from making LLM API Calls. User={customer.user_id}",
                                      param="user")
        if customer is not None:
            levels.append(_level(_customer_level, customer, ""))
    return levels


def prompt_bytes(body: dict[str, Any]) -> int:
    """An upper bound of the prompt's tokens: byte-level BPE tokens are at least one byte each."""
    messages = body.get("messages")
    if isinstance(messages, list):
        return sum(PER_MESSAGE_BYTES + len(str(m.get("content") or "").encode()) for m in messages
                   if isinstance(m, dict)) + PER_MESSAGE_BYTES
    value = body.get("prompt", body.get("input"))
    items = value if isinstance(value, list) else [value]
    return sum(len(str(item).encode()) for item in items if item is not None)


def _requested_max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


async def admit_call(ctx: RequestContext) -> None:
    runtime = get_runtime()
    levels = await _levels(ctx)
    if not levels:
        return
    router = runtime.router
    call = CallShape(prompt_bytes=prompt_bytes(ctx.body), max_tokens=_requested_max_tokens(ctx.body),
                     output_cap=router.output_cap(ctx.model_group), price=router.worst_price(ctx.model_group),
                     model_group=ctx.model_group)
    ctx.admission = await admit(runtime.counters, levels, call,
                                fail_open=runtime.config.general_settings.counters_fail_open)
    if ctx.admission.max_tokens is not None and ctx.call_type != "embedding":
        # The budget can pay for this much output and no more: the upstream is told so.
        name = "max_completion_tokens" if "max_completion_tokens" in ctx.body else "max_tokens"
        ctx.body[name] = ctx.admission.max_tokens


async def settle_call(ctx: RequestContext) -> None:
    admission = ctx.admission
    if admission is None or not admission.active:
        return
    ctx.admission = None
    cost = ctx.spend if ctx.spend_known and (ctx.prompt_tokens or ctx.completion_tokens) else 0.0
    await finish(get_runtime().counters, admission, cost=cost, tokens=ctx.prompt_tokens + ctx.completion_tokens)
