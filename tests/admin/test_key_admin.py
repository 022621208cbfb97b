from datetime import timedelta

from django.utils import timezone

from keys.hashing import abbreviate, digest
from keys.models import VirtualKey
from tests.admin.conftest import RAW_KEY
from tests.audit.conftest import last_record

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


def test_changelist_shows_alias_team_user_spend_against_budget_expiry_and_blocked(admin_site, make_key, ml_team):
    make_key(key_alias="ci-bot", team_id=ml_team.team_id, user_id="alice", max_budget=10.0, spend=1.2)
    make_key(key_alias="spare", blocked=True)

    response = admin_site.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert "ci-bot" in page and "ml-research" in page and "alice" in page
    assert "$1.20 / $10.00 (12%)" in page and "$0.00 / no budget" in page
    assert page.count(">never<") == 2
    assert 'class="field-blocked"><img src="/static/admin/img/icon-yes.svg" alt="True">' in page


def test_a_key_over_its_budget_is_shown_in_the_error_colour(admin_site, make_key):
    make_key(key_alias="spent", max_budget=2.0, spend=3.0)

    page = admin_site.get(CHANGELIST).content.decode()

    assert '<span style="color: var(--error-fg)">$3.00 / $2.00 (150%)</span>' in page


def test_changelist_marks_expired_keys(admin_site, make_key):
    key = make_key(key_alias="old")
    VirtualKey.objects.filter(pk=key.pk).update(expires=timezone.now() - timedelta(days=1))

    assert "expired " in admin_site.get(CHANGELIST).content.decode()


def test_changelist_queries_do_not_grow_with_the_number_of_keys(admin_site, make_key, ml_team,
                                                                django_assert_max_num_queries):
    make_key(key_alias="k0", team_id=ml_team.team_id, user_id="u0")
    admin_site.get(CHANGELIST)  # the session and content types are read once
    with django_assert_max_num_queries(8) as few:
        admin_site.get(CHANGELIST)
    for i in range(1, 20):
        make_key(key_alias=f"k{i}", team_id=ml_team.team_id, user_id=f"u{i}")

    with django_assert_max_num_queries(8) as many:
        admin_site.get(CHANGELIST)

    assert len(many) == len(few)


def test_search_finds_keys_by_team_alias_and_by_user_email(admin_site, make_key, ml_team, django_user_model):
    django_user_model.objects.create(username="alice", email="alice@example.com")
    make_key(key_alias="team-key", team_id=ml_team.team_id)
    make_key(key_alias="alice-key", user_id="alice")
    make_key(key_alias="other")

    by_team = admin_site.get(CHANGELIST, {"q": "ml-research"}).context["cl"].result_list
    by_email = admin_site.get(CHANGELIST, {"q": "alice@example"}).context["cl"].result_list

    assert [key.key_alias for key in by_team] == ["team-key"]
    assert [key.key_alias for key in by_email] == ["alice-key"]


def test_filters_by_team_and_by_blocked(admin_site, make_key, ml_team):
    make_key(key_alias="team-key", team_id=ml_team.team_id)
    make_key(key_alias="blocked-key", blocked=True)

    by_team = admin_site.get(CHANGELIST, {"team__team_id__exact": ml_team.team_id}).context["cl"].result_list
    blocked = admin_site.get(CHANGELIST, {"blocked__exact": "1"}).context["cl"].result_list

    assert [key.key_alias for key in by_team] == ["team-key"]
    assert [key.key_alias for key in blocked] == ["blocked-key"]


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


def test_add_shows_the_secret_once_on_the_page_answering_the_post(admin_site):
    response = admin_site.post(ADD, _add_form(key_alias="ci-bot"))

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    raw = RAW_KEY.search(response.content.decode()).group()
    key = VirtualKey.objects.get()
    assert digest(raw) == key.token
    assert raw not in admin_site.get(CHANGELIST).content.decode()
    assert raw not in admin_site.get(f"{CHANGELIST}{key.pk}/change/").content.decode()


def test_add_keeps_the_secret_out_of_cookies_and_the_session(admin_site):
    response = admin_site.post(ADD, _add_form(key_alias="ci-bot"))
    raw = RAW_KEY.search(response.content.decode()).group()

    assert all(raw not in morsel.value for morsel in response.cookies.values())
    assert raw not in str(dict(admin_site.session))


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


def test_a_key_blocked_in_the_admin_is_refused_by_the_proxy(admin_site, issue_key, proxy,
                                                           django_capture_on_commit_callbacks):
    key, raw = issue_key(key_alias="ci-bot")
    assert proxy(raw).status_code == 200  # now in the proxy's key cache

    with django_capture_on_commit_callbacks(execute=True):
        admin_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": [key.pk]})

    refused = proxy(raw)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"].startswith("Authentication Error, Key is blocked.")


