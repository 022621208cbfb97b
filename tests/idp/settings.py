"""Settings of the test identity provider (tests/idp), a Django project of its own.

``python -m tests.idp`` sets TEST_IDP_DB (the SQLite file, in a temporary directory given on its
command line) before Django reads this module. The RS256 signing key is generated here, at start,
so each IdP process signs with a new key, published at /o/.well-known/jwks.json.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent

SECRET_KEY = secrets.token_urlsafe(48)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.idp.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [HERE / "templates"],
    "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["TEST_IDP_DB"]}}

# The IdP and the gateway both run on 127.0.0.1, and browsers share cookies between ports of one
# host: distinct names keep the two sessions (and CSRF tokens) apart.
SESSION_COOKIE_NAME = "idp_sessionid"
CSRF_COOKIE_NAME = "idp_csrftoken"
LOGIN_URL = "/accounts/login/"

# A throwaway database of test users: a fast hasher keeps start-up and sign-in cheap.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": _key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()).decode(),
    "OAUTH2_VALIDATOR_CLASS": "tests.idp.validators.GroupsClaimValidator",
    "SCOPES": {"openid": "OpenID Connect", "profile": "Profile and groups", "email": "Email address"},
    "DEFAULT_SCOPES": ["openid"],
    # mozilla-django-oidc (the gateway's client) does not send PKCE unless OIDC_USE_PKCE is set; the
    # client is confidential and authenticates with its secret at the token endpoint.
    "PKCE_REQUIRED": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
                "oauth2_provider": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
