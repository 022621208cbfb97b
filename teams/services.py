"""Writes to teams, their memberships and internal users. Each service is atomic; the proxy's team
and key snapshots are invalidated on commit by the model signals in ``teams/cache.py`` and
``keys/cache.py``."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.utils import timezone

from gateway_project.durations import add_duration
from gateway_project.errors import BadRequestError, NotFoundError
from keys.models import VirtualKey
from keys.services import key_generate
from teams.callbacks import CallbackConfigError, CallbackTarget, with_callback, without_logging
from teams.models import Customer, Team, TeamMembership, TeamRole, User, UserRole
from teams.selectors import team_get

# Fields a caller may set on a team, as they are named on the wire and on the model.
TEAM_FIELDS = (
    "team_alias", "models", "max_budget", "budget_duration", "tpm_limit", "rpm_limit",
    "max_parallel_requests", "metadata", "blocked",
)
USER_FIELDS = ("max_budget", "budget_duration", "tpm_limit", "rpm_limit", "max_parallel_requests", "models",
               "metadata")
CUSTOMER_FIELDS = ("alias", "blocked", "max_budget", "budget_duration", "tpm_limit", "rpm_limit",
                   "max_parallel_requests", "allowed_model_region", "default_model", "models")


@dataclass(frozen=True)
class Member:
    """A team member as a request names them: by user_id, by user_email, or both."""

    role: str
    user_id: str | None = None
    user_email: str | None = None


def _budget_reset(duration: str | None, now: datetime) -> datetime | None:
    return add_duration(now, duration) if duration else None


def _new_user(*, username: str, email: str | None = None, role: str = UserRole.INTERNAL_USER,
              **fields: Any) -> User:
    user = User(username=username, email=email or "", role=role, **fields)
    user.set_unusable_password()  # internal users sign in with keys or SSO, never a password
    user.save()
    return user


def _member_user(member: Member) -> User:
    """The user a member names; like LiteLLM, an unknown user_id or email creates an internal user."""
    if member.user_id is not None:
        # get_or_create: two requests naming the same new user_id must not both insert it.
        user, _ = User.objects.get_or_create(username=member.user_id, defaults={
            "email": member.user_email or "", "role": UserRole.INTERNAL_USER, "password": make_password(None)})
        return user
    user = User.objects.filter(email__iexact=member.user_email).order_by("date_joined", "pk").first()
    return user or _new_user(username=str(uuid.uuid4()), email=member.user_email)


def _add_members(team: Team, members: Iterable[Member], *,
                 max_budget_in_team: float | None = None) -> list[TeamMembership]:
    """Add or re-role each member; an existing member keeps their budget unless one is passed."""
    memberships = []
    for member in members:
        user = _member_user(member)
        defaults: dict[str, Any] = {"role": member.role}
        if max_budget_in_team is not None:
            defaults["max_budget_in_team"] = max_budget_in_team
        membership, _ = TeamMembership.objects.update_or_create(team=team, user=user, defaults=defaults)
        memberships.append(membership)
    return memberships


def _locked_team(team_id: str) -> Team:
    team = Team.objects.select_for_update().filter(team_id=team_id).first()
    if team is None:
        raise NotFoundError(f"Team not found, passed team_id={team_id}", param="team_id")
    return team


@transaction.atomic
def team_create(*, creator_id: str | None = None, team_id: str | None = None,
                members_with_roles: Iterable[Member] = (), **fields: Any) -> Team:
    """Create a team with its members. ``creator_id`` (a real user, not the master key) joins as an
    admin unless the request already names them."""
    team_id = team_id or str(uuid.uuid4())
    if Team.objects.filter(team_id=team_id).exists():
        raise BadRequestError(f"Team id = {team_id} already exists. Please use a different team id.",
                              param="team_id")
    team = Team(team_id=team_id, budget_reset_at=_budget_reset(fields.get("budget_duration"), timezone.now()),
                **{name: fields[name] for name in TEAM_FIELDS if name in fields})
    try:
        with transaction.atomic():
            team.save(force_insert=True)
    except IntegrityError:
        # A concurrent request created the same team_id between the check and the insert.
        raise BadRequestError(f"Team id = {team_id} already exists. Please use a different team id.",
                              param="team_id") from None
    members = list(members_with_roles)
    if creator_id is not None and not any(m.user_id == creator_id for m in members):
        members.insert(0, Member(role=TeamRole.ADMIN, user_id=creator_id))
    _add_members(team, members)
    return team_get(team_id=team.team_id)


@transaction.atomic
def team_update(*, team_id: str, **fields: Any) -> Team:
    """Change the named fields; absent fields keep their values. A new budget_duration restarts
    the budget period."""
    team = _locked_team(team_id)
    if "budget_duration" in fields and fields["budget_duration"] != team.budget_duration:
        team.budget_reset_at = _budget_reset(fields["budget_duration"], timezone.now())
    for name in TEAM_FIELDS:
        if name in fields:
            setattr(team, name, fields[name])
    team.save()
    return team_get(team_id=team.team_id)


@transaction.atomic
def team_delete(*, team_ids: list[str]) -> list[str]:
    """Delete every named team with its keys and memberships, or none of them."""
    teams = list(Team.objects.select_for_update().filter(team_id__in=team_ids))
    found = {team.team_id for team in teams}
    missing = [team_id for team_id in team_ids if team_id not in found]
    if missing:
        raise NotFoundError(f"Team not found, passed team_id={', '.join(missing)}", param="team_ids")
    for team in teams:
        # Model.delete, not a queryset update or raw SQL: the cascade to keys sends post_delete for
        # each key, which is what evicts it from the proxy's key cache.
        team.delete()
    return team_ids


@transaction.atomic
def team_member_add(*, team_id: str, members: Iterable[Member],
                    max_budget_in_team: float | None = None) -> tuple[Team, list[TeamMembership]]:
    """Add members to a team; a member already in it takes the role passed now."""
    team = _locked_team(team_id)
    memberships = _add_members(team, members, max_budget_in_team=max_budget_in_team)
    team.save(update_fields=["updated_at"])
    return team_get(team_id=team.team_id), memberships


def _membership(team: Team, *, user_id: str | None, user_email: str | None) -> TeamMembership:
    memberships = TeamMembership.objects.filter(team=team)
    if user_id is not None:
        membership, named, param = memberships.filter(user__username=user_id).first(), user_id, "user_id"
    else:
        membership, named, param = memberships.filter(user__email__iexact=user_email).first(), user_email, "user_email"
    if membership is None:
        raise BadRequestError(f"User {named} is not a member of team {team.team_id}", param=param)
    return membership


@transaction.atomic
def team_member_delete(*, team_id: str, user_id: str | None = None, user_email: str | None = None) -> Team:
    """Remove one member from a team. The user and their keys stay."""
    team = _locked_team(team_id)
    _membership(team, user_id=user_id, user_email=user_email).delete()
    team.save(update_fields=["updated_at"])
    return team_get(team_id=team.team_id)


def _check_new_user(user_id: str, user_email: str | None, teams: list[str]) -> None:
    if User.objects.filter(username=user_id).exists():
        raise BadRequestError(f"User with id {user_id} already exists.", param="user_id")
    if user_email and User.objects.filter(email__iexact=user_email).exists():
        raise BadRequestError(f"User with email {user_email} already exists.", param="user_email")
    # Locked: a team deleted between this check and the memberships' insert would fail the insert.
    found = set(Team.objects.select_for_update().filter(team_id__in=teams).values_list("team_id", flat=True))
    missing = [team_id for team_id in teams if team_id not in found]
    if missing:
        raise BadRequestError(f"Team not found, passed team_id={', '.join(missing)}", param="teams")


@transaction.atomic
def user_create(*, actor: str | None, user_id: str | None = None, user_email: str | None = None,
                user_role: str = UserRole.INTERNAL_USER, teams: Iterable[str] = (), auto_create_key: bool = True,
                key_alias: str | None = None, duration: str | None = None,
                **fields: Any) -> tuple[User, VirtualKey | None, str | None]:
    """Create an internal user, their team memberships (role ``user``) and, unless
    ``auto_create_key`` is false, a key for them. Returns the user, the key and its raw secret
    (both None without a key). Budgets and limits are the user's; the key only shares its models."""
    user_id = user_id or str(uuid.uuid4())
    team_ids = list(dict.fromkeys(teams))
    _check_new_user(user_id, user_email, team_ids)
    now = timezone.now()
    values = {name: fields[name] for name in USER_FIELDS if name in fields}
    try:
        with transaction.atomic():
            user = _new_user(username=user_id, email=user_email, role=user_role,
                             budget_reset_at=_budget_reset(values.get("budget_duration"), now), **values)
    except IntegrityError:
        raise BadRequestError(f"User with id {user_id} already exists.", param="user_id") from None
    TeamMembership.objects.bulk_create(TeamMembership(team_id=t, user=user, role=TeamRole.USER) for t in team_ids)
    if not auto_create_key:
        return user, None, None
    key, raw = key_generate(actor=actor, user_id=user.username, key_alias=key_alias, duration=duration,
                            models=values.get("models", []))
    return user, key, raw


