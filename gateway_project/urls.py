from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from proxy.api import api as proxy_api
from proxy.openapi import docs_home
from proxy.routes import passthrough
from proxy.views import model_hub_page
from spend.admin_reports import spend_report_view
from teams.admin_login import AdminLoginForm


def lazy_include(module: str) -> tuple[str, None, None]:
    """``include()`` without importing the module now: the resolver imports it when a path first reaches
    it (as it does ROOT_URLCONF). The management API's views load DRF, which a worker serving only proxy
    calls never needs (about 6 MB; docs/performance.md "Memory")."""
    return (module, None, None)


admin.site.site_header = admin.site.site_title = settings.GATEWAY_ADMIN_TITLE
admin.site.index_title = "Keys, teams and spend"
# Refuses password sign-in when GATEWAY_ADMIN_PASSWORD_LOGIN is off (docs/sso.md).
admin.site.login_form = AdminLoginForm

urlpatterns = [
    # Before the admin's catch-all: the spend report export (spend/admin_reports.py, docs/spend-reports.md).
    path("admin/spend/report/", admin.site.admin_view(spend_report_view), name="admin-spend-report"),
    path("admin/", admin.site.urls),
    *([path("oidc/", include("mozilla_django_oidc.urls"))] if settings.GATEWAY_SSO_ENABLED else []),
    path("", docs_home(proxy_api), name="api-docs-home"),  # Swagger UI at / (docs/proxy.md)
    path("model_hub", model_hub_page, name="model-hub"),  # docs/model-hub.md
    # The proxy's routes before the management API's: no path is in both, and resolving a proxy call then
    # never loads the DRF views (imported on the first management request; docs/performance.md "Memory").
    path("", proxy_api.urls),
    path("", lazy_include("keys.api.urls")),
    path("", lazy_include("teams.api.urls")),
    path("", lazy_include("spend.api.urls")),
    path("", lazy_include("gateway_project.audit.urls")),
    # Last, so the gateway's own routes always win (config validation refuses overlaps anyway).
    *passthrough.urlpatterns(),
]
