from datetime import timedelta

from django.utils import timezone

from keys.hashing import abbreviate, digest
from keys.models import VirtualKey
from tests.admin.conftest import RAW_KEY

CHANGELIST = "/admin/keys/virtualkey/"
ADD = "/admin/keys/virtualkey/add/"


def _add_form(**fields) -> dict:
    return {"key_alias": "", "team": "", "user": "", "models": "", "duration": "", "metadata": "",
            "max_budget": "", "budget_duration": "", "rpm_limit": "", "tpm_limit": "",
            "max_parallel_requests": "", **fields}


def _change_form(key: VirtualKey, **fields) -> dict:
    return {"key_alias": key.key_alias or "", "models": ", ".join(key.models), "metadata": "{}",
            "expires_0": "", "expires_1": "", "max_budget": "" if key.max_budget is None else key.max_budget,
            "budget_duration": key.budget_duration or "", "rpm_limit": "", "tpm_limit": "",
            "max_parallel_requests": "", **fields}


def test_changelist_shows_keys_with_spend_against_budget(admin_site, make_key, ml_team):
    make_key(key_alias="ci-bot", team_id=ml_team.team_id, user_id="alice", max_budget=10.0, spend=0.12)

    response = admin_site.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert "ci-bot" in page and "ml-research" in page and "alice" in page
    assert "0.12 / 10.00" in page


def test_add_form_does_not_ask_for_token_or_key_name(admin_site):
    response = admin_site.get(ADD)

    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="key_alias"' in page and 'name="duration"' in page
    assert 'name="token"' not in page and 'name="key_name"' not in page


def test_add_creates_one_key_through_the_service_storing_only_the_digest(admin_site, ml_team, root):
    response = admin_site.post(ADD, _add_form(key_alias="ci-bot", team=ml_team.team_id, user=root.pk,
                                             models="gpt-4o, claude-3", max_budget="5", duration="30d",
                                             metadata='{"owner": "ml"}'), follow=True)

    raw = RAW_KEY.search(response.content.decode()).group()
    key = VirtualKey.objects.get()
    assert key.token == digest(raw) and key.key_name == abbreviate(raw)
    assert key.created_by == "root"
    assert (key.team, key.user, key.models, key.max_budget) == (ml_team, root, ["gpt-4o", "claude-3"], 5.0)
    assert key.metadata == {"owner": "ml"} and key.expires is not None
    assert raw not in str(VirtualKey.objects.filter(pk=key.pk).values().first())


def test_add_shows_the_secret_once_after_the_redirect(admin_site):
    response = admin_site.post(ADD, _add_form(key_alias="ci-bot"), follow=True)

    assert response.redirect_chain and response.status_code == 200
    raw = RAW_KEY.search(response.content.decode()).group()
    key = VirtualKey.objects.get()
    assert digest(raw) == key.token
    assert raw not in admin_site.get(CHANGELIST).content.decode()
    assert raw not in admin_site.get(f"{CHANGELIST}{key.pk}/change/").content.decode()


def test_add_accepts_models_as_a_json_list(admin_site):
    admin_site.post(ADD, _add_form(models='["gpt-4o", "o3"]'))

    assert VirtualKey.objects.get().models == ["gpt-4o", "o3"]


def test_add_refuses_a_bad_duration_and_creates_nothing(admin_site):
    response = admin_site.post(ADD, _add_form(duration="forever"))

    assert response.status_code == 200
    assert "is not a duration" in response.content.decode()
    assert not VirtualKey.objects.exists()


def test_change_form_shows_the_digest_read_only(admin_site, make_key):
    key = make_key(key_alias="ci-bot")

    page = admin_site.get(f"{CHANGELIST}{key.pk}/change/").content.decode()

    assert key.token in page and key.key_name in page
    assert 'name="token"' not in page and 'name="key_name"' not in page and 'name="spend"' not in page


def test_change_saves_through_key_update(admin_site, make_key):
    key = make_key(key_alias="ci-bot", models=["gpt-4o"])

    response = admin_site.post(f"{CHANGELIST}{key.pk}/change/",
                               _change_form(key, models="gpt-4o, o3", rpm_limit="60", blocked="on"))

    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.models, key.rpm_limit, key.blocked, key.updated_by) == (["gpt-4o", "o3"], 60, True, "root")


def test_change_sets_the_expiry_date(admin_site, make_key):
    key = make_key(key_alias="ci-bot")

    admin_site.post(f"{CHANGELIST}{key.pk}/change/",
                    _change_form(key, expires_0="2031-01-02", expires_1="03:04:05"))

    key.refresh_from_db()
    assert key.expires is not None and (key.expires.year, key.expires.month, key.expires.day) == (2031, 1, 2)


def test_block_action_blocks_only_the_selected_keys(admin_site, make_key, django_capture_on_commit_callbacks):
    first, second, other = make_key(key_alias="a"), make_key(key_alias="b"), make_key(key_alias="c")

    with django_capture_on_commit_callbacks() as invalidations:
        admin_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": [first.pk, second.pk]})

    assert list(VirtualKey.objects.filter(blocked=True).order_by("key_alias").values_list("key_alias", flat=True)) == ["a", "b"]
    assert len(invalidations) >= 2  # each key was saved, so each cached snapshot is dropped on commit


def test_unblock_action_unblocks_the_selected_keys(admin_site, make_key):
    key = make_key(key_alias="a", blocked=True)

    admin_site.post(CHANGELIST, {"action": "unblock_selected", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.blocked is False


def test_search_finds_a_key_by_its_raw_secret(admin_site, ml_team):
    page = admin_site.post(ADD, _add_form(key_alias="ci-bot"), follow=True).content.decode()
    raw = RAW_KEY.search(page).group()
    VirtualKey.objects.create(token=digest("sk-other"), key_name="sk-...ther", key_alias="other")

    response = admin_site.get(CHANGELIST, {"q": raw})

    assert list(response.context["cl"].result_list) == [VirtualKey.objects.get(key_alias="ci-bot")]


def test_expiry_filter_past_lists_only_expired_keys(admin_site, make_key):
    expired = make_key(key_alias="old")
    VirtualKey.objects.filter(pk=expired.pk).update(expires=timezone.now() - timedelta(days=1))
    make_key(key_alias="forever")

    response = admin_site.get(CHANGELIST, {"expiry": "past"})

    assert [key.key_alias for key in response.context["cl"].result_list] == ["old"]