def _set_team_blocked(team_id: str, blocked: bool) -> Team:
    team = _locked_team(team_id)
    team.blocked = blocked
    team.save(update_fields=["blocked", "updated_at"])
    return team_get(team_id=team.team_id)


@transaction.atomic
def team_block(*, team_id: str) -> Team:
    """Block every key of the team: the proxy refuses them from the commit on."""
    return _set_team_blocked(team_id, True)


@transaction.atomic
def team_unblock(*, team_id: str) -> Team:
    return _set_team_blocked(team_id, False)


def _set_team_metadata(team_id: str, change) -> Team:
    team = _locked_team(team_id)
    team.metadata = change(team.metadata)
    team.save(update_fields=["metadata", "updated_at"])
    return team


@transaction.atomic
def team_callback_add(*, team_id: str, target: CallbackTarget) -> Team:
    """Send the team's requests to ``target`` too (and switch its logging back on if it was off).
    Raises BadRequestError when the callback is already set for the same outcome."""
    try:
        return _set_team_metadata(team_id, lambda metadata: with_callback(metadata, target, team_id=team_id))
    except CallbackConfigError as exc:
        raise BadRequestError(str(exc), param=exc.param) from None


@transaction.atomic
def team_logging_disable(*, team_id: str) -> Team:
    """Switch off every callback for the team, global ones included, from the commit on."""
    return _set_team_metadata(team_id, without_logging)


