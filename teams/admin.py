"""Admin for internal users, teams (with their members) and customers.

Also holds what the keys admin shares: a model list typed as "a, b" or a JSON list, a JSON object
field that never saves NULL, the "spend / budget" column, the block/unblock actions (through the
services, so the proxy's caches and the audit trail see them) and the read-only view for viewer roles.
"""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from gateway_project.durations import InvalidDuration, parse_duration
from gateway_project.errors import GatewayError
from teams.callbacks import CallbackConfigError, validate_metadata
from teams.models import Customer, Team, TeamMembership, User, UserRole
from teams.services import (TEAM_FIELDS, customer_block, customer_unblock, team_block, team_create, team_unblock,
                            team_update)


class ModelListField(forms.CharField):
    """Model names typed as ``gpt-4o, claude-3`` or as a JSON list; empty means all models."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Comma-separated or a JSON list; empty means all models")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, (list, tuple)) else value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, (list, tuple)):
            return [str(name) for name in value]
        text = (super().to_python(value) or "").strip()
        if text.startswith("["):
            try:
                names = json.loads(text)
            except ValueError:
                raise forms.ValidationError("Not a valid JSON list.") from None
            if not all(isinstance(name, str) for name in names):
                raise forms.ValidationError("Every model name must be a string.")
            return [name.strip() for name in names if name.strip()]
        return [name.strip() for name in text.split(",") if name.strip()]


class JSONObjectField(forms.JSONField):
    """A JSON object; empty saves ``{}`` (the columns are NOT NULL)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> dict[str, Any]:
        data = super().clean(value)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise forms.ValidationError("Enter a JSON object, e.g. {\"owner\": \"ml-team\"}.")
        return data


def clean_duration(value: str | None) -> str | None:
    """A form's duration string (``30d``, ``1mo``), checked as the services will parse it."""
    if not value:
        return None
    try:
        parse_duration(value)
    except InvalidDuration as error:
        raise forms.ValidationError(str(error)) from None
    return value.strip()


def money(value: float | None) -> str:
    """USD as the admin shows it: cents, or six decimals for amounts under a cent (one request's cost)."""
    if value is None:
        return "—"
    return f"${value:,.6f}" if 0 < abs(value) < 0.01 else f"${value:,.2f}"


@admin.display(description="Spend / budget", ordering="spend")
def spend_vs_budget(obj: Any) -> str:
    """``$1.20 / $10.00 (12%)``; at or over budget in the admin's error colour."""
    if obj.max_budget is None:
        return f"{money(obj.spend)} / no budget"
    if obj.max_budget <= 0:
        return f"{money(obj.spend)} / {money(obj.max_budget)}"
    share = obj.spend / obj.max_budget
    text = f"{money(obj.spend)} / {money(obj.max_budget)} ({share:.0%})"
    return format_html('<span style="color: var(--error-fg)">{}</span>', text) if share >= 1 else text


VIEWER_ROLES = frozenset({UserRole.PROXY_ADMIN_VIEWER, UserRole.INTERNAL_USER_VIEWER})


def is_viewer(user: Any) -> bool:
    """A viewer role reads and never writes, whatever Django permissions it was given (superusers excepted)."""
    return not getattr(user, "is_superuser", False) and getattr(user, "role", None) in VIEWER_ROLES


