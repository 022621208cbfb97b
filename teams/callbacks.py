"""A team's logging callbacks, as its metadata holds them: parsed, validated, masked, changed.

Two shapes are read, as the LiteLLM proxy writes them (docs/team-logging.md):

- ``metadata.logging``: a list of ``{"callback_name", "callback_type", "callback_vars"}`` entries
  (set with ``/team/new`` or ``/team/update``);
- ``metadata.callback_settings``: ``{"success_callback": [...], "failure_callback": [...],
  "callback_vars": {...}}`` (set with ``POST /team/{team_id}/callback``).

``POST /team/{team_id}/disable_logging`` empties both callback lists and sets
``callback_settings.logging_disabled``: nothing of the team's requests is sent to any callback, the
team's own or a global one, until a callback is added again.

Pure functions only: no database, no network. Secrets stay as written (a value or an
``os.environ/NAME`` reference); they are resolved where events are delivered (``spend/team_logging``).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger("gateway.teams")

CALLBACK_TYPES = ("success", "failure", "success_and_failure")
DEFAULT_CALLBACK_TYPE = "success_and_failure"
# Callback name → the variables it takes; the secret ones are masked whenever they are shown.
CALLBACK_VARS: dict[str, tuple[str, ...]] = {
    "langfuse": ("langfuse_public_key", "langfuse_secret_key", "langfuse_secret", "langfuse_host"),
}
SECRET_VARS = frozenset({"langfuse_secret_key", "langfuse_secret"})
DISABLED_FLAG = "logging_disabled"


class CallbackConfigError(ValueError):
    """A callback setting the gateway cannot use; ``param`` names the offending field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """One destination of a team's events. ``vars`` as written: values or ``os.environ/`` references."""

    name: str
    on_success: bool
    on_failure: bool
    vars: tuple[tuple[str, str], ...]

    def var(self, name: str) -> str | None:
        return dict(self.vars).get(name)


@dataclass(frozen=True, slots=True)
class TeamLogging:
    targets: tuple[CallbackTarget, ...] = ()
    disabled: bool = False

    def targets_for(self, *, failed: bool) -> tuple[CallbackTarget, ...]:
        if self.disabled:
            return ()
        return tuple(t for t in self.targets if (t.on_failure if failed else t.on_success))


NO_TEAM_LOGGING = TeamLogging()


# --- Validation -----------------------------------------------------------------------------------

def validated_callback(name: Any, callback_type: Any, callback_vars: Any, *, prefix: str = "") -> CallbackTarget:
    """One callback as a request names it, checked; raises CallbackConfigError."""
    if not isinstance(name, str) or name not in CALLBACK_VARS:
        raise CallbackConfigError(f"{prefix}callback_name: {name!r} is not a supported callback. "
                                  f"Supported: {', '.join(CALLBACK_VARS)}", f"{prefix}callback_name")
    callback_type = DEFAULT_CALLBACK_TYPE if callback_type is None else callback_type
    if callback_type not in CALLBACK_TYPES:
        raise CallbackConfigError(f"{prefix}callback_type: {callback_type!r} is not one of: "
                                  f"{', '.join(CALLBACK_TYPES)}", f"{prefix}callback_type")
    values = _validated_vars(name, callback_vars, prefix=prefix)
    return CallbackTarget(name=name, on_success=callback_type != "failure", on_failure=callback_type != "success",
                          vars=tuple(sorted(values.items())))