def _locked_user(user_id: str) -> User:
    user = User.objects.select_for_update().filter(username=user_id).first()
    if user is None:
        raise NotFoundError(f"User not found, passed user_id={user_id}", param="user_id")
    return user


@transaction.atomic
def user_update(*, user_id: str, **fields: Any) -> User:
    """Change the named fields of an internal user (``user_email``, ``user_role`` and ``USER_FIELDS``);
    absent fields keep their values. A new budget_duration restarts the budget period. A new role
    reaches the proxy's cached keys of the user on commit (``keys/cache.py``)."""
    user = _locked_user(user_id)
    if "user_email" in fields:
        email = fields["user_email"] or ""
        if email and User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            raise BadRequestError(f"User with email {email} already exists.", param="user_email")
        user.email = email
    if "user_role" in fields:
        user.role = fields["user_role"]
    if "budget_duration" in fields and fields["budget_duration"] != user.budget_duration:
        user.budget_reset_at = _budget_reset(fields["budget_duration"], timezone.now())
    for name in USER_FIELDS:
        if name in fields:
            setattr(user, name, fields[name])
    user.save()
    return user


@transaction.atomic
def user_delete(*, user_ids: list[str]) -> list[str]:
    """Delete every named user with their keys and team memberships, or none of them."""
    users = list(User.objects.select_for_update().filter(username__in=user_ids))
    found = {user.username for user in users}
    missing = [user_id for user_id in user_ids if user_id not in found]
    if missing:
        raise NotFoundError(f"User not found, passed user_id={', '.join(missing)}", param="user_ids")
    for user in users:
        # Model.delete: the cascade sends post_delete for each key, which evicts it from the proxy's cache.
        user.delete()
    return user_ids


