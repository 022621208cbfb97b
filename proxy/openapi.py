"""The proxy's API docs: Swagger UI at ``/`` and ``/docs``, the spec at ``/openapi.json``.

Titled by ``DOCS_TITLE`` / ``DOCS_DESCRIPTION``; with ``DOCS_FILTERED`` the spec (and so the page) keeps
only the OpenAI routes. Swagger's assets are served by the gateway itself (``ninja`` in INSTALLED_APPS),
never from a CDN.
"""
from __future__ import annotations

from functools import partial

from django.conf import settings
from ninja import NinjaAPI
from ninja.openapi.views import openapi_view

from keys.policy import RouteSet

# What DOCS_FILTERED keeps: LiteLLM's openai_routes plus the model discovery routes a client reads.
OPENAI_ROUTES = RouteSet.of(["LiteLLMRoutes.openai_routes", "/model/info", "/v1/model/info",
                             "/model_group/info"])


class GatewayAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        if settings.DOCS_FILTERED:  # read per call: the spec is built once per request to /openapi.json
            schema["paths"] = {path: item for path, item in schema["paths"].items()
                               if OPENAI_ROUTES.matches(path)}
        return schema


def docs_home(api: NinjaAPI):
    """The Swagger page at ``/`` (LiteLLM's place for it), besides ninja's own ``docs_url``."""
    return partial(openapi_view, api=api)
