"""A fresh database for a live gateway process (e2e tests, the benchmark), and how to drop it.

On PostgreSQL (``DATABASE_URL`` says so) a new database is created on the same server; otherwise an
SQLite file under ``sqlite_dir``.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import dj_database_url
import psycopg


def fresh_database(prefix: str, sqlite_dir: Path) -> tuple[str, Callable[[], None]]:
    """(DATABASE_URL for the gateway, drop)."""
    url = os.environ.get("DATABASE_URL", "")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    if not url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{sqlite_dir / f'{name}.sqlite3'}", lambda: None
    parts = dj_database_url.parse(url)
    admin = dict(host=parts["HOST"] or "127.0.0.1", port=parts["PORT"] or 5432, user=parts["USER"] or "postgres",
                 password=parts["PASSWORD"] or None, dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    auth = parts["USER"] or "postgres"
    if parts["PASSWORD"]:
        auth += f":{parts['PASSWORD']}"
    return f"postgres://{auth}@{admin['host']}:{admin['port']}/{name}", drop