def _locked_customers(user_ids: list[str]) -> list[Customer]:
    """The named customers, locked, in the order named; NotFoundError names every unknown id."""
    customers = {c.user_id: c for c in Customer.objects.select_for_update().filter(user_id__in=user_ids)}
    missing = [user_id for user_id in user_ids if user_id not in customers]
    if missing:
        raise NotFoundError(f"Customer not found, passed user_id={', '.join(missing)}", param="user_ids")
    return [customers[user_id] for user_id in dict.fromkeys(user_ids)]


@transaction.atomic
def customer_create(*, user_id: str, **fields: Any) -> Customer:
    """Create a customer (an end user: the ``user`` field of proxy requests) with its own budget."""
    values = {name: fields[name] for name in CUSTOMER_FIELDS if name in fields}
    customer = Customer(user_id=user_id, budget_reset_at=_budget_reset(values.get("budget_duration"), timezone.now()),
                        **values)
    try:
        with transaction.atomic():
            customer.save(force_insert=True)
    except IntegrityError:
        raise BadRequestError(f"Customer with user_id={user_id} already exists.", param="user_id") from None
    return customer


@transaction.atomic
def customer_update(*, user_id: str, **fields: Any) -> Customer:
    """Change the named fields; absent fields keep their values. A new budget_duration restarts the
    budget period."""
    customer = Customer.objects.select_for_update().filter(user_id=user_id).first()
    if customer is None:
        raise NotFoundError(f"Customer not found, passed user_id={user_id}", param="user_id")
    if "budget_duration" in fields and fields["budget_duration"] != customer.budget_duration:
        customer.budget_reset_at = _budget_reset(fields["budget_duration"], timezone.now())
    for name in CUSTOMER_FIELDS:
        if name in fields:
            setattr(customer, name, fields[name])
    customer.save()
    return customer


@transaction.atomic
def customer_delete(*, user_ids: list[str]) -> list[str]:
    """Delete every named customer, or none of them. Their spend logs stay."""
    for customer in _locked_customers(user_ids):
        customer.delete()
    return user_ids


@transaction.atomic
def customer_block(*, user_ids: list[str]) -> list[Customer]:
    """Block the named customers; an unknown id becomes a new, blocked customer (LiteLLM's upsert)."""
    customers = []
    for user_id in dict.fromkeys(user_ids):
        # get_or_create: two requests blocking the same new id must not both insert it.
        customer, created = Customer.objects.select_for_update().get_or_create(user_id=user_id,
                                                                               defaults={"blocked": True})
        if not created and not customer.blocked:
            customer.blocked = True
            customer.save(update_fields=["blocked", "updated_at"])
        customers.append(customer)
    return customers


@transaction.atomic
def customer_unblock(*, user_ids: list[str]) -> list[Customer]:
    """Unblock the named customers, or none of them when one is unknown. Ids blocked by
    ``blocked_user_list`` in config.yaml stay blocked: that list is configuration."""
    customers = _locked_customers(user_ids)
    for customer in customers:
        if customer.blocked:
            customer.blocked = False
            customer.save(update_fields=["blocked", "updated_at"])
    return customers
