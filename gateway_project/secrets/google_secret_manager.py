"""Google Secret Manager over its REST API (as LiteLLM reads it): ``os.environ/NAME`` is the latest
version of the secret NAME in the project.

REST with google-auth rather than google-cloud-secret-manager: the same API without gRPC and
protobuf. Credentials are Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, the
metadata server on GCP, ``gcloud auth application-default login``).
"""
from __future__ import annotations

import base64
import binascii
import os
from functools import cached_property
from typing import Any
from urllib.parse import quote

from gateway_project.secrets.base import SecretManagerUnavailable, first_line, not_found, require, unavailable
from gateway_project.secrets.settings import KeyManagementSettings

NAME = "google_secret_manager"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class GoogleSecretManager:
    name = NAME

    def __init__(self, settings: KeyManagementSettings) -> None:
        self.settings = settings
        self.url = settings.google_secret_manager_url.rstrip("/")
        self.project = (settings.google_project_id or os.environ.get("GOOGLE_SECRET_MANAGER_PROJECT_ID")
                        or os.environ.get("GOOGLE_CLOUD_PROJECT"))

    @cached_property
    def _session(self) -> Any:
        auth = require("google.auth", "google-auth", NAME)
        require("requests", "requests", NAME)
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import AuthorizedSession, Request
        from requests import Session

        try:
            credentials, project = auth.default(scopes=SCOPES)
        except GoogleAuthError as exc:
            raise SecretManagerUnavailable(f"{NAME}: no Google credentials: {first_line(exc)}") from None
        self.project = self.project or project
        token_session = Session()
        session = AuthorizedSession(credentials, auth_request=Request(token_session),
                                    refresh_timeout=self.settings.timeout)
        if self.settings.ca_bundle:
            session.verify = token_session.verify = self.settings.ca_bundle
        return session

    def get(self, name: str) -> str:
        from google.auth.exceptions import GoogleAuthError
        from requests import RequestException

        session = self._session
        if not self.project:
            raise unavailable(name, NAME, "no project: set key_management_settings.google_project_id or "
                                          "GOOGLE_SECRET_MANAGER_PROJECT_ID")
        secret = f"projects/{quote(self.project, safe='')}/secrets/{quote(name, safe='')}"
        url = f"{self.url}/v1/{secret}/versions/latest:access"
        try:
            response = session.get(url, timeout=self.settings.timeout)
        except GoogleAuthError as exc:  # the access token could not be had
            raise unavailable(name, NAME, f"cannot get an access token: {first_line(exc)}") from None
        except RequestException as exc:
            raise unavailable(name, NAME, f"cannot reach {self.url} ({type(exc).__name__})") from None
        if response.status_code == 404:
            raise not_found(name, NAME, f"project {self.project}")
        if response.status_code != 200:
            raise unavailable(name, NAME, _describe(response))
        return _payload(response, name)


def _describe(response: Any) -> str:
    try:
        error = response.json()["error"]
        return f"HTTP {response.status_code} {error.get('status', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP {response.status_code}"


def _payload(response: Any, name: str) -> str:
    try:
        return base64.b64decode(response.json()["payload"]["data"], validate=True).decode()
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise unavailable(name, NAME, "the answer holds no UTF-8 text payload") from None
