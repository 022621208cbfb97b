from teams.models import UserRole

CHANGELIST = "/admin/teams/user/"


def test_changelist_shows_role_and_spend_against_budget(admin_site, django_user_model):
    django_user_model.objects.create(username="alice", role=UserRole.INTERNAL_USER_VIEWER, spend=1.5, max_budget=20)

    response = admin_site.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert "alice" in page and UserRole.INTERNAL_USER_VIEWER.label in page
    assert "$1.50 / $20.00 (8%)" in page


def test_change_form_saves_role_models_and_budget(admin_site, django_user_model):
    alice = django_user_model.objects.create(username="alice")

    response = admin_site.post(f"{CHANGELIST}{alice.pk}/change/", {
        "username": "alice", "first_name": "", "last_name": "", "email": "", "is_active": "on",
        "role": UserRole.PROXY_ADMIN_VIEWER, "models": "gpt-4o, o3", "metadata": "", "max_budget": "25",
        "budget_duration": "30d", "rpm_limit": "", "tpm_limit": "", "max_parallel_requests": "",
    })

    assert response.status_code == 302
    alice.refresh_from_db()
    assert (alice.role, alice.models, alice.metadata, alice.max_budget, alice.budget_duration) == (
        UserRole.PROXY_ADMIN_VIEWER, ["gpt-4o", "o3"], {}, 25.0, "30d")


def test_add_form_creates_a_user_with_a_role(admin_site, django_user_model):
    response = admin_site.post(f"{CHANGELIST}add/", {"username": "bob", "usable_password": "false",
                                                    "role": UserRole.INTERNAL_USER})

    assert response.status_code == 302
    assert django_user_model.objects.get(username="bob").role == UserRole.INTERNAL_USER


def test_search_by_email_and_filter_by_role(admin_site, django_user_model):
    django_user_model.objects.create(username="alice", email="alice@example.com", role=UserRole.PROXY_ADMIN_VIEWER)
    django_user_model.objects.create(username="bob", email="bob@example.com")

    found = admin_site.get(CHANGELIST, {"q": "alice@example"}).context["cl"].result_list
    viewers = admin_site.get(CHANGELIST, {"role__exact": UserRole.PROXY_ADMIN_VIEWER}).context["cl"].result_list

    assert [user.username for user in found] == ["alice"]
    assert [user.username for user in viewers] == ["alice"]
