from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from proxy.api import api as proxy_api
from proxy.openapi import docs_home
from proxy.routes import passthrough
from proxy.views import model_hub_page
from spend.admin_reports import spend_report_view
from teams.sso import AdminLoginForm

admin.site.site_header = admin.site.site_title = settings.GATEWAY_ADMIN_TITLE
admin.site.index_title = "Keys, teams and spend"
# Refuses password sign-in when GATEWAY_ADMIN_PASSWORD_LOGIN is off (docs/sso.md).
admin.site.login_form = AdminLoginForm

urlpatterns = [
    # Before the admin's catch-all: the spend report export (spend/admin_reports.py, docs/spend-reports.md).
    path("admin/spend/report/", admin.site.admin_view(spend_report_view), name="admin-spend-report"),
    path("admin/", admin.site.urls),
    *([path("oidc/", include("mozilla_django_oidc.urls"))] if settings.GATEWAY_SSO_ENABLED else []),
    path("", include("keys.api.urls")),
    path("", include("teams.api.urls")),
    path("", include("spend.api.urls")),
    path("", include("gateway_project.audit.urls")),
    path("", docs_home(proxy_api), name="api-docs-home"),  # Swagger UI at / (docs/proxy.md)
    path("model_hub", model_hub_page, name="model-hub"),  # docs/model-hub.md
    path("", proxy_api.urls),
    # Last, so the gateway's own routes always win (config validation refuses overlaps anyway).
    *passthrough.urlpatterns(),
]