def _validated_vars(name: str, callback_vars: Any, *, prefix: str) -> dict[str, str]:
    param = f"{prefix}callback_vars"
    if not isinstance(callback_vars, dict):
        raise CallbackConfigError(f"{param} must be an object.", param)
    allowed = CALLBACK_VARS[name]
    values: dict[str, str] = {}
    for key, value in callback_vars.items():
        if key not in allowed:
            raise CallbackConfigError(f"Invalid callback variable: {key}. Must be one of {', '.join(allowed)}",
                                      param)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
            raise CallbackConfigError(f"{param}.{key} must be a non-empty string.", param)
        values[key] = str(value).strip()
    if "langfuse_public_key" not in values or not ({"langfuse_secret_key", "langfuse_secret"} & values.keys()):
        raise CallbackConfigError(f"{param}: langfuse needs langfuse_public_key and langfuse_secret_key "
                                  "(values or os.environ/NAME references).", param)
    host = values.get("langfuse_host")
    if host is not None and not host.startswith("os.environ/") and not _is_http_url(host):
        raise CallbackConfigError(f"{param}.langfuse_host must be an http(s) URL, got {host!r}.", param)
    return values


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def validate_metadata(metadata: dict[str, Any]) -> None:
    """The logging parts of team metadata a caller writes; raises CallbackConfigError."""
    entries = metadata.get("logging")
    if entries is not None:
        if not isinstance(entries, list):
            raise CallbackConfigError("metadata.logging must be a list of callbacks.", "metadata.logging")
        for index, entry in enumerate(entries):
            prefix = f"metadata.logging[{index}]."
            if not isinstance(entry, dict):
                raise CallbackConfigError(f"{prefix[:-1]} must be an object.", "metadata.logging")
            validated_callback(entry.get("callback_name"), entry.get("callback_type"), entry.get("callback_vars"),
                               prefix=prefix)
    settings = metadata.get("callback_settings")
    if settings is not None:
        _settings_targets(settings, strict=True)


# --- Reading (the proxy's cache builds a TeamLogging once per team snapshot) --------------------------

def team_logging_of(metadata: dict[str, Any] | None) -> TeamLogging:
    """What a team's metadata says about its logging. Entries that do not validate (written before
    validation, or by hand in the database) are skipped with a warning naming their field only."""
    metadata = metadata if isinstance(metadata, dict) else {}
    settings = metadata.get("callback_settings")
    disabled = isinstance(settings, dict) and settings.get(DISABLED_FLAG) is True
    targets: list[CallbackTarget] = []
    entries = metadata.get("logging")
    for index, entry in enumerate(entries if isinstance(entries, list) else ()):
        try:
            if not isinstance(entry, dict):
                raise CallbackConfigError("not an object", "metadata.logging")
            targets.append(validated_callback(entry.get("callback_name"), entry.get("callback_type"),
                                              entry.get("callback_vars"), prefix=f"metadata.logging[{index}]."))
        except CallbackConfigError as exc:
            logger.warning("team logging entry skipped: %s", exc.param)
    if isinstance(settings, dict):
        try:
            targets.extend(_settings_targets(settings, strict=False))
        except CallbackConfigError as exc:
            logger.warning("team callback_settings skipped: %s", exc.param)
    return TeamLogging(targets=tuple(targets), disabled=disabled) if targets or disabled else NO_TEAM_LOGGING


def _settings_targets(settings: Any, *, strict: bool) -> list[CallbackTarget]:
    param = "metadata.callback_settings"
    if not isinstance(settings, dict):
        raise CallbackConfigError(f"{param} must be an object.", param)
    lists = {}
    for field in ("success_callback", "failure_callback"):
        value = settings.get(field) or []
        if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
            raise CallbackConfigError(f"{param}.{field} must be a list of callback names.", f"{param}.{field}")
        lists[field] = value
    if DISABLED_FLAG in settings and not isinstance(settings[DISABLED_FLAG], bool):
        raise CallbackConfigError(f"{param}.{DISABLED_FLAG} must be true or false.", f"{param}.{DISABLED_FLAG}")
    callback_vars = settings.get("callback_vars") or {}
    targets = []
    for name in dict.fromkeys(lists["success_callback"] + lists["failure_callback"]):
        on_success, on_failure = name in lists["success_callback"], name in lists["failure_callback"]
        callback_type = "success_and_failure" if on_success and on_failure else "success" if on_success else "failure"
        own_vars = ({k: v for k, v in callback_vars.items() if k in CALLBACK_VARS.get(name, ())}
                    if isinstance(callback_vars, dict) else callback_vars)
        targets.append(validated_callback(name, callback_type, own_vars, prefix=f"{param}."))
    if strict and callback_vars and not targets:
        _validated_vars_any(callback_vars, param)
    return targets


def _validated_vars_any(callback_vars: Any, param: str) -> None:
    known = {name for names in CALLBACK_VARS.values() for name in names}
    if not isinstance(callback_vars, dict) or not set(callback_vars) <= known:
        raise CallbackConfigError(f"{param}.callback_vars holds unknown variables.", f"{param}.callback_vars")


# --- Changing (services call these inside their transaction) --------------------------------------------

