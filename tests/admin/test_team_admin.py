from django.db import connection
from django.test.utils import CaptureQueriesContext

from teams.models import Team, TeamMembership, TeamRole
from tests.audit.conftest import last_record

CHANGELIST = "/admin/teams/team/"


def _change_form(team: Team, **fields) -> dict:
    return {"team_alias": team.team_alias, "models": "", "metadata": "{}", "max_budget": team.max_budget or "",
            "budget_duration": "", "rpm_limit": "", "tpm_limit": "", "max_parallel_requests": "",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000", **fields}


def _team_with_members(alias: str, count: int, django_user_model) -> Team:
    team = Team.objects.create(team_alias=alias)
    for i in range(count):
        TeamMembership.objects.create(team=team, user=django_user_model.objects.create(username=f"{alias}-{i}"))
    return team


def test_changelist_shows_member_count_and_spend_against_budget(admin_site, ml_team, root):
    TeamMembership.objects.create(team=ml_team, user=root)

    response = admin_site.get(CHANGELIST)

    assert response.status_code == 200
    row = response.context["cl"].result_list[0]
    assert row.member_count == 1
    assert "$0.12 / $10.00 (1%)" in response.content.decode()


def test_changelist_queries_do_not_grow_with_the_number_of_teams(admin_site, django_user_model):
    _team_with_members("one", 2, django_user_model)
    with CaptureQueriesContext(connection) as few:
        admin_site.get(CHANGELIST)
    for alias in ("two", "three", "four"):
        _team_with_members(alias, 3, django_user_model)

    with CaptureQueriesContext(connection) as many:
        admin_site.get(CHANGELIST)

    assert len(many) == len(few)


def test_inline_adds_a_member_with_a_role(admin_site, ml_team, django_user_model):
    alice = django_user_model.objects.create(username="alice")

    response = admin_site.post(f"{CHANGELIST}{ml_team.pk}/change/", _change_form(
        ml_team, **{"memberships-TOTAL_FORMS": "1", "memberships-0-user": alice.pk,
                    "memberships-0-role": TeamRole.ADMIN, "memberships-0-max_budget_in_team": "2.5"}))

    assert response.status_code == 302
    membership = TeamMembership.objects.get(team=ml_team)
    assert (membership.user, membership.role, membership.max_budget_in_team) == (alice, TeamRole.ADMIN, 2.5)


def test_add_creates_the_team_through_the_service_with_its_members(admin_site, root):
    response = admin_site.post(f"{CHANGELIST}add/", {
        **_change_form(Team(team_alias="search"), team_id="team-search", models="gpt-4o", budget_duration="30d"),
        "memberships-TOTAL_FORMS": "1", "memberships-0-user": root.pk, "memberships-0-role": TeamRole.USER,
    })

    assert response.status_code == 302
    team = Team.objects.get(team_id="team-search")
    assert (team.team_alias, team.models, team.budget_reset_at is not None) == ("search", ["gpt-4o"], True)
    assert list(team.memberships.values_list("user__username", "role")) == [("root", TeamRole.USER)]


def test_block_action_blocks_the_selected_teams(admin_site, ml_team):
    other = Team.objects.create(team_alias="other")

    admin_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": [ml_team.pk]})

    ml_team.refresh_from_db()
    other.refresh_from_db()
    assert (ml_team.blocked, other.blocked) == (True, False)


def test_search_by_alias_and_blocked_filter(admin_site, ml_team):
    Team.objects.create(team_alias="other", blocked=True)

    found = admin_site.get(CHANGELIST, {"q": "ml-res"}).context["cl"].result_list
    blocked = admin_site.get(CHANGELIST, {"blocked__exact": "1"}).context["cl"].result_list

    assert [team.team_alias for team in found] == ["ml-research"]
    assert [team.team_alias for team in blocked] == ["other"]


def test_a_team_blocked_in_the_admin_has_its_keys_refused_by_the_proxy(admin_site, ml_team, issue_key, proxy,
                                                                      django_capture_on_commit_callbacks):
    _key, raw = issue_key(team_id=ml_team.team_id)
    assert proxy(raw).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        admin_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": [ml_team.pk]})

    refused = proxy(raw)
    assert refused.status_code == 401 and f"Team={ml_team.team_id} is blocked" in refused.json()["error"]["message"]


def test_blocking_a_team_is_audited_with_the_admin_as_actor(admin_site, ml_team, audit_on):
    admin_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": [ml_team.pk]})

    record = last_record(table_name="LiteLLM_TeamTable")
    assert (record.action, record.object_id, record.changed_by) == ("blocked", ml_team.team_id, "root")


def test_a_viewer_sees_teams_and_members_read_only(viewer_site, ml_team, root):
    TeamMembership.objects.create(team=ml_team, user=root)

    listing = viewer_site.get(CHANGELIST).content.decode()
    page = viewer_site.get(f"{CHANGELIST}{ml_team.pk}/change/").content.decode()
    viewer_site.post(CHANGELIST, {"action": "block_selected", "_selected_action": [ml_team.pk]})

    assert "ml-research" in listing and 'name="action"' not in listing
    assert "root" in page and 'name="memberships-0-role"' not in page
    ml_team.refresh_from_db()
    assert ml_team.blocked is False
