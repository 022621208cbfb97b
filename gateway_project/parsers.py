"""DRF parsers (kept apart from drf.py: DRF imports parsers while loading its settings)."""
from __future__ import annotations

from rest_framework.parsers import JSONParser


class AnyContentTypeJSONParser(JSONParser):
    """Management calls are JSON whatever Content-Type a script sends (curl -d defaults to a form)."""

    media_type = "*/*"
