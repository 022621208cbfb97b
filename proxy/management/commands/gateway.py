"""``manage.py gateway``: validate the config, migrate the embedded database, serve over ASGI."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from gateway_project.config import ConfigError, get_config, set_config


class Command(BaseCommand):
    help = ("Start the gateway (OpenAI-compatible proxy, management API and admin on one port). "
            "With no --config, a built-in demo config serves the model 'fake-openai-endpoint'.")
    requires_system_checks: list = []  # run below, once --config is applied

    def add_arguments(self, parser) -> None:
        parser.add_argument("--config", help="LiteLLM-format config.yaml (default: $GATEWAY_CONFIG, else the demo config)")
        parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 for all)")
        parser.add_argument("--port", type=int, default=4000, help="port to bind (default 4000)")
        parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
        parser.add_argument("--migrate", action=argparse.BooleanOptionalAction, default=None,
                            help="apply database migrations before serving (default: only on SQLite)")
        parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                            help="server log level (default info)")

    def handle(self, *args, **options) -> None:
        self._apply_config(options["config"])
        self.check(display_num_errors=True)
        migrate = options["migrate"]
        if migrate is None:
            migrate = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        if migrate:
            call_command("migrate", interactive=False, verbosity=0)
        config = get_config()
        self.stdout.write(f"Gateway on http://{options['host']}:{options['port']} "
                          f"({config.source}; models: {', '.join(config.model_names) or 'none'})")
        uvicorn.run("gateway_project.asgi:application", host=options["host"], port=options["port"],
                    workers=options["workers"], lifespan="on", log_level=options["log_level"],
                    server_header=False, proxy_headers=False, timeout_graceful_shutdown=30)

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
