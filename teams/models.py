"""Who uses the gateway: internal users, teams and their members, and customers (end users)."""
from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class Budgeted(models.Model):
    """Spend and an optional budget that may reset every ``budget_duration``."""

    max_budget = models.FloatField(null=True, blank=True, help_text="USD; empty means no budget")
    spend = models.FloatField(default=0.0)
    budget_duration = models.CharField(max_length=16, null=True, blank=True,
                                       help_text="Reset period, e.g. 30s, 30m, 30h, 30d, 1mo")
    budget_reset_at = models.DateTimeField(null=True, blank=True)
    # Bumped whenever spend is set by a save (an admin's edit, a budget reset), as opposed to the
    # spend writer's increments: admission counts each (period, epoch) afresh from the stored spend.
    budget_epoch = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            stored = type(self).objects.filter(pk=self.pk).values_list("spend", flat=True).first()
            if stored is not None and stored != self.spend:
                self.budget_epoch += 1
                fields = kwargs.get("update_fields")
                if fields is not None and "spend" in fields:
                    kwargs["update_fields"] = {*fields, "budget_epoch"}
        super().save(*args, **kwargs)


class RateLimited(models.Model):
    tpm_limit = models.PositiveBigIntegerField(null=True, blank=True)
    rpm_limit = models.PositiveBigIntegerField(null=True, blank=True)
    max_parallel_requests = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class UserRole(models.TextChoices):
    PROXY_ADMIN = "proxy_admin"
    PROXY_ADMIN_VIEWER = "proxy_admin_viewer"
    INTERNAL_USER = "internal_user"
    INTERNAL_USER_VIEWER = "internal_user_viewer"


class User(AbstractUser, Budgeted, RateLimited):
    """An internal user; ``username`` is the API's ``user_id``."""

    role = models.CharField(max_length=32, choices=UserRole.choices, default=UserRole.INTERNAL_USER)
    metadata = models.JSONField(default=dict, blank=True)
    # Last field of the class body: it shadows the django.db.models module below it.
    models = models.JSONField(default=list, blank=True)

    @property
    def user_id(self) -> str:
        return self.username

    @property
    def is_proxy_admin(self) -> bool:
        return self.is_superuser or self.role == UserRole.PROXY_ADMIN


def _team_id() -> str:
    return str(uuid.uuid4())


class Team(Budgeted, RateLimited):
    team_id = models.CharField(max_length=128, primary_key=True, default=_team_id)
    team_alias = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    metadata = models.JSONField(default=dict, blank=True)
    blocked = models.BooleanField(default=False)
    members = models.ManyToManyField(User, through="TeamMembership", related_name="teams", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Last field of the class body: it shadows the django.db.models module below it.
    models = models.JSONField(default=list, blank=True, help_text="Models the team may call; empty means all")

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.team_alias or self.team_id


class TeamRole(models.TextChoices):
    ADMIN = "admin"
    USER = "user"


class TeamMembership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="team_memberships")
    role = models.CharField(max_length=16, choices=TeamRole.choices, default=TeamRole.USER)
    max_budget_in_team = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="team_membership_unique")]
        ordering = ["created_at"]


class Customer(Budgeted, RateLimited):
    """An end user of a customer's app: the ``user`` field of a proxy request."""

    user_id = models.CharField(max_length=255, primary_key=True)
    alias = models.CharField(max_length=255, null=True, blank=True)
    blocked = models.BooleanField(default=False)
    allowed_model_region = models.CharField(max_length=16, null=True, blank=True)
    default_model = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Last field of the class body: it shadows the django.db.models module below it.
    models = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.alias or self.user_id
