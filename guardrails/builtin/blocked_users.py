"""blocked_user_check: requests on behalf of a blocked end user (the body's ``user``) are refused.

Blocked are the ids of ``litellm_settings.blocked_user_list`` (a list, or a file with one id a line)
and every customer blocked through ``/customer/block`` (read from the customer cache).
"""
from __future__ import annotations

from typing import Any

from gateway_project.config import GatewayConfig
from guardrails.base import Call, Guardrail, GuardrailBlocked
from guardrails.config import load_list
from teams.cache import customer_lookup


def blocked_message(user: str) -> str:
    return f"User blocked from making LLM API Calls. User={user}"


def end_user(body: dict[str, Any]) -> str | None:
    for field in ("user", "user_id"):
        value = body.get(field)
        if isinstance(value, str) and value:
            return value
    return None


class BlockedUserCheck(Guardrail):
    name = "blocked_user_check"

    def __init__(self, blocked: frozenset[str] = frozenset()) -> None:
        self.blocked = blocked

    @classmethod
    def from_config(cls, config: GatewayConfig) -> BlockedUserCheck:
        return cls(frozenset(load_list(config, "blocked_user_list", config.litellm_settings.blocked_user_list)))

    async def pre_call(self, call: Call) -> None:
        user = end_user(call.body)
        if user is None:
            return
        if user in self.blocked:
            raise GuardrailBlocked(blocked_message(user), param="user")
        customer = await customer_lookup(user)
        if customer is not None and customer.blocked:
            raise GuardrailBlocked(blocked_message(user), param="user")