def test_a_key_unblocked_in_the_admin_is_served_by_the_proxy_again(admin_site, issue_key, proxy,
                                                                  django_capture_on_commit_callbacks):
    key, raw = issue_key(key_alias="ci-bot", blocked=True)
    assert proxy(raw).status_code == 401

    with django_capture_on_commit_callbacks(execute=True):
        admin_site.post(CHANGELIST, {"action": "unblock_selected", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.blocked is False and proxy(raw).status_code == 200


def test_blocking_in_the_admin_is_audited_with_the_admin_as_actor(admin_site, make_key, audit_on):
    key = make_key(key_alias="ci-bot")

    admin_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": [key.pk]})

    record = last_record(table_name="LiteLLM_VerificationToken")
    assert (record.action, record.object_id, record.changed_by) == ("blocked", key.pk, "root")
    assert record.log_entry.actor.username == "root"
    key.refresh_from_db()
    assert key.updated_by == "root"


def _regenerate(client, *keys, confirm: bool):
    data = {"action": "regenerate_selected", "_selected_action": [key.pk for key in keys]}
    return client.post(CHANGELIST, {**data, "confirm": "yes"} if confirm else data)


def test_regenerate_asks_for_confirmation_first_and_changes_nothing(admin_site, make_key):
    key = make_key(key_alias="ci-bot")

    response = _regenerate(admin_site, key, confirm=False)

    assert response.status_code == 200
    page = response.content.decode()
    assert "ci-bot" in page and 'name="confirm" value="yes"' in page
    assert RAW_KEY.search(page) is None
    assert list(VirtualKey.objects.values_list("token", flat=True)) == [key.pk]


def test_regenerate_shows_the_new_secret_once_and_the_old_one_stops_working(
        admin_site, issue_key, proxy, django_capture_on_commit_callbacks):
    old, old_raw = issue_key(key_alias="ci-bot", max_budget=5.0)
    assert proxy(old_raw).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = _regenerate(admin_site, old, confirm=True)

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new_raw = RAW_KEY.search(response.content.decode()).group()
    key = VirtualKey.objects.get()
    assert (key.token, key.key_name, key.key_alias, key.max_budget) == (digest(new_raw), abbreviate(new_raw),
                                                                          "ci-bot", 5.0)
    assert proxy(old_raw).status_code == 401 and proxy(new_raw).status_code == 200
    assert new_raw not in admin_site.get(CHANGELIST).content.decode()
    assert new_raw not in admin_site.get(f"{CHANGELIST}{key.pk}/change/").content.decode()
    assert all(new_raw not in morsel.value for morsel in response.cookies.values())


def test_regenerate_is_audited_with_the_admin_as_actor(admin_site, make_key, audit_on):
    key = make_key(key_alias="ci-bot")

    _regenerate(admin_site, key, confirm=True)

    record = last_record(table_name="LiteLLM_VerificationToken")
    assert record.changed_by == "root" and record.object_id == VirtualKey.objects.get().pk


def test_regenerating_a_key_that_is_gone_reports_it_and_shows_no_secret(admin_site, make_key):
    key = make_key(key_alias="ci-bot")
    VirtualKey.objects.filter(pk=key.pk).delete()

    response = _regenerate(admin_site, key, confirm=True)

    assert response.status_code == 302  # nothing selected any more: back to the list
    assert not VirtualKey.objects.exists()


def test_a_viewer_sees_the_keys_but_is_offered_no_action(viewer_site, make_key):
    make_key(key_alias="ci-bot", max_budget=1.0)

    response = viewer_site.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert "ci-bot" in page and "$0.00 / $1.00 (0%)" in page
    assert 'name="action"' not in page and "Add virtual key" not in page


def test_a_viewer_cannot_block_or_regenerate_a_key(viewer_site, make_key):
    key = make_key(key_alias="ci-bot")

    viewer_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": [key.pk]})
    regenerated = _regenerate(viewer_site, key, confirm=True)

    assert RAW_KEY.search(regenerated.content.decode()) is None
    assert list(VirtualKey.objects.values_list("token", "blocked")) == [(key.pk, False)]


def test_a_viewer_role_stays_read_only_even_with_change_permissions(viewer, viewer_site, make_key):
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["change_virtualkey", "add_virtualkey"]))
    key = make_key(key_alias="ci-bot")

    viewer_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": [key.pk]})

    assert VirtualKey.objects.get().blocked is False
    assert viewer_site.get(ADD).status_code == 403
    assert viewer_site.post(f"{CHANGELIST}{key.pk}/change/", _change_form(key, blocked="on")).status_code == 403


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
