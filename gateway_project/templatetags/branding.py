"""Admin branding from settings: ``{% admin_logo_url %}`` (GATEWAY_ADMIN_LOGO_URL)."""
from __future__ import annotations

from django import template
from django.conf import settings
from django.templatetags.static import static

register = template.Library()


@register.simple_tag
def admin_logo_url() -> str:
    """An absolute URL or a path on this site is used as given; any other value names a static file
    (``admin/img/…``, or a file collected from an app's static/ directory)."""
    logo = settings.GATEWAY_ADMIN_LOGO_URL
    if not logo or logo.startswith(("http://", "https://", "/")):
        return logo
    return static(logo)
