"""Alerts to Slack and email: budgets crossed, oversized requests, deployments failing.

The proxy and the spend writer only *hand over* an event (``emit``, ``spend_written``): that puts it
on a queue and returns, never blocking and never raising. One daemon thread drains the queue: it
works out budget crossings (a database read), de-duplicates per (kind, subject) within a window (in
Redis when REDIS_URL is set, so several instances alert once; else in this process), and delivers:
through the Celery task ``alert_send`` when there is a broker, else itself. With nowhere to send to,
``alerter()`` is a null object whose methods do nothing.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Protocol

import httpx2
from django.conf import settings
from django.core.mail import send_mail
from django.db import close_old_connections, connections

from gateway_project.config import GatewayConfig, get_config
from spend.counters import to_nano
from spend.records import SpendRecord

logger = logging.getLogger("gateway.alerts")

BUDGET_CROSSED = "budget_crossed"
REQUEST_TOO_LARGE = "request_too_large"
DEPLOYMENT_FAILING = "deployment_failing"
KINDS = (BUDGET_CROSSED, REQUEST_TOO_LARGE, DEPLOYMENT_FAILING)
# general_settings.alert_types may use LiteLLM's names for the same alerts.
LITELLM_TYPES = {"budget_alerts": BUDGET_CROSSED, "cooldown_deployment": DEPLOYMENT_FAILING,
                 "outage_alerts": DEPLOYMENT_FAILING}
SEND_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    subject: str    # what it is about; with ``kind``, what de-duplicates it
    text: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# --- Delivery ------------------------------------------------------------------------------------


class Sender(Protocol):
    def send(self, alert: Alert) -> None: ...


class SlackSender:
    """A Slack incoming webhook: ``{"text": ...}``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, alert: Alert) -> None:
        httpx2.post(self.url, json={"text": alert.text}, timeout=SEND_TIMEOUT, trust_env=False).raise_for_status()


class EmailSender:
    """Through Django's email backend (EMAIL_* settings)."""

    def __init__(self, recipients: tuple[str, ...]) -> None:
        self.recipients = list(recipients)

    def send(self, alert: Alert) -> None:
        send_mail(f"[Gateway] {alert.kind.replace('_', ' ')}: {alert.subject.split('|')[0]}", alert.text,
                  None, self.recipients)


def senders(config: GatewayConfig) -> list[Sender]:
    general = config.general_settings
    args, found = general.alerting_args, []
    if "slack" in general.alerting:
        url = (args.slack_webhook_url or config.environment_variables.get("SLACK_WEBHOOK_URL")
               or settings.SLACK_WEBHOOK_URL)
        if url:
            found.append(SlackSender(url))
        else:
            logger.warning("alerting lists slack, but no webhook URL is set (SLACK_WEBHOOK_URL or "
                           "general_settings.alerting_args.slack_webhook_url): Slack alerts are off")
    if "email" in general.alerting:
        if args.email_recipients:
            found.append(EmailSender(args.email_recipients))
        else:
            logger.warning("alerting lists email, but alerting_args.email_recipients is empty: email alerts are off")
    return found


def alert_deliver(alert: Alert, config: GatewayConfig | None = None) -> None:
    """Send ``alert`` to every configured destination; raises if one fails (the caller retries or logs)."""
    for sender in senders(config or get_config()):
        sender.send(alert)


# --- De-duplication ------------------------------------------------------------------------------


class LocalDedupe:
    """This process's memory of what was sent recently."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def first(self, key: str, window: float) -> bool:
        """True if ``key`` was not seen within the last ``window`` seconds (and remember it now)."""
        now = self._clock()
        with self._lock:
            if self._until.get(key, 0.0) > now:
                return False
            if len(self._until) > 10_000:
                self._until = {k: until for k, until in self._until.items() if until > now}
            self._until[key] = now + window
            return True


class RedisDedupe:
    """Shared by every instance: ``SET NX EX``. Falls back to this process's memory if Redis fails."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = f"{prefix}alert:"
        self._fallback = LocalDedupe()

    def first(self, key: str, window: float) -> bool:
        try:
            return bool(self._client.set(self._prefix + key, b"1", nx=True, ex=max(1, int(window))))
        except Exception as exc:  # any Redis trouble: alert at most once per window from here
            logger.warning("alert de-duplication in Redis failed (%s); using this process's memory",
                           type(exc).__name__)
            return self._fallback.first(key, window)


