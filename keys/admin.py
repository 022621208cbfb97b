"""Virtual keys in the admin: issued by ``key_generate``, edited by ``key_update``, given a new secret by
``key_regenerate``. A raw secret is shown once, on the page that answers the request that made it."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.formats import date_format
from django.utils.html import format_html

from gateway_project.errors import GatewayError
from keys.hashing import KEY_PREFIX, digest
from keys.models import VirtualKey
from keys.services import KEY_FIELDS, key_block, key_generate, key_regenerate, key_unblock, key_update
from teams.admin import (BlockActions, JSONObjectField, ModelListField, ViewerReadOnly, clean_duration,
                         spend_vs_budget)

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
class VirtualKeyAdmin(ViewerReadOnly, BlockActions, admin.ModelAdmin):
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
    list_display = ("key_alias", "key_name", "team", "user", spend_vs_budget, "expiry", "blocked", "created_at")
    list_display_links = ("key_alias", "key_name")
    list_filter = ("blocked", "team", ExpiryFilter)
    list_select_related = ("team", "user")
    search_fields = ("key_alias", "key_name", "token__exact", "team__team_alias", "user__username",
                     "user__email")
    search_help_text = "Alias, key name (sk-...AbCd), team alias, user id or email, token digest, or a raw sk- key"
    autocomplete_fields = ("team", "user")
    show_full_result_count = False
    actions = (*BlockActions.actions, "regenerate_selected")

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

    @admin.display(description="Expires", ordering="expires")
    def expiry(self, obj: VirtualKey) -> str:
        if obj.expires is None:
            return "never"
        when = date_format(timezone.localtime(obj.expires), "DATETIME_FORMAT")
        if obj.is_expired(timezone.now()):
            return format_html('<span style="color: var(--error-fg)">expired {}</span>', when)
        return when

    def save_model(self, request: HttpRequest, obj: VirtualKey, form: forms.ModelForm, change: bool) -> None:
        actor = request.user.get_username()
        if not change:
            record, raw = key_generate(actor=actor, **form.service_arguments())
            obj.pk = record.pk
            obj.refresh_from_db()
            obj._state.adding = False
            # Held on this in-memory instance only until response_add puts it on the page.
            obj._raw_secret = raw
            return
        fields = {name: form.cleaned_data[name] for name in form.changed_data
                  if name in KEY_FIELDS or name == "expires"}
        key_update(actor=actor, key=obj.token, **fields)

    def response_add(self, request: HttpRequest, obj: VirtualKey, post_url_continue: str | None = None) -> HttpResponse:
        raw = obj.__dict__.pop("_raw_secret", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        # The secret is written into this response only: not into a message (a cookie or a session row),
        # not into a redirect. Reloading the list or the key's page never shows it again.
        return self.secret_shown_once(request, [(obj, raw)], title="Key created")

    def set_blocked(self, request: HttpRequest, pk: str, *, blocked: bool) -> None:
        (key_block if blocked else key_unblock)(actor=request.user.get_username(), key=pk)

    @admin.action(description="Regenerate the secret of selected %(verbose_name_plural)s", permissions=["change"])
    def regenerate_selected(self, request: HttpRequest, queryset: QuerySet[VirtualKey]) -> HttpResponse | None:
        keys = list(queryset.select_related("team", "user"))
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(request, "admin/keys/virtualkey/regenerate_confirmation.html", {
                **self.admin_site.each_context(request), "title": "Regenerate keys?", "opts": self.opts,
                "keys": keys, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "media": self.media,
            })
        actor, issued = request.user.get_username(), []
        for key in keys:
            try:
                issued.append(key_regenerate(actor=actor, key=key.token))
            except GatewayError as error:  # regenerated or deleted by someone else meanwhile
                messages.error(request, f"{key}: {error.message}")
        if not issued:
            return None  # back to the list, which shows the errors
        return self.secret_shown_once(request, issued, title="New secrets")

    def secret_shown_once(self, request: HttpRequest, issued: list[tuple[VirtualKey, str]], *,
                          title: str) -> HttpResponse:
        """The one page that shows raw secrets: never cached, never stored, never shown again."""
        changelist = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        response = TemplateResponse(request, "admin/keys/virtualkey/secret_shown_once.html", {
            **self.admin_site.each_context(request), "title": title, "opts": self.opts,
            "issued": [{"key": key, "secret": raw,
                        "change_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                                              args=[key.pk])} for key, raw in issued],
            "changelist_url": changelist, "add_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_add"),
        })
        add_never_cache_headers(response)
        return response
