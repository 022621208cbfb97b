from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from proxy.api import api as proxy_api
from proxy.routes import passthrough

admin.site.site_header = admin.site.site_title = settings.GATEWAY_ADMIN_TITLE
admin.site.index_title = "Keys, teams and spend"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("keys.api.urls")),
    path("", include("teams.api.urls")),
    path("", include("spend.api.urls")),
    path("", include("gateway_project.audit.urls")),
    path("", proxy_api.urls),
    # Last, so the gateway's own routes always win (config validation refuses overlaps anyway).
    *passthrough.urlpatterns(),
]
