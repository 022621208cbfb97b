"""Which guardrails run for a request, and running them.

A guardrail runs for a call when

- it is in ``litellm_settings.callbacks`` (on for everyone) and wants this call (``llm_guard_mode``),
  unless the key switches it off with ``permissions: {"<name>": false}``
  (e.g. ``{"hide_secrets": false}``);
- or the key (``guardrails``, ``metadata.guardrails``) or its team (``metadata.guardrails``) names it;
- or the request names it: ``guardrails`` / ``metadata.guardrails`` as a list of names, or a mapping
  ``{"<name>": true|false}``. Switching one off (``false``) needs the master key or a key with
  ``permissions.modify_guardrails: true``.

They run in registry order (local ones first: blocked users, banned keywords, secret redaction),
then the remote ones, concurrently when there are several. Objects are built once per config.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from gateway_project.config import ConfigError, GatewayConfig
from gateway_project.errors import GatewayError, InvalidRequestError, PermissionDeniedError
from guardrails.base import MODIFY_PERMISSION, Call, ChunkCheck, Guardrail
from guardrails.registry import GUARDRAILS, ORDER, build
from spend import metrics

logger = logging.getLogger("gateway.guardrails")
_MAX_WARNED = 100


class GuardrailSet:
    """The guardrails of one config: those on for everyone built at once, others on first use."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.default_on = tuple(name for name in ORDER if name in config.litellm_settings.callbacks)
        self._built: dict[str, Guardrail] = {name: build(name, config) for name in self.default_on}
        self._warned: set[str] = set()
        self._metrics = "prometheus" in config.litellm_settings.callbacks

    @property
    def idle(self) -> bool:
        """Nothing is on for everyone: only calls that name guardrails need the runner."""
        return not self.default_on

    def get(self, name: str, *, by_request: bool = False) -> Guardrail:
        """The guardrail ``name``, built on first use. Without its settings: a 500 when a key or team
        names it (the gateway's configuration is wrong), a 400 when the request does."""
        guardrail = self._built.get(name)
        if guardrail is None:
            try:
                guardrail = self._built[name] = build(name, self.config)
            except ConfigError as exc:
                logger.error("Guardrail %s was asked for but cannot be built: %s", name, exc)
                error = InvalidRequestError if by_request else GatewayError
                raise error(f"Guardrail {name} is not configured on this gateway") from None
        return guardrail

    def select(self, call: Call) -> list[Guardrail]:
        """The guardrails that run for ``call``, in order."""
        named = _names(call.key.guardrails if call.key else None, _metadata_guardrails(call.key),
                       _metadata_guardrails(call.team))
        requested, refused = _request_choice(call.body.get("guardrails"), call.metadata.get("guardrails"))
        if refused and not call.may_switch_off:
            raise PermissionDeniedError(
                f"Not allowed to switch off guardrails {sorted(refused)}: this key needs "
                f"permissions.{MODIFY_PERMISSION}: true")
        self._warn_unknown(named | requested | refused)
        switched_off = refused | {name for name, value in call.key_permissions.items() if value is False}
        chosen = []
        for name in ORDER:
            if name in requested:
                chosen.append(self.get(name, by_request=True))
            elif name not in switched_off and name in named:
                chosen.append(self.get(name))
            elif name in self.default_on and name not in switched_off and self._built[name].wanted(call):
                chosen.append(self._built[name])
        return chosen

    async def pre_call(self, call: Call, guardrails: list[Guardrail]) -> None:
        remote = []
        for guardrail in guardrails:
            if guardrail.remote:
                remote.append(guardrail)
            else:
                await self._run(guardrail, "pre_call", guardrail.pre_call(call))
        if len(remote) == 1:
            await self._run(remote[0], "pre_call", remote[0].pre_call(call))
        elif remote:
            outcomes = await asyncio.gather(*(self._run(guardrail, "pre_call", guardrail.pre_call(call))
                                              for guardrail in remote), return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome

    async def post_call(self, call: Call, response: dict[str, Any]) -> None:
        for guardrail in self.select(call):
            if guardrail.checks_output:
                await self._run(guardrail, "post_call", guardrail.post_call(call, response))

    async def _run(self, guardrail: Guardrail, hook_type: str, run: Awaitable[None]) -> None:
        """Await one guardrail hook; with prometheus on, count and time it (a refusal counts as an error)."""
        if not self._metrics:
            return await run
        started, error = time.perf_counter(), None
        try:
            await run
        except BaseException as exc:
            error = exc
            raise
        finally:
            metrics.observe_guardrail(guardrail.name, hook_type, time.perf_counter() - started, error)

    def stream_check(self, call: Call) -> ChunkCheck | None:
        """One function checking every chunk of a streamed answer, or None when nothing needs to."""
        checks = [check for guardrail in self.select(call) if guardrail.checks_output
                  if (check := guardrail.stream_check(call)) is not None]
        if not checks:
            return None
        if len(checks) == 1:
            return checks[0]

        def check_all(chunk: dict[str, Any]) -> None:
            for check in checks:
                check(chunk)

        return check_all

    def _warn_unknown(self, names: set[str]) -> None:
        if len(self._warned) >= _MAX_WARNED:  # requests choose these names: bound what is remembered
            return
        for name in names - GUARDRAILS.keys() - self._warned:
            self._warned.add(name)
            logger.warning("Unknown guardrail %r named by a key, team or request: ignored (known: %s)",
                           name, ", ".join(ORDER))


_current: GuardrailSet | None = None


def guardrails_for(config: GatewayConfig) -> GuardrailSet:
    """The guardrail set of ``config``, built once per config (the process's, in practice)."""
    global _current
    current = _current
    if current is None or current.config is not config:
        current = _current = GuardrailSet(config)
    return current


def _metadata_guardrails(record: Any) -> Any:
    metadata = getattr(record, "metadata", None)
    return metadata.get("guardrails") if isinstance(metadata, dict) else None


def _names(*values: Any) -> set[str]:
    names: set[str] = set()
    for value in values:
        if isinstance(value, (list, tuple)):
            names.update(item for item in value if isinstance(item, str))
    return names


def _request_choice(*values: Any) -> tuple[set[str], set[str]]:
    """(names switched on, names switched off) by the request's ``guardrails`` fields."""
    on, off = set(), set()
    for value in values:
        if isinstance(value, dict):
            on.update(name for name, wanted in value.items() if wanted is True)
            off.update(name for name, wanted in value.items() if wanted is False)
        else:
            on |= _names(value)
    return on, off

