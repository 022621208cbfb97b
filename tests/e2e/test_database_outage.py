"""PostgreSQL goes away under traffic: requests keep being answered, readiness turns false, and every
answered request still gets exactly one spend row once the database is back, across a restart."""
from __future__ import annotations

import os

import dj_database_url
import psycopg
import pytest

from tests.e2e.conftest import MASTER_KEY, _fresh_database_url, launch_gateway, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="cuts a PostgreSQL database off")]

CONFIG = f"""model_list:
  - model_name: fake
    litellm_params: {{model: fake/fake, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
general_settings:
  master_key: {MASTER_KEY}
"""


def admin_connection():
    parts = dj_database_url.parse(os.environ["DATABASE_URL"])
    return psycopg.connect(host=parts["HOST"] or "127.0.0.1", port=parts["PORT"] or 5432,
                           user=parts["USER"] or "postgres", dbname="postgres", autocommit=True)


def cut_off(name: str, allowed: bool) -> None:
    with admin_connection() as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])


def test_spend_rows_survive_a_database_outage_and_a_restart(e2e_dir, tmp_path):
    database_url, drop = _fresh_database_url(e2e_dir)
    name = database_url.rsplit("/", 1)[1]
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "data")}
    answered = []
    try:
        with launch_gateway(e2e_dir, CONFIG, name="outage-1", env=env, database_url=database_url) as gw:
            def chat():
                response = gw.http.post("/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                                        json={"model": "fake", "messages": [{"role": "user", "content": "hi"}]})
                assert response.status_code == 200
                answered.append(response.json()["id"])

            for _ in range(3):
                chat()
            wait_for(lambda: len(gw.spend_logs()) == 3)
            cut_off(name, allowed=False)
            for _ in range(5):
                chat()  # the master key and the model need no database
            assert gw.http.get("/health/readiness").status_code == 503
            assert gw.http.get("/health/liveliness").status_code == 200
        # stopped while the database was down: the 5 rows went to the spool
        assert list((tmp_path / "data" / "spend-spool").glob("*.jsonl"))
        cut_off(name, allowed=True)
        with launch_gateway(e2e_dir, CONFIG, name="outage-2", env=env, database_url=database_url) as gw:
            rows = wait_for(lambda: (lambda r: r if len(r) == 8 else None)(gw.spend_logs()))
        assert sorted(r["request_id"] for r in rows) == sorted(answered)
        assert not list((tmp_path / "data" / "spend-spool").glob("*.jsonl"))
    finally:
        cut_off(name, allowed=True)
        drop()
