"""Admin branding from settings: the title (GATEWAY_ADMIN_TITLE) and a logo (GATEWAY_ADMIN_LOGO_URL)."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings


def branding(client) -> str:
    html = client.get("/admin/").content.decode()
    return html[html.index('<div id="site-name">'):].split("</div>", 1)[0]


def test_no_logo_by_default(admin_site):
    assert settings.GATEWAY_ADMIN_LOGO_URL == ""
    assert "<img" not in branding(admin_site)


@pytest.mark.parametrize(("configured", "src"), [
    ("https://cdn.example.com/acme.svg", "https://cdn.example.com/acme.svg"),
    ("/media/acme.png", "/media/acme.png"),
    ("admin/img/icon-yes.svg", "/static/admin/img/icon-yes.svg"),   # a static file, by name
])
def test_logo_beside_the_title(admin_site, configured, src):
    with override_settings(GATEWAY_ADMIN_LOGO_URL=configured):
        html = branding(admin_site)

    assert f'<img class="gateway-logo" src="{src}" alt="">{settings.GATEWAY_ADMIN_TITLE}</a>' in html


def test_logo_on_the_sign_in_page(client):
    with override_settings(GATEWAY_ADMIN_LOGO_URL="/media/acme.png"):
        html = client.get("/admin/login/").content.decode()

    assert '<img class="gateway-logo" src="/media/acme.png" alt="">' in html
