"""``manage.py gateway``: validate the config, migrate the embedded database, serve over ASGI."""
from __future__ import annotations

import argparse
import os
import signal
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import uvicorn
from django.conf import settings
from django.core.checks import Tags
from django.core.checks.registry import registry as check_registry
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from gateway_project.config import ConfigError, get_config, set_config
from proxy.server import GracefulHttpToolsProtocol
from spend import metrics


def access_logged(log_level: str) -> bool:
    return log_level in ("info", "debug")


class Command(BaseCommand):
    help = ("Start the gateway (OpenAI-compatible proxy, management API and admin on one port). "
            "With no --config, a built-in demo config serves the model 'fake-openai-endpoint'.")
    requires_system_checks: list = []  # run below, once --config is applied

    def add_arguments(self, parser) -> None:
        parser.add_argument("--config", help="LiteLLM-format config.yaml (default: $GATEWAY_CONFIG, else the demo config)")
        parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 for all)")
        parser.add_argument("--port", type=int, default=4000, help="port to bind (default 4000)")
        parser.add_argument("--workers", type=int, default=None,
                            help="worker processes (default $GATEWAY_WORKERS, else one per CPU core on PostgreSQL, "
                                 "1 on SQLite); with 2 or more, SIGHUP replaces them one by one (config reload)")
        parser.add_argument("--migrate", action=argparse.BooleanOptionalAction, default=None,
                            help="apply database migrations before serving (default: only on SQLite)")
        parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                            help="server log level (default info)")

    def handle(self, *args, **options) -> None:
        self._apply_config(options["config"])
        self.check(tags=serve_time_check_tags(), display_num_errors=True)
        migrate = options["migrate"]
        if migrate is None:
            migrate = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        if migrate:
            migrate_in_a_child_process()
        config = get_config()
        options["workers"] = worker_count(options["workers"])
        self.stdout.write(f"Gateway on http://{options['host']}:{options['port']} "
                          f"({config.source}; models: {', '.join(config.model_names) or 'none'}; "
                          f"workers: {options['workers']})")
        created = None
        if "prometheus" in config.litellm_settings.callbacks:
            created = self._prepare_metrics_dir(options["workers"])
        # After a graceful stop uvicorn re-raises the SIGTERM it caught: exit 0 then, as supervisors expect.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        try:
            uvicorn.run("gateway_project.asgi:application", host=options["host"], port=options["port"],
                        workers=options["workers"], lifespan="on", log_level=options["log_level"],
                        # The access log is printed at info and debug only; off otherwise, so that uvicorn
                        # does not format each request's client address and quoted path for nothing.
                        access_log=access_logged(options["log_level"]),
                        ws="none",  # no WebSocket routes: the websockets package is not loaded
                        # httptools, with a shutdown that lets a request already sent on an idle keep-alive
                        # connection in rather than resetting it; importing proxy/server.py also gives every
                        # worker a server whose main loop wakes once a second, not ten times
                        http=GracefulHttpToolsProtocol,
                        server_header=False, proxy_headers=False,
                        timeout_graceful_shutdown=settings.GATEWAY_GRACEFUL_TIMEOUT,
                        timeout_keep_alive=settings.GATEWAY_KEEPALIVE_TIMEOUT)
        finally:
            if created:
                shutil.rmtree(created, ignore_errors=True)

    def _prepare_metrics_dir(self, workers: int) -> str | None:
        """Under several workers each writes its metric values to files in one directory, and a scrape
        sums them; values left by a previous run would be summed in too, so the directory starts empty.
        Returns the directory when this command created it (and removes it on exit)."""
        path = settings.PROMETHEUS_MULTIPROC_DIR
        created = None
        if path:
            metrics.prepare_multiprocess_dir(path)
        elif workers > 1:
            path = created = tempfile.mkdtemp(prefix="gateway-metrics-")
        else:
            return None   # one worker serves in this process: its in-memory registry is exact
        # Worker processes inherit it; prometheus-client reads it when they import it.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = settings.PROMETHEUS_MULTIPROC_DIR = path
        return created

    def _apply_config(self, path: str | None) -> None:
        if path:
            resolved = Path(path).expanduser().resolve()
            if not resolved.is_file():
                raise CommandError(f"--config {path}: no such file")
            # Worker processes read it from the environment when they set Django up.
            os.environ["GATEWAY_CONFIG"] = str(resolved)
            settings.GATEWAY_CONFIG = str(resolved)
        set_config(None)
        try:
            get_config()
        except ConfigError as exc:
            raise CommandError(str(exc)) from None


# Checks of the code itself, not of this deployment: they load every view, template tag library and admin
# class, and the migrate command with the migration framework (with one worker this process serves, and
# would carry them all, about 13 MB; docs/performance.md "Memory"). `manage.py check` and the test suite run them.
CODE_CHECK_TAGS = {Tags.admin, Tags.commands, Tags.templates, Tags.urls}


def serve_time_check_tags() -> list[str]:
    """The check tags run before serving: the config (gateway.*), settings, database, caches, models..."""
    return sorted(set(check_registry.tags_available()) - CODE_CHECK_TAGS)


def migrate_in_a_child_process() -> None:
    """Apply migrations in a forked child: the migration framework and every migration module would otherwise
    stay loaded in this process, which serves requests when it runs one worker (about 7 MB on a fresh
    database; docs/performance.md, "Memory")."""
    connections.close_all()   # the child must not share this process's database connections
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            call_command("migrate", interactive=False, verbosity=0, skip_checks=True)  # checked above already
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise CommandError("applying the database migrations failed (the error is above)")


def worker_count(requested: int | None) -> int:
    """``--workers``, else ``GATEWAY_WORKERS``, else one per usable CPU core; SQLite takes one writer at a
    time, so it defaults to a single worker."""
    if requested is None:
        requested = settings.GATEWAY_WORKERS
    if requested < 0:
        raise CommandError(f"--workers must be 0 (automatic) or more, not {requested}")
    if requested:
        return requested
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))  # the cores this container (cgroup) may use
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _exit_cleanly(signum, frame) -> None:
    sys.exit(0)
