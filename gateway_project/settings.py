"""The gateway's only settings module.

Every production difference is an environment variable, read here once with the strict readers of
``gateway_project.env``. Product configuration (models, routes, guardrails) lives in config.yaml,
parsed by ``gateway_project.config``.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from gateway_project.env import env_bool, env_float, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------------------------
DEBUG = env_bool("GATEWAY_DEBUG", False)
DATA_DIR = Path(env_str("GATEWAY_DATA_DIR") or BASE_DIR / "var")
ALLOWED_HOSTS = env_list("GATEWAY_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("GATEWAY_CSRF_TRUSTED_ORIGINS", [])


def _secret_key() -> str:
    """GATEWAY_SECRET_KEY, or one generated once and kept in the data directory.

    There is no built-in default: a fresh install gets its own random key, never a shared one.
    """
    configured = env_secret("GATEWAY_SECRET_KEY")
    if configured:
        return configured
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # Swagger UI's assets served locally, not from a CDN (proxy/openapi.py)
    "rest_framework",
    "auditlog",
    "gateway_project.audit",
    "gateway_project.apps.GatewayProjectConfig",
    "teams",
    "keys",
    "spend",
    "guardrails",
    "proxy",
]

# Kept short on purpose: every middleware runs on the proxy's hot path too.
MIDDLEWARE = [
    "keys.middleware.RoutePolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Keeps the request at hand so an audited change names who made it (gateway_project/audit/actor.py).
    "gateway_project.audit.actor.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gateway_project.urls"
ASGI_APPLICATION = "gateway_project.asgi.application"
AUTH_USER_MODEL = "teams.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASE_URL = env_secret("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'gateway.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("GATEWAY_DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default: WAL lets the batch writer and readers work side by side.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATA_DIR.mkdir(parents=True, exist_ok=True)

# --- Shared state (optional) ------------------------------------------------------------------
REDIS_URL = env_secret("REDIS_URL")
# Prefix of every Redis key and channel the gateway uses (several deployments may share one Redis).
GATEWAY_REDIS_PREFIX = env_str("GATEWAY_REDIS_PREFIX") or "gateway:"

# --- Gateway ----------------------------------------------------------------------------------
# Path of the LiteLLM-format config.yaml; empty means the built-in demo config.
GATEWAY_CONFIG = env_str("GATEWAY_CONFIG") or None
GATEWAY_MASTER_KEY = env_secret("GATEWAY_MASTER_KEY")
# Prometheus multiprocess directory (docs/metrics.md); `manage.py gateway` sets a fresh one per start.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR") or None
# Seconds a cached key/team snapshot may be served before it is read again. A write invalidates the
# entry at once in the process that made it; this bounds how stale any other worker can be.
GATEWAY_CACHE_TTL = env_float("GATEWAY_CACHE_TTL", 5.0)
# Spend rows are written in batches: at most this many seconds apart, or this many rows. Small batches keep
# the writer thread's bursts short: its CPU is taken from the event loop (docs/performance.md, "The spend
# writer and p99": 500-row batches stalled the loop 6-12 ms at 1,000 requests/s).
GATEWAY_SPEND_FLUSH_INTERVAL = env_float("GATEWAY_SPEND_FLUSH_INTERVAL", 1.0)
GATEWAY_SPEND_BATCH_SIZE = env_int("GATEWAY_SPEND_BATCH_SIZE", 100)
# Past this many spend rows waiting to be written, requests wait for the writer (spend/writer.py, SpendWriter.room).
GATEWAY_SPEND_MAX_BACKLOG = env_int("GATEWAY_SPEND_MAX_BACKLOG", 10_000)
# With REDIS_URL, spend records pass through a Redis stream (docs/spend.md, "Nothing lost"): the buffer is
# appended to it at most this many seconds apart; a dead consumer's unacknowledged entries are taken over
# by another after this many seconds of silence.
GATEWAY_SPEND_STREAM_INTERVAL = env_float("GATEWAY_SPEND_STREAM_INTERVAL", 0.005)
GATEWAY_SPEND_STREAM_CLAIM_IDLE = env_float("GATEWAY_SPEND_STREAM_CLAIM_IDLE", 60.0)
# With REDIS_URL, each stream in flight is journalled in Redis (spend/inflight.py): its streamed tokens are
# checkpointed at most this many seconds apart, and a process silent for INFLIGHT_TIMEOUT seconds is taken
# for dead, its streams recorded by another as failed (partial) calls.
GATEWAY_INFLIGHT_CHECKPOINT_INTERVAL = env_float("GATEWAY_INFLIGHT_CHECKPOINT_INTERVAL", 1.0)
GATEWAY_INFLIGHT_TIMEOUT = env_float("GATEWAY_INFLIGHT_TIMEOUT", 10.0)
# Logging callbacks (team-based logging, docs/team-logging.md): events leave in batches per destination,
# at most this many seconds apart or this many events; at most QUEUE_SIZE wait per destination (older
# ones are dropped past that); a failed batch is tried MAX_ATTEMPTS times, backing off from RETRY_BACKOFF s.
GATEWAY_CALLBACK_FLUSH_INTERVAL = env_float("GATEWAY_CALLBACK_FLUSH_INTERVAL", 1.0)
GATEWAY_CALLBACK_BATCH_SIZE = env_int("GATEWAY_CALLBACK_BATCH_SIZE", 100)
GATEWAY_CALLBACK_QUEUE_SIZE = env_int("GATEWAY_CALLBACK_QUEUE_SIZE", 10_000)
GATEWAY_CALLBACK_MAX_ATTEMPTS = env_int("GATEWAY_CALLBACK_MAX_ATTEMPTS", 4)
GATEWAY_CALLBACK_RETRY_BACKOFF = env_float("GATEWAY_CALLBACK_RETRY_BACKOFF", 0.5)
GATEWAY_CALLBACK_TIMEOUT = env_float("GATEWAY_CALLBACK_TIMEOUT", 10.0)
# The global Langfuse project, for litellm_settings.success_callback / failure_callback: ["langfuse"].
LANGFUSE_PUBLIC_KEY = env_str("LANGFUSE_PUBLIC_KEY")
LANGFUSE_SECRET_KEY = env_secret("LANGFUSE_SECRET_KEY")
LANGFUSE_HOST = env_str("LANGFUSE_HOST") or "https://cloud.langfuse.com"
GATEWAY_UPSTREAM_TIMEOUT = env_float("GATEWAY_UPSTREAM_TIMEOUT", 600.0)
# Requests in flight per worker before further ones are shed with 503 + retry-after (0: no limit).
GATEWAY_MAX_CONCURRENT_REQUESTS = env_int("GATEWAY_MAX_CONCURRENT_REQUESTS", 1000)
# Requests whose headers add up to more are refused with 431 before any application code runs.
GATEWAY_MAX_HEADER_BYTES = env_int("GATEWAY_MAX_HEADER_BYTES", 64 * 1024)
# Serving (`manage.py gateway`, docs/deploy.md): worker processes (0: one per CPU core on PostgreSQL, 1 on
# SQLite); seconds in-flight requests and streams get to finish after SIGTERM; idle keep-alive seconds
# (keep it above the load balancer's idle timeout).
GATEWAY_WORKERS = env_int("GATEWAY_WORKERS", 0)
GATEWAY_GRACEFUL_TIMEOUT = env_float("GATEWAY_GRACEFUL_TIMEOUT", 30.0)
GATEWAY_KEEPALIVE_TIMEOUT = env_int("GATEWAY_KEEPALIVE_TIMEOUT", 75)
# Move what start-up built out of the garbage collector's sight once a worker is up (gc.freeze): its full
# collections then scan only what requests made since (docs/performance.md, "Fewer steps per call, and the collector").
GATEWAY_GC_FREEZE = env_bool("GATEWAY_GC_FREEZE", True)
# The collector's youngest generation is collected after this many net allocations of tracked objects instead of
# Python's 700, under which a busy worker walks its calls in flight many times a second to free next to nothing
# (gateway_project.heap.tune_collector; docs/performance.md, "The collector, collecting nothing").
GATEWAY_GC_THRESHOLD = env_int("GATEWAY_GC_THRESHOLD", 10_000, minimum=1)

# --- Background jobs (see docs/background-jobs.md) ----------------------------------------------
# With REDIS_URL a Celery worker and beat run them; without, the gateway runs the same tasks on an
# in-process schedule (gateway_project/background.py).
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = f"{GATEWAY_REDIS_PREFIX}tasks"  # deployments sharing a Redis keep apart
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# The periodic jobs, the one list beat and the in-process scheduler both read. ``every`` is a duration
# (30s, 5m, 1h, 1d); ``every_from`` names a config.yaml general_settings key that overrides it. Beat sends
# ``task``; the in-process scheduler calls ``run``, the same work without loading Celery.
GATEWAY_PERIODIC_JOBS = [
    {"name": "spend-logs-prune", "task": "spend.tasks.spend_logs_prune", "run": "spend.jobs.spend_logs_prune",
     "every": "1d", "every_from": "maximum_spend_logs_retention_interval"},
    {"name": "budgets-reset", "task": "spend.tasks.budgets_reset", "run": "spend.jobs.budgets_reset",
     "every": "1m"},
    {"name": "spend-aggregate-daily", "task": "spend.tasks.spend_aggregate_daily",
     "run": "spend.jobs.spend_aggregate_daily", "every": "15m"},
    {"name": "spend-partitions-ensure", "task": "spend.tasks.spend_partitions_ensure",
     "run": "spend.jobs.spend_partitions_ensure", "every": "12h"},
]
# PostgreSQL: spend-log partitions created ahead of the current month (docs/deploy.md).
GATEWAY_SPEND_PARTITIONS_AHEAD = env_int("GATEWAY_SPEND_PARTITIONS_AHEAD", 3)
# Rows deleted per (short) transaction by the retention jobs.
GATEWAY_RETENTION_BATCH_SIZE = env_int("GATEWAY_RETENTION_BATCH_SIZE", 5000)

# --- Alerts (general_settings.alerting in config.yaml; see docs/alerts.md) -----------------------
SLACK_WEBHOOK_URL = env_secret("SLACK_WEBHOOK_URL")
EMAIL_BACKEND = env_str("EMAIL_BACKEND") or "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10.0)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "gateway@localhost"

# --- Guardrails (switched on in config.yaml's litellm_settings; see docs/guardrails.md) ----------
LLM_GUARD_API_BASE = env_str("LLM_GUARD_API_BASE")
LLM_GUARD_API_KEY = env_secret("LLM_GUARD_API_KEY")            # sent as a bearer token, if set
AWS_REGION_NAME = env_str("AWS_REGION_NAME")                     # LlamaGuard's SageMaker region
GOOGLE_APPLICATION_CREDENTIALS = env_str("GOOGLE_APPLICATION_CREDENTIALS")

# --- JWT auth (general_settings.enable_jwt_auth; see docs/jwt-auth.md) ------------------------
# The identity provider's JWKS URL (comma-separated for several), and the issuer and audience tokens
# must carry (unchecked when unset). general_settings.litellm_jwtauth's own keys, then config.yaml's
# environment_variables (exported only after this module was read), win over these.
JWT_PUBLIC_KEY_URL = env_str("JWT_PUBLIC_KEY_URL") or None
JWT_ISSUER = env_str("JWT_ISSUER") or None
JWT_AUDIENCE = env_str("JWT_AUDIENCE") or None

# --- Admin branding ---------------------------------------------------------------------------
GATEWAY_ADMIN_TITLE = env_str("GATEWAY_ADMIN_TITLE") or "Gateway administration"
# Logo beside the title: an https:// URL, a path on this site, or a static file name (docs/config.md).
GATEWAY_ADMIN_LOGO_URL = env_str("GATEWAY_ADMIN_LOGO_URL") or ""

# --- API docs ---------------------------------------------------------------------------------
DOCS_TITLE = env_str("DOCS_TITLE") or "Gateway API"
DOCS_DESCRIPTION = env_str("DOCS_DESCRIPTION") or "OpenAI-compatible LLM gateway"
DOCS_FILTERED = env_bool("DOCS_FILTERED", False)

# --- Django REST framework (management API) ---------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "keys.authentication.GatewayKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["teams.permissions.IsProxyAdmin"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["gateway_project.parsers.AnyContentTypeJSONParser"],
    "EXCEPTION_HANDLER": "gateway_project.drf.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

# --- Static files, i18n -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Password hashing and login ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Admin single sign-on (OIDC, docs/sso.md) -------------------------------------------------
# Off unless a client id and the IdP's endpoints are set; the password form stays on unless turned off.
OIDC_RP_CLIENT_ID = env_str("GATEWAY_OIDC_CLIENT_ID") or ""
OIDC_RP_CLIENT_SECRET = env_secret("GATEWAY_OIDC_CLIENT_SECRET") or ""
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("GATEWAY_OIDC_AUTHORIZATION_ENDPOINT") or ""
OIDC_OP_TOKEN_ENDPOINT = env_str("GATEWAY_OIDC_TOKEN_ENDPOINT") or ""
OIDC_OP_USER_ENDPOINT = env_str("GATEWAY_OIDC_USERINFO_ENDPOINT") or ""
OIDC_OP_JWKS_ENDPOINT = env_str("GATEWAY_OIDC_JWKS_URI") or ""
OIDC_RP_SIGN_ALGO = env_str("GATEWAY_OIDC_SIGN_ALGO") or "RS256"
OIDC_RP_SCOPES = env_str("GATEWAY_OIDC_SCOPES") or "openid email profile"
OIDC_TIMEOUT = env_float("GATEWAY_OIDC_TIMEOUT", 10.0)
OIDC_CALLBACK_CLASS = "teams.sso.GatewayOIDCCallbackView"  # refusals end on the login page
GATEWAY_OIDC_USERNAME_CLAIM = env_str("GATEWAY_OIDC_USERNAME_CLAIM") or "preferred_username"
GATEWAY_OIDC_GROUPS_CLAIM = env_str("GATEWAY_OIDC_GROUPS_CLAIM") or "groups"
GATEWAY_OIDC_ADMIN_GROUPS = env_list("GATEWAY_OIDC_ADMIN_GROUPS", [])
GATEWAY_OIDC_VIEWER_GROUPS = env_list("GATEWAY_OIDC_VIEWER_GROUPS", [])
GATEWAY_ADMIN_PASSWORD_LOGIN = env_bool("GATEWAY_ADMIN_PASSWORD_LOGIN", True)
GATEWAY_SSO_ENABLED = bool(OIDC_RP_CLIENT_ID)
if GATEWAY_SSO_ENABLED:
    _missing = [name for name, value in (
        ("GATEWAY_OIDC_CLIENT_SECRET", OIDC_RP_CLIENT_SECRET),
        ("GATEWAY_OIDC_AUTHORIZATION_ENDPOINT", OIDC_OP_AUTHORIZATION_ENDPOINT),
        ("GATEWAY_OIDC_TOKEN_ENDPOINT", OIDC_OP_TOKEN_ENDPOINT),
        ("GATEWAY_OIDC_USERINFO_ENDPOINT", OIDC_OP_USER_ENDPOINT),
        ("GATEWAY_OIDC_JWKS_URI", OIDC_OP_JWKS_ENDPOINT),
    ) if not value]
    if not (GATEWAY_OIDC_ADMIN_GROUPS or GATEWAY_OIDC_VIEWER_GROUPS):
        _missing.append("GATEWAY_OIDC_ADMIN_GROUPS or GATEWAY_OIDC_VIEWER_GROUPS")
    if _missing:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"GATEWAY_OIDC_CLIENT_ID is set, so SSO also needs: {', '.join(_missing)}")
elif not GATEWAY_ADMIN_PASSWORD_LOGIN:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("GATEWAY_ADMIN_PASSWORD_LOGIN=false needs SSO (GATEWAY_OIDC_CLIENT_ID ...): "
                               "nobody could sign in to the admin")
# The SSO backend subclasses ModelBackend, so permissions keep working with password sign-in off.
AUTHENTICATION_BACKENDS = [
    *(["teams.sso.GatewayOIDCBackend"] if GATEWAY_SSO_ENABLED else []),
    *(["django.contrib.auth.backends.ModelBackend"] if GATEWAY_ADMIN_PASSWORD_LOGIN else []),
]
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto: builds https:// URLs (the OIDC redirect URI).
# Only for a proxy that overwrites the header; a client could otherwise claim https.
if env_bool("GATEWAY_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
LOGIN_REDIRECT_URL = "/admin/"  # where SSO lands without a ?next=
LOGIN_REDIRECT_URL_FAILURE = "/admin/login/"

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = (env_str("GATEWAY_LOG_LEVEL") or "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "gateway": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