# --- Budget crossings ----------------------------------------------------------------------------


def _spend_by_level(records: Iterable[SpendRecord]) -> dict[tuple[str, str], float]:
    added: dict[tuple[str, str], float] = {}
    for r in records:
        if not r.spend:
            continue
        for kind, ident in (("key", r.api_key), ("team", r.team_id), ("user", r.user), ("customer", r.end_user)):
            if ident:
                added[(kind, ident)] = added.get((kind, ident), 0.0) + r.spend
    return added


def _budget_rows(kind: str, idents: list[str]) -> list[tuple[str, str, float, float, str]]:
    """(ident, label, spend, max_budget, period) of the budgeted ``idents`` of ``kind``."""
    from keys.models import VirtualKey  # the models only here: emit() stays importable without them
    from teams.models import Customer, Team, User

    model, field = {"key": (VirtualKey, "token"), "team": (Team, "team_id"), "user": (User, "username"),
                    "customer": (Customer, "user_id")}[kind]
    rows = []
    for row in model.objects.filter(**{f"{field}__in": idents}, max_budget__isnull=False):
        label = getattr(row, field)
        if kind == "key":
            label = f"{row.key_alias} ({row.key_name})" if row.key_alias else row.key_name
        period = f"{row.budget_reset_at.isoformat() if row.budget_reset_at else 'all'}:{row.budget_epoch}"
        rows.append((getattr(row, field), label, row.spend, row.max_budget, period))
    return rows


def budget_crossings(records: Iterable[SpendRecord], thresholds: tuple[float, ...]) -> list[Alert]:
    """The thresholds (fractions of max_budget) that the spend in ``records`` carried a key, team,
    user or customer across: before these records below, now at or above. Reads the stored spend."""
    added = _spend_by_level(records)
    alerts = []
    for kind in ("key", "team", "user", "customer"):
        idents = [ident for (k, ident) in added if k == kind]
        for ident, label, spend, max_budget, period in _budget_rows(kind, idents) if idents else ():
            after, before = to_nano(spend), to_nano(spend - added[(kind, ident)])
            for fraction in thresholds:
                limit = to_nano(max_budget * fraction)
                if before < limit <= after:
                    alerts.append(Alert(BUDGET_CROSSED, f"{kind} {ident}|{fraction:g}|{period}",
                                        f"Budget alert: {kind} {label} has spent ${spend:.6g}, {fraction:.0%} of "
                                        f"its max budget of ${max_budget:g}."))
    return alerts


# --- The alerter ---------------------------------------------------------------------------------


class NullAlerter:
    """No destination configured: every alert is dropped at once."""

    def emit(self, alert: Alert) -> None:
        pass

    def spend_written(self, records: list[SpendRecord]) -> None:
        pass

    def stop(self, timeout: float = 5.0) -> None:
        pass


