"""Who ``changed_by`` names: the identity that made the change, never a value a caller sends."""
from auditlog.context import disable_auditlog
from django.test import Client

from teams.models import Customer
from teams.services import customer_create
from tests.audit.conftest import last_record


def test_the_master_key_is_recorded_as_default_user_id_without_a_key_hash(audit_on, admin_api):
    admin_api.post("/customer/new", {"user_id": "end-1"}, format="json")

    record = last_record()
    assert (record.changed_by, record.changed_by_api_key) == ("default_user_id", None)
    assert record.log_entry.actor is None


def test_a_proxy_admins_key_is_recorded_as_its_user_and_its_hash(ops_key, ops_api, audit_on):
    ops_api.post("/customer/new", {"user_id": "end-1"}, format="json")

    record = last_record()
    assert (record.changed_by, record.changed_by_api_key) == ("ops", ops_key[1])
    assert record.log_entry.actor.username == "ops"


def test_an_admin_signed_in_to_the_admin_site_is_recorded_by_username(admin_site, audit_on):
    with disable_auditlog():
        customer_create(user_id="end-1")

    admin_site.post("/admin/teams/customer/", {"action": "block_selected", "_selected_action": ["end-1"]})

    record = last_record()
    assert (record.action, record.changed_by, record.changed_by_api_key) == ("blocked", "root", None)
    assert record.log_entry.actor.username == "root"
    assert Customer.objects.get(user_id="end-1").blocked is True


def test_a_session_on_the_management_api_is_recorded_by_username(admin_site, audit_on):
    admin_site.post("/customer/new", {"user_id": "end-1"}, content_type="application/json")

    assert last_record().changed_by == "root"


def test_the_litellm_changed_by_header_is_ignored(audit_on, admin_api):
    admin_api.post("/customer/new", {"user_id": "end-1"}, format="json", HTTP_LITELLM_CHANGED_BY="someone-else")

    assert last_record().changed_by == "default_user_id"


def test_a_change_made_outside_any_request_is_recorded_as_system(audit_on):
    customer_create(user_id="end-1")

    assert (last_record().changed_by, last_record().changed_by_api_key) == ("system", None)


def test_the_client_address_is_kept_on_auditlogs_entry(audit_on, admin_api):
    admin_api.post("/customer/new", {"user_id": "end-1"}, format="json", REMOTE_ADDR="10.1.2.3")

    assert last_record().log_entry.remote_addr == "10.1.2.3"


def test_an_unauthenticated_request_changes_nothing(audit_on):
    response = Client().post("/customer/new", {"user_id": "end-1"}, content_type="application/json")

    assert response.status_code == 401 and last_record() is None
