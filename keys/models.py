"""Virtual keys: the raw ``sk-…`` is shown once; only its sha256 digest is stored."""
from __future__ import annotations

from datetime import datetime

from django.db import models

from teams.models import Budgeted, RateLimited, Team, User


class VirtualKey(Budgeted, RateLimited):
    token = models.CharField(max_length=64, primary_key=True, help_text="sha256 hex digest of the key")
    key_name = models.CharField(max_length=32, help_text="Abbreviated key, e.g. sk-...AbCd")
    key_alias = models.CharField(max_length=255, null=True, blank=True, unique=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="keys")
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="keys")
    metadata = models.JSONField(default=dict, blank=True)
    permissions = models.JSONField(default=dict, blank=True)
    enforced_params = models.JSONField(default=list, blank=True)
    allowed_ips = models.JSONField(default=list, blank=True)
    allowed_routes = models.JSONField(default=list, blank=True)
    guardrails = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    aliases = models.JSONField(default=dict, blank=True)
    config = models.JSONField(default=dict, blank=True)
    model_max_budget = models.JSONField(default=dict, blank=True)
    model_rpm_limit = models.JSONField(default=dict, blank=True)
    model_tpm_limit = models.JSONField(default=dict, blank=True)
    soft_budget = models.FloatField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty means the key never expires")
    blocked = models.BooleanField(default=False)
    created_by = models.CharField(max_length=255, null=True, blank=True)
    updated_by = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Last field of the class body: it shadows the django.db.models module below it.
    models = models.JSONField(default=list, blank=True, help_text="Models the key may call; empty means all")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "virtual key"

    def __str__(self) -> str:
        return self.key_alias or self.key_name

    def is_expired(self, now: datetime) -> bool:
        return self.expires is not None and self.expires <= now
