from teams.models import Customer
from tests.audit.conftest import last_record

CHANGELIST = "/admin/teams/customer/"


def test_changelist_shows_customers_with_spend_against_budget(admin_site):
    Customer.objects.create(user_id="end-user-7", alias="Acme", spend=3.0, max_budget=4.0)

    response = admin_site.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert "end-user-7" in page and "Acme" in page and "$3.00 / $4.00 (75%)" in page


def test_block_action_blocks_the_selected_customers(admin_site):
    acme, other = Customer.objects.create(user_id="acme"), Customer.objects.create(user_id="other")

    admin_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": [acme.pk]})

    acme.refresh_from_db()
    other.refresh_from_db()
    assert (acme.blocked, other.blocked) == (True, False)


def test_unblock_action_unblocks_the_selected_customers(admin_site):
    acme = Customer.objects.create(user_id="acme", blocked=True)

    admin_site.post(CHANGELIST, {"action": "unblock_selected", "_selected_action": [acme.pk]})

    acme.refresh_from_db()
    assert acme.blocked is False


def test_a_customer_blocked_in_the_admin_is_refused_by_the_proxy(admin_site, issue_key, proxy,
                                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the cache is per process: drop older tests' entry
        Customer.objects.create(user_id="end-blocked-in-admin")
    _key, raw = issue_key()
    assert proxy(raw, user="end-blocked-in-admin").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        admin_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": ["end-blocked-in-admin"]})

    refused = proxy(raw, user="end-blocked-in-admin")
    assert refused.status_code == 400 and "User blocked" in refused.json()["error"]["message"]


def test_blocking_a_customer_is_audited_with_the_admin_as_actor(admin_site, audit_on):
    Customer.objects.create(user_id="acme")

    admin_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": ["acme"]})

    record = last_record(table_name="LiteLLM_EndUserTable")
    assert (record.action, record.object_id, record.changed_by) == ("blocked", "acme", "root")


def test_a_viewer_cannot_block_a_customer(viewer_site):
    Customer.objects.create(user_id="acme")

    page = viewer_site.get(CHANGELIST).content.decode()
    viewer_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": ["acme"]})

    assert "acme" in page and 'name="action"' not in page
    assert Customer.objects.get().blocked is False