class Alerter:
    def __init__(self, config: GatewayConfig, *, dedupe, dispatch) -> None:
        general = config.general_settings
        args = general.alerting_args
        types = general.alert_types
        self.kinds = set(KINDS) if types is None else {LITELLM_TYPES.get(t, t) for t in types} & set(KINDS)
        self.thresholds = args.budget_thresholds
        self.windows = {BUDGET_CROSSED: args.budget_alert_ttl or args.dedupe_window,
                        DEPLOYMENT_FAILING: args.outage_alert_ttl or args.dedupe_window,
                        REQUEST_TOO_LARGE: args.dedupe_window}
        self._dedupe, self._dispatch = dedupe, dispatch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()

    def emit(self, alert: Alert) -> None:
        if alert.kind in self.kinds:
            self._queue.put(alert)

    def spend_written(self, records: list[SpendRecord]) -> None:
        """Spend was committed for ``records`` (the batch writer, after commit): check budgets."""
        if BUDGET_CROSSED in self.kinds:
            self._queue.put(records)

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (at most ``timeout`` seconds), then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                for alert in self._alerts(item):
                    if self._dedupe.first(f"{alert.kind}|{alert.subject}", self.windows[alert.kind]):
                        self._dispatch(alert)
            except Exception:  # an alert lost is logged; the thread (and the proxy) carry on
                logger.exception("an alert could not be processed or sent")
        connections.close_all()  # this thread's own connection; nobody else would close it

    def _alerts(self, item) -> list[Alert]:
        if isinstance(item, Alert):
            return [item]
        close_old_connections()  # a long-lived thread: drop a connection the database closed
        try:
            return budget_crossings(item, self.thresholds)
        finally:
            close_old_connections()


def _dispatch_through_celery(alert: Alert) -> None:
    # Here, not above: Celery loads only in a gateway that enqueues. The app first, so that the task
    # binds to it (REDIS_URL), not to Celery's default app.
    from gateway_project.celery import app  # noqa: F401
    from spend.tasks import alert_send  # a worker delivers (and retries); this thread only enqueues

    alert_send.delay(alert.as_dict())


def _dispatch_here(alert: Alert) -> None:
    alert_deliver(alert)


def build_alerter(config: GatewayConfig) -> Alerter | NullAlerter:
    if not config.general_settings.alerting or not senders(config):
        return NullAlerter()
    if settings.REDIS_URL:
        return Alerter(config, dedupe=RedisDedupe(settings.REDIS_URL, settings.GATEWAY_REDIS_PREFIX),
                       dispatch=_dispatch_through_celery if settings.CELERY_BROKER_URL else _dispatch_here)
    return Alerter(config, dedupe=LocalDedupe(), dispatch=_dispatch_here)


_lock = threading.Lock()
_alerter: Alerter | NullAlerter | None = None


def alerter() -> Alerter | NullAlerter:
    """This process's alerter, built from the config on first use."""
    global _alerter
    if _alerter is None:
        with _lock:
            if _alerter is None:
                _alerter = build_alerter(get_config())
    return _alerter


def stop(timeout: float = 5.0) -> None:
    """At shutdown (or when tests swap the config): deliver what is queued and forget the alerter."""
    global _alerter
    with _lock:
        current, _alerter = _alerter, None
    if current is not None:
        current.stop(timeout)


# --- What the proxy and the writer hand over (never blocks, never raises) ------------------------


def spend_written(records: list[SpendRecord]) -> None:
    try:
        alerter().spend_written(records)
    except Exception:
        logger.exception("budget alerts could not be queued")


def request_too_large(*, client: str, path: str, size_bytes: int, limit_mb: float) -> None:
    _emit(lambda: Alert(REQUEST_TOO_LARGE, f"client {client}",
                        f"Request too large: {client} sent {size_bytes / (1024 * 1024):.2f} MB to {path}; "
                        f"the limit is {limit_mb:g} MB (max_request_size_mb). Refused with 400."))


def deployment_failing(*, model_group: str, deployment_id: str, model: str, failures: int, cooldown: float) -> None:
    _emit(lambda: Alert(DEPLOYMENT_FAILING, f"deployment {deployment_id}",
                        f"Deployment failing: {model} in model group {model_group} (id {deployment_id[:12]}) failed "
                        f"{failures} time(s) within a minute and cools down for {cooldown:g}s."))


def _emit(make) -> None:
    try:
        target = alerter()
        if not isinstance(target, NullAlerter):
            target.emit(make())
    except Exception:
        logger.exception("an alert could not be queued")