def with_callback(metadata: dict[str, Any] | None, target: CallbackTarget, *, team_id: str) -> dict[str, Any]:
    """``metadata`` with ``target`` added to ``callback_settings`` (and logging enabled again).

    As in LiteLLM, a callback already in a list it would join is refused: disable logging first to
    replace a team's callback."""
    metadata = copy.deepcopy(metadata) if isinstance(metadata, dict) else {}
    current = metadata.get("callback_settings")
    settings = current if isinstance(current, dict) else {}
    disabled = settings.get(DISABLED_FLAG) is True
    success = [] if disabled else list(settings.get("success_callback") or [])
    failure = [] if disabled else list(settings.get("failure_callback") or [])
    for wanted, names, field in ((target.on_success, success, "success_callback"),
                                 (target.on_failure, failure, "failure_callback")):
        if not wanted:
            continue
        if target.name in names:
            raise CallbackConfigError(f"callback_name = {target.name} already exists in {field}, for team_id = "
                                      f"{team_id}. Existing {field} = {names}", "callback_name")
        names.append(target.name)
    callback_vars = dict(settings.get("callback_vars") or {})
    callback_vars.update(dict(target.vars))
    metadata["callback_settings"] = {"success_callback": success, "failure_callback": failure,
                                     "callback_vars": callback_vars}
    return metadata


def without_logging(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """``metadata`` with every callback list emptied and logging switched off for the team."""
    metadata = copy.deepcopy(metadata) if isinstance(metadata, dict) else {}
    current = metadata.get("callback_settings")
    callback_vars = current.get("callback_vars") if isinstance(current, dict) else None
    metadata["callback_settings"] = {"success_callback": [], "failure_callback": [],
                                     "callback_vars": callback_vars if isinstance(callback_vars, dict) else {},
                                     DISABLED_FLAG: True}
    return metadata


# --- Showing ----------------------------------------------------------------------------------------------

def mask(value: Any) -> Any:
    """A secret as it may be shown: its first and last 4 characters around ``****``; short secrets and
    non-strings wholly hidden. ``os.environ/NAME`` references are names, not secrets: shown as written."""
    if not isinstance(value, str):
        return "****"
    if value.startswith("os.environ/"):
        return value
    return f"{value[:4]}****{value[-4:]}" if len(value) >= 16 else "****"


def masked_vars(callback_vars: Any) -> Any:
    if not isinstance(callback_vars, dict):
        return callback_vars
    return {key: mask(value) if key in SECRET_VARS else value for key, value in callback_vars.items()}


def masked_metadata(metadata: Any) -> Any:
    """Team metadata with every callback secret masked (for /team/info, /team/list, audit rows)."""
    if not isinstance(metadata, dict) or ("logging" not in metadata and "callback_settings" not in metadata):
        return metadata
    shown = dict(metadata)
    if isinstance(metadata.get("logging"), list):
        shown["logging"] = [{**entry, "callback_vars": masked_vars(entry.get("callback_vars"))}
                            if isinstance(entry, dict) and "callback_vars" in entry else entry
                            for entry in metadata["logging"]]
    settings = metadata.get("callback_settings")
    if isinstance(settings, dict) and "callback_vars" in settings:
        shown["callback_settings"] = {**settings, "callback_vars": masked_vars(settings["callback_vars"])}
    return shown


def callbacks_view(team_id: str, metadata: Any) -> dict[str, Any]:
    """``GET /team/{team_id}/callback``'s ``data``: LiteLLM's fields, secrets masked, plus the
    ``metadata.logging`` entries and whether logging is switched off."""
    metadata = metadata if isinstance(metadata, dict) else {}
    settings = metadata.get("callback_settings")
    settings = settings if isinstance(settings, dict) else {}
    effective = team_logging_of(metadata)
    shown = masked_metadata(metadata)
    return {
        "team_id": team_id,
        "success_callbacks": list(dict.fromkeys(t.name for t in effective.targets_for(failed=False))),
        "failure_callbacks": list(dict.fromkeys(t.name for t in effective.targets_for(failed=True))),
        "callback_vars": masked_vars(settings.get("callback_vars") or {}),
        "logging": shown.get("logging") if isinstance(shown.get("logging"), list) else [],
        DISABLED_FLAG: effective.disabled,
    }
