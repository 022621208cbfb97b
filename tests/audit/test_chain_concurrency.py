"""Writers on several connections at once still leave one unbroken chain (PostgreSQL: real row locks)."""
import threading

import pytest
from django.db import connection, connections

from gateway_project.audit.models import AuditRecord
from gateway_project.audit.services import audit_chain_verify
from gateway_project.config import load_config, set_config
from teams.services import customer_create

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one writer at a time")


@pytest.fixture
def audit_on_everywhere(transactional_db, tmp_path, settings):
    path = tmp_path / "config.yaml"
    path.write_text("litellm_settings: {store_audit_logs: true}\n")
    set_config(load_config(path, master_key=settings.GATEWAY_MASTER_KEY))
    yield
    set_config(None)


def test_concurrent_writers_append_one_linear_chain(audit_on_everywhere):
    start = threading.Barrier(8)

    def write(index: int) -> None:
        try:
            start.wait()
            for n in range(5):
                customer_create(user_id=f"end-{index}-{n}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(AuditRecord.objects.values_list("seq", flat=True)) == list(range(1, 41))
    assert audit_chain_verify().ok
