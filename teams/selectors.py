"""Management-side reads of teams and internal users, serialized to the contract's shapes."""
from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from gateway_project.errors import NotFoundError
from keys.models import VirtualKey
from keys.selectors import key_info_dict
from teams.callbacks import masked_metadata
from teams.models import Customer, Team, TeamMembership, TeamRole, User, UserRole


def teams_with_members() -> QuerySet[Team]:
    """Teams with their memberships and users loaded, so ``team_dict`` runs no query per team."""
    memberships = TeamMembership.objects.select_related("user").order_by("created_at", "pk")
    teams = Team.objects.prefetch_related(Prefetch("memberships", queryset=memberships))
    return teams.order_by("created_at", "team_id")


def team_get(*, team_id: str) -> Team:
    team = teams_with_members().filter(team_id=team_id).first()
    if team is None:
        raise NotFoundError(f"Team not found, passed team_id={team_id}", param="team_id")
    return team


def user_get(*, user_id: str) -> User:
    user = User.objects.filter(username=user_id).first()
    if user is None:
        raise NotFoundError(f"User not found, passed user_id={user_id}", param="user_id")
    return user


def _email(user: User) -> str | None:
    return user.email or None


def user_role(user: User) -> str:
    """The role the API reports; a Django superuser is a proxy admin whatever its stored role."""
    return UserRole.PROXY_ADMIN.value if user.is_superuser else str(user.role)


def team_dict(team: Team) -> dict[str, Any]:
    """A team as ``/team/new``, ``/team/info`` and ``/team/list`` show it."""
    memberships = list(team.memberships.all())
    return {
        "team_id": team.team_id,
        "team_alias": team.team_alias,
        "admins": [m.user.username for m in memberships if m.role == TeamRole.ADMIN],
        "members": [m.user.username for m in memberships if m.role == TeamRole.USER],
        "members_with_roles": [{"role": m.role, "user_id": m.user.username, "user_email": _email(m.user)}
                               for m in memberships],
        "metadata": masked_metadata(team.metadata),   # callback secrets never leave in full
        "models": team.models,
        "max_budget": team.max_budget,
        "spend": team.spend,
        "blocked": team.blocked,
        "tpm_limit": team.tpm_limit,
        "rpm_limit": team.rpm_limit,
        "max_parallel_requests": team.max_parallel_requests,
        "budget_duration": team.budget_duration,
        "budget_reset_at": team.budget_reset_at,
        "created_at": team.created_at,
        "updated_at": team.updated_at,
    }


def membership_dict(membership: TeamMembership) -> dict[str, Any]:
    return {
        "user_id": membership.user.username,
        "team_id": membership.team_id,
        "role": membership.role,
        "max_budget_in_team": membership.max_budget_in_team,
        "created_at": membership.created_at,
    }


def user_dict(user: User) -> dict[str, Any]:
    """An internal user as ``/user/info`` shows it under ``user_info``."""
    return {
        "user_id": user.username,
        "user_email": _email(user),
        "user_role": user_role(user),
        "max_budget": user.max_budget,
        "spend": user.spend,
        "models": user.models,
        "metadata": user.metadata,
        "budget_duration": user.budget_duration,
        "budget_reset_at": user.budget_reset_at,
        "tpm_limit": user.tpm_limit,
        "rpm_limit": user.rpm_limit,
        "max_parallel_requests": user.max_parallel_requests,
        "teams": list(user.team_memberships.order_by("created_at", "pk").values_list("team_id", flat=True)),
        "created_at": user.date_joined,
    }


def team_list(*, user_id: str | None = None) -> QuerySet[Team]:
    """Every team, or only the teams ``user_id`` is a member of."""
    teams = teams_with_members()
    if user_id is not None:
        teams = teams.filter(memberships__user__username=user_id)
    return teams


def team_info(*, team_id: str) -> dict[str, Any]:
    team = team_get(team_id=team_id)
    keys = VirtualKey.objects.select_related("user").filter(team=team).order_by("-created_at", "token")
    return {
        "team_id": team.team_id,
        "team_info": team_dict(team),
        "keys": [key_info_dict(k) for k in keys],
        "team_memberships": [membership_dict(m) for m in team.memberships.all()],
    }


def user_info(*, user_id: str) -> dict[str, Any]:
    user = user_get(user_id=user_id)
    keys = VirtualKey.objects.select_related("user").filter(user=user).order_by("-created_at", "token")
    return {
        "user_id": user.username,
        "user_info": user_dict(user),
        "keys": [key_info_dict(k) for k in keys],
        "teams": [team_dict(t) for t in team_list(user_id=user.username)],
    }


def team_role_of(*, team_id: str, user_id: str | None) -> str | None:
    """``user_id``'s role in the team (``admin`` or ``user``), or None when they are not a member."""
    if user_id is None:
        return None
    membership = TeamMembership.objects.filter(team_id=team_id, user__username=user_id).first()
    return membership.role if membership else None


def customer_get(*, user_id: str, param: str = "user_id") -> Customer:
    customer = Customer.objects.filter(user_id=user_id).first()
    if customer is None:
        raise NotFoundError(f"Customer not found, passed {param}={user_id}", param=param)
    return customer


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.order_by("created_at", "user_id")


def _budget_table(customer: Customer) -> dict[str, Any] | None:
    """LiteLLM keeps a customer's budget in a linked budget row; Gateway keeps it on the customer and
    shows the same fields here, or null when none is set."""
    fields = ("max_budget", "budget_duration", "tpm_limit", "rpm_limit", "max_parallel_requests")
    if all(getattr(customer, name) is None for name in fields):
        return None
    return {name: getattr(customer, name) for name in (*fields, "budget_reset_at")}


def customer_dict(customer: Customer) -> dict[str, Any]:
    """A customer (end user) as ``/customer/info`` and every other ``/customer/*`` route show it."""
    return {
        "user_id": customer.user_id,
        "alias": customer.alias,
        "blocked": customer.blocked,
        "spend": customer.spend,
        "allowed_model_region": customer.allowed_model_region,
        "default_model": customer.default_model,
        "models": customer.models,
        "max_budget": customer.max_budget,
        "budget_duration": customer.budget_duration,
        "litellm_budget_table": _budget_table(customer),
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
    }