class ViewerReadOnly:
    """Mixed into every gateway ModelAdmin: viewer roles get the view pages only, and no actions."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return not is_viewer(request.user) and super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not is_viewer(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not is_viewer(request.user) and super().has_delete_permission(request, obj)


class BlockActions:
    """The "Block selected" and "Unblock selected" actions; each admin says how one row is blocked.

    Offered only to those who may change the rows (never to viewers). Each row goes through its
    service: one save per row, never queryset.update(), so post_save drops the proxy's cached snapshot
    on every instance and the audit trail records the admin as the actor.
    """

    actions = ("block_selected", "unblock_selected")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Each admin says how one row is blocked: set_blocked(request, pk, *, blocked) through its service.
        super().__init_subclass__(**kwargs)
        if not callable(getattr(cls, "set_blocked", None)):
            raise TypeError(f"{cls.__name__} uses BlockActions but defines no set_blocked(request, pk, *, blocked)")

    @admin.action(description="Block selected %(verbose_name_plural)s", permissions=["change"])
    def block_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_all_blocked(request, queryset, blocked=True)

    @admin.action(description="Unblock selected %(verbose_name_plural)s", permissions=["change"])
    def unblock_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_all_blocked(request, queryset, blocked=False)

    def _set_all_blocked(self, request: HttpRequest, queryset: QuerySet, *, blocked: bool) -> None:
        done = 0
        for pk in list(queryset.values_list("pk", flat=True)):
            try:
                self.set_blocked(request, pk, blocked=blocked)
            except GatewayError as error:  # e.g. deleted by someone else since the list was shown
                messages.error(request, f"{pk}: {error.message}")
            else:
                done += 1
        opts = queryset.model._meta
        name = opts.verbose_name if done == 1 else opts.verbose_name_plural
        messages.success(request, f"{'Blocked' if blocked else 'Unblocked'} {done} {name}.")


BUDGET_FIELDS = ("spend", "max_budget", "budget_duration", "budget_reset_at")
LIMIT_FIELDS = ("rpm_limit", "tpm_limit", "max_parallel_requests")


class BudgetedForm(forms.ModelForm):
    """Shared cleaning for Team and Customer forms."""

    models = ModelListField()

    def clean_budget_duration(self) -> str | None:
        return clean_duration(self.cleaned_data.get("budget_duration"))


class TeamForm(BudgetedForm):
    metadata = JSONObjectField()

    class Meta:
        model = Team
        fields = "__all__"

    def clean_metadata(self) -> dict[str, Any]:
        metadata = self.cleaned_data.get("metadata") or {}
        try:
            validate_metadata(metadata)  # the same checks as /team/new and /team/update
        except CallbackConfigError as error:
            raise forms.ValidationError(str(error)) from None
        return metadata


class UserChangeForm(auth_forms.UserChangeForm):
    models = ModelListField()
    metadata = JSONObjectField()

    def clean_budget_duration(self) -> str | None:
        return clean_duration(self.cleaned_data.get("budget_duration"))


@admin.register(User)
class UserAdmin(ViewerReadOnly, BaseUserAdmin):
    form = UserChangeForm
    fieldsets = (*BaseUserAdmin.fieldsets,
                 ("Gateway", {"fields": ("role", "models", "metadata")}),
                 ("Budget", {"fields": BUDGET_FIELDS}),
                 ("Limits", {"fields": LIMIT_FIELDS}))
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, ("Gateway", {"fields": ("role",)}))
    readonly_fields = ("spend", "budget_reset_at", "last_login", "date_joined")
    list_display = ("username", "email", "role", spend_vs_budget, "is_staff", "is_active", "last_login")
    list_filter = ("role", "is_staff", "is_superuser", "is_active")
    search_fields = ("username", "email", "first_name", "last_name")
    search_help_text = "User id (username), email or name"


class TeamMembershipInline(ViewerReadOnly, admin.TabularInline):
    model = TeamMembership
    fields = ("user", "role", "max_budget_in_team")
    autocomplete_fields = ("user",)
    extra = 1


@admin.register(Team)
class TeamAdmin(ViewerReadOnly, BlockActions, admin.ModelAdmin):
    form = TeamForm
    inlines = (TeamMembershipInline,)
    fieldsets = ((None, {"fields": ("team_id", "team_alias", "blocked", "models", "metadata")}),
                 ("Budget", {"fields": BUDGET_FIELDS}),
                 ("Limits", {"fields": LIMIT_FIELDS}),
                 ("History", {"fields": ("created_at", "updated_at")}))
    list_display = ("team_alias", "team_id", "member_count", spend_vs_budget, "blocked", "created_at")
    list_filter = ("blocked",)
    # Explicit: the member-count GROUP BY makes the model's default ordering not count as ordered.
    ordering = ("created_at",)
    search_fields = ("team_alias", "team_id__exact")
    search_help_text = "Team alias, or an exact team id"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    def get_readonly_fields(self, request: HttpRequest, obj: Team | None = None) -> tuple[str, ...]:
        # A changed primary key would save a copy of the team, not rename it.
        readonly = ("spend", "budget_reset_at", "created_at", "updated_at")
        return readonly + ("team_id",) if obj else readonly

    @admin.display(description="Members", ordering="member_count")
    def member_count(self, obj: Team) -> int:
        return obj.member_count

    def save_model(self, request: HttpRequest, obj: Team, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            team_update(team_id=obj.team_id, **{name: data[name] for name in form.changed_data if name in TEAM_FIELDS})
            return
        # No creator_id: the admin who fills in the form is not made a member; the inline says who is.
        # From the form, not obj: the inline formset blanks a new parent's pk when it has a default.
        team = team_create(team_id=data.get("team_id") or None,
                           **{name: data[name] for name in TEAM_FIELDS if name in data})
        obj.pk = team.pk
        obj.refresh_from_db()  # the inline's memberships are saved next, against this row

    def set_blocked(self, request: HttpRequest, pk: str, *, blocked: bool) -> None:
        (team_block if blocked else team_unblock)(team_id=pk)


class CustomerForm(BudgetedForm):
    class Meta:
        model = Customer
        fields = "__all__"


@admin.register(Customer)
class CustomerAdmin(ViewerReadOnly, BlockActions, admin.ModelAdmin):
    form = CustomerForm
    fieldsets = ((None, {"fields": ("user_id", "alias", "blocked", "models", "allowed_model_region",
                                    "default_model")}),
                 ("Budget", {"fields": BUDGET_FIELDS}),
                 ("Limits", {"fields": LIMIT_FIELDS}),
                 ("History", {"fields": ("created_at", "updated_at")}))
    list_display = ("user_id", "alias", spend_vs_budget, "blocked", "created_at")
    list_filter = ("blocked",)
    search_fields = ("user_id__exact", "alias")
    search_help_text = "Exact end-user id, or alias"
    # One customer per end user of a client's app: the table can be large.
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Customer | None = None) -> tuple[str, ...]:
        readonly = ("spend", "budget_reset_at", "created_at", "updated_at")
        return readonly + ("user_id",) if obj else readonly

    def set_blocked(self, request: HttpRequest, pk: str, *, blocked: bool) -> None:
        (customer_block if blocked else customer_unblock)(user_ids=[pk])
