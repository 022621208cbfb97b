from django.db import connection
from django.test.utils import CaptureQueriesContext

from teams.models import Team, TeamMembership, TeamRole

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
    assert "0.12 / 10.00" in response.content.decode()


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
