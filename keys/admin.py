"""Virtual keys in the admin: issued by ``key_generate`` (the secret shown once), edited by ``key_update``."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html

from keys.hashing import KEY_PREFIX, digest
from keys.models import VirtualKey
from keys.services import KEY_FIELDS, key_generate, key_update
from teams.admin import BlockActions, JSONObjectField, ModelListField, clean_duration, spend_vs_budget

LIMIT_FIELDS = ("rpm_limit", "tpm_limit", "max_parallel_requests")


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("past", "Expired"), ("future", "Expires later"), ("none", "Never expires")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[VirtualKey]) -> QuerySet[VirtualKey]:
        now = timezone.now()
        match self.value():
            case "past":
                return queryset.filter(expires__lte=now)
            case "future":
                return queryset.filter(expires__gt=now)
            case "none":
                return queryset.filter(expires__isnull=True)
        return queryset


class KeyForm(forms.ModelForm):
    """Fields and cleaning shared by the add and change forms (no Meta: not used on its own)."""

    models = ModelListField()
    metadata = JSONObjectField(help_text="A JSON object, e.g. {\"owner\": \"ml-team\"}")

    def clean_budget_duration(self) -> str | None:
        return clean_duration(self.cleaned_data.get("budget_duration"))


class VirtualKeyAddForm(KeyForm):
    """The fields ``key_generate`` takes; the token and key_name are the service's to make."""

    duration = forms.CharField(required=False, help_text="Lifetime, e.g. 30d or 1mo; empty means never expires")

    class Meta:
        model = VirtualKey
        fields = ("key_alias", "team", "user", "max_budget", "budget_duration", *LIMIT_FIELDS)

    def clean_duration(self) -> str | None:
        return clean_duration(self.cleaned_data.get("duration"))

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        fields = {name: data[name] for name in KEY_FIELDS if name in data}
        team, user = data.get("team"), data.get("user")
        return {**fields, "duration": data["duration"], "team_id": team.pk if team else None,
                "user_id": user.username if user else None}


class VirtualKeyChangeForm(KeyForm):
    class Meta:
        model = VirtualKey
        fields = "__all__"


@admin.register(VirtualKey)
class VirtualKeyAdmin(BlockActions, admin.ModelAdmin):
    form = VirtualKeyChangeForm
    add_form = VirtualKeyAddForm
    add_fieldsets = ((None, {"fields": ("key_alias", "team", "user", "models", "duration", "metadata")}),
                     ("Budget", {"fields": ("max_budget", "budget_duration")}),
                     ("Limits", {"fields": LIMIT_FIELDS}))
    fieldsets = ((None, {"fields": ("token", "key_name", "key_alias", "team", "user")}),
                 ("Access", {"fields": ("models", "blocked", "expires", "metadata")}),
                 ("Budget", {"fields": ("spend", "max_budget", "budget_duration", "budget_reset_at")}),
                 ("Limits", {"fields": LIMIT_FIELDS}),
                 ("History", {"fields": ("created_at", "created_by", "updated_at", "updated_by")}))
    readonly_fields = ("token", "key_name", "team", "user", "spend", "budget_reset_at",
                       "created_at", "created_by", "updated_at", "updated_by")
    list_display = ("key_alias", "key_name", "team", "user", spend_vs_budget, "expires", "blocked", "created_at")
    list_display_links = ("key_alias", "key_name")
    list_filter = ("blocked", "team", ExpiryFilter)
    list_select_related = ("team", "user")
    search_fields = ("key_alias", "key_name", "token__exact", "user__username")
    search_help_text = "Alias, key name (sk-...AbCd), token digest, a raw sk- key or a username"
    autocomplete_fields = ("team", "user")
    show_full_result_count = False

    def get_fieldsets(self, request: HttpRequest, obj: VirtualKey | None = None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: VirtualKey | None = None) -> tuple[str, ...]:
        return () if obj is None else self.readonly_fields

    def get_form(self, request: HttpRequest, obj: VirtualKey | None = None, **kwargs: Any):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[VirtualKey], search_term: str):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term.startswith(KEY_PREFIX) and "..." not in term:
            results |= queryset.filter(token=digest(term))  # a raw key pasted by an admin
        return results, may_have_duplicates

    def save_model(self, request: HttpRequest, obj: VirtualKey, form: forms.ModelForm, change: bool) -> None:
        actor = request.user.get_username()
        if not change:
            record, raw = key_generate(actor=actor, **form.service_arguments())
            obj.pk = record.pk
            obj.refresh_from_db()
            obj._state.adding = False
            # Held on this in-memory instance only until response_add turns it into a message.
            obj._raw_secret = raw
            return
        fields = {name: form.cleaned_data[name] for name in form.changed_data
                  if name in KEY_FIELDS or name == "expires"}
        key_update(actor=actor, key=obj.token, **fields)

    def response_add(self, request: HttpRequest, obj: VirtualKey, post_url_continue: str | None = None) -> HttpResponse:
        raw = obj.__dict__.pop("_raw_secret", None)
        if raw:
            # The message storage drops it once displayed: the next page load no longer shows it.
            messages.warning(request, format_html(
                "Copy this key now; it is stored only as a hash and will not be shown again: <code>{}</code>", raw))
        return super().response_add(request, obj, post_url_continue)

    def set_blocked(self, request: HttpRequest, pk: str, *, blocked: bool) -> None:
        key_update(actor=request.user.get_username(), key=pk, blocked=blocked)
