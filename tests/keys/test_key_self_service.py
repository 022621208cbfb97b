"""What an internal user (not a proxy admin) may do to keys with its own key."""
import pytest

from keys.hashing import digest
from keys.models import VirtualKey
from keys.services import key_generate
from teams.models import TeamRole, User, UserRole
from teams.services import Member, team_create


def _key(**fields) -> str:
    return key_generate(actor=None, **fields)[1]


def _set_models(username: str, models: list[str]) -> None:
    user = User.objects.get(username=username)
    user.models = models
    user.save()


@pytest.fixture
def alice(db) -> str:
    """The raw key of ``alice``, an internal user."""
    return _key(user_id="alice")


def test_an_internal_user_generates_a_key_for_itself(api_as, alice):
    response = api_as(alice).post("/key/generate", {"key_alias": "laptop"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["user_id"], body["key_alias"], body["created_by"]) == ("alice", "laptop", "alice")


def test_a_self_made_key_gets_the_users_models(api_as, alice):
    _set_models("alice", ["gpt-4o", "openai/*"])

    body = api_as(alice).post("/key/generate", {}, format="json").json()

    assert body["models"] == ["gpt-4o", "openai/*"]


def test_a_self_made_key_may_narrow_the_users_models(api_as, alice):
    _set_models("alice", ["openai/*"])

    response = api_as(alice).post("/key/generate", {"models": ["openai/gpt-4o"]}, format="json")

    assert response.status_code == 200 and response.json()["models"] == ["openai/gpt-4o"]


def test_a_self_made_key_may_not_widen_the_users_models(api_as, alice):
    _set_models("alice", ["gpt-4o"])

    response = api_as(alice).post("/key/generate", {"models": ["gpt-4o", "claude-3"]}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "A key may only have models its user may use; not allowed: claude-3"
    assert VirtualKey.objects.count() == 1


def test_a_self_made_key_may_carry_limits(api_as, alice):
    response = api_as(alice).post("/key/generate", {"max_budget": 2, "rpm_limit": 5, "allowed_ips": ["10.0.0.0/8"]},
                                  format="json")

    assert response.status_code == 200 and response.json()["max_budget"] == 2.0


@pytest.mark.parametrize("field, value", [("spend", 0), ("permissions", {"hide_secrets": False}),
                                          ("aliases", {"gpt-4o": "o1"}), ("config", {})])
def test_settings_that_widen_a_new_key_are_for_proxy_admins(api_as, alice, field, value):
    response = api_as(alice).post("/key/generate", {field: value}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["message"].endswith(f"Only a proxy admin may set: {field}")
    assert VirtualKey.objects.count() == 1


def test_an_internal_user_may_not_generate_a_key_for_someone_else(api_as, alice):
    response = api_as(alice).post("/key/generate", {"user_id": "bob"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["message"] == ("You may only create keys for yourself, or for members of a team "
                                                    "you are an admin of.")
    assert not User.objects.filter(username="bob").exists()


def test_a_team_admin_generates_a_team_key_for_a_member(api_as, alice):
    team_create(team_id="t1", members_with_roles=[Member(role=TeamRole.ADMIN, user_id="alice"),
                                                  Member(role=TeamRole.USER, user_id="carol")])

    response = api_as(alice).post("/key/generate", {"team_id": "t1", "user_id": "carol"}, format="json")

    assert response.status_code == 200
    assert (response.json()["team_id"], response.json()["user_id"]) == ("t1", "carol")


def test_a_team_admin_may_not_generate_a_team_key_for_a_non_member(api_as, alice):
    team_create(team_id="t1", members_with_roles=[Member(role=TeamRole.ADMIN, user_id="alice")])
    _key(user_id="bob")

    response = api_as(alice).post("/key/generate", {"team_id": "t1", "user_id": "bob"}, format="json")

    assert response.status_code == 403


def test_a_team_member_may_not_generate_a_team_key(api_as, alice):
    team_create(team_id="t1", members_with_roles=[Member(role=TeamRole.USER, user_id="alice")])

    response = api_as(alice).post("/key/generate", {"team_id": "t1"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "You may only create keys for teams you are an admin of."


def test_a_key_without_a_user_may_not_generate_keys(api_as):
    response = api_as(_key()).post("/key/generate", {}, format="json")

    assert response.status_code == 401
    assert "Only proxy admin can be used" in response.json()["error"]["message"]


def test_a_viewer_may_not_generate_keys(api_as):
    User.objects.create(username="vera", role=UserRole.INTERNAL_USER_VIEWER)

    response = api_as(_key(user_id="vera")).post("/key/generate", {}, format="json")

    assert response.status_code == 401


def test_an_internal_user_renames_and_retags_its_own_key(api_as, alice):
    spare = _key(user_id="alice")

    response = api_as(alice).post("/key/update", {"key": spare, "key_alias": "renamed", "tags": ["a"],
                                                  "metadata": {"tags": ["b"]}}, format="json")

    assert response.status_code == 200
    assert VirtualKey.objects.get(token=digest(spare)).key_alias == "renamed"


def test_an_internal_user_may_not_update_someone_elses_key(api_as, alice):
    bobs = _key(user_id="bob", key_alias="bobs")

    response = api_as(alice).post("/key/update", {"key": bobs, "key_alias": "mine"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "You may only change your own keys."
    assert VirtualKey.objects.get(token=digest(bobs)).key_alias == "bobs"


def test_an_internal_user_may_not_move_its_key_to_a_team(api_as, alice):
    team_create(team_id="t1")

    response = api_as(alice).post("/key/update", {"key": alice, "team_id": "t1"}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["message"].endswith("Only a proxy admin may set: team_id")


def test_an_internal_user_deletes_its_own_keys(api_as, alice):
    spare = _key(user_id="alice", key_alias="spare")

    response = api_as(alice).post("/key/delete", {"key_aliases": ["spare"]}, format="json")

    assert response.status_code == 200
    assert not VirtualKey.objects.filter(token=digest(spare)).exists()


def test_deleting_a_key_that_is_not_yours_deletes_nothing(api_as, alice):
    spare, bobs = _key(user_id="alice"), _key(user_id="bob")

    response = api_as(alice).post("/key/delete", {"keys": [spare, bobs]}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "You may only delete your own keys."
    assert VirtualKey.objects.count() == 3
