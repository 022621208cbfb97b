from teams.models import Customer

CHANGELIST = "/admin/teams/customer/"


def test_changelist_shows_customers_with_spend_against_budget(admin_site):
    Customer.objects.create(user_id="end-user-7", alias="Acme", spend=3.0, max_budget=4.0)

    response = admin_site.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert "end-user-7" in page and "Acme" in page and "3.00 / 4.00" in page


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
