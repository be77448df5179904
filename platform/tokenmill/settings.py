"""Tokenmill settings: everything that varies between machines comes from the environment."""

import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from tokenmill.env import (
    env_artifact_store,
    env_bool,
    env_decimal,
    env_int,
    env_list,
    env_path,
    env_secret,
    env_str,
    env_url,
)
from tokenmill.redis_roles import redis_role_url, redis_roles_check_distinct

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = env_path("TOKENMILL_VAR_DIR", BASE_DIR / "var")

DEBUG = env_bool("DEBUG", "false")

# Both secrets must be set and strong when DEBUG is off; under DEBUG, development
# defaults stand in so `make run` and the tests need no configuration.
SECRET_KEY = env_secret(
    "SECRET_KEY",
    debug=DEBUG,
    development_default="development-only-secret-key-never-use-in-production",
)
# API keys are hashed with their own secret so SECRET_KEY (sessions, signing) can be
# rotated without invalidating every key a tenant holds.
API_KEY_HASH_SECRET = env_secret("API_KEY_HASH_SECRET", debug=DEBUG, development_default=SECRET_KEY)
# Stored keys cannot be re-hashed (only their HMAC is kept), so a deployment whose keys
# were hashed with SECRET_KEY may keep that arrangement, but only by saying so.
API_KEY_HASH_SECRET_IS_SECRET_KEY = env_bool("API_KEY_HASH_SECRET_IS_SECRET_KEY", "false")
if not DEBUG and API_KEY_HASH_SECRET == SECRET_KEY and not API_KEY_HASH_SECRET_IS_SECRET_KEY:
    raise ImproperlyConfigured(
        "API_KEY_HASH_SECRET must differ from SECRET_KEY when DEBUG is off, so SECRET_KEY "
        "can be rotated without invalidating every API key; to keep keys hashed with "
        "SECRET_KEY valid, set API_KEY_HASH_SECRET_IS_SECRET_KEY=true until they are replaced"
    )

# Strict hosts: production names its own (no default, no "*"), so a request for another
# Host header (DNS rebinding, a poisoned reset link) is refused before any view runs.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must be set when DEBUG is off: the host names this site answers to, "
        "comma-separated (e.g. api.example.com,.example.com)"
    )
if not DEBUG and "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must name the site's hosts when DEBUG is off, not '*'"
    )
# Origins (scheme and host) whose forms may post here, for a dashboard served under
# another name than the request's Host (e.g. https://app.example.com).
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS must list origins with their scheme, such as "
            f"https://app.example.com, got {_origin!r}"
        )
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
# The web server (manage.py runweb): on SIGTERM it stops accepting connections and lets
# the requests and streams in flight finish for up to WEB_DRAIN_SECONDS, then exits.
WEB_DRAIN_SECONDS = env_int("WEB_DRAIN_SECONDS", 30, minimum=0)
WEB_WORKERS = env_int("WEB_WORKERS", 1, minimum=1)
# Proxies whose X-Forwarded-For / X-Forwarded-Proto the server believes (uvicorn's
# --forwarded-allow-ips): addresses or networks, comma-separated.
FORWARDED_ALLOW_IPS = env_list("FORWARDED_ALLOW_IPS", "127.0.0.1")

DATABASE_URL = env_url("DATABASE_URL", schemes=("sqlite", "postgres", "postgresql"))
# The ASGI app (tokenmill/asgi.py) sets TOKENMILL_ASGI before it loads these settings.
ASGI_SERVER = env_bool("TOKENMILL_ASGI", "false")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL or f"sqlite:///{VAR_DIR / 'tokenmill.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, workers and beat share the file: wait for a lock instead of failing, and take
    # the write lock when a transaction starts so two writers queue instead of deadlocking.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")
if ASGI_SERVER:
    # Under ASGI a persistent connection belongs to whichever thread ran the request and
    # is not reused well: Django advises no persistent connections, and the driver's pool
    # instead. Each server process builds its own pool when it first connects. Workers
    # and commands keep one persistent connection per process.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
        "DATABASE_POOL", "true"
    ):
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DATABASE_POOL_MIN_SIZE", 2, minimum=0),
            "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=1),
            "timeout": env_int("DATABASE_POOL_TIMEOUT", 10, minimum=1),
        }

# Redis, one database per role (tokenmill/redis_roles.py): a cache clear (FLUSHDB) must
# never wipe the queues. REDIS_URL names the first of four databases; each role can be
# pointed elsewhere with its own variable.
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss"))


_REDIS_ROLES: dict[str, tuple[str, str]] = {}  # role -> (the variable it came from, its URL)


def _redis_role(variable: str, role: str) -> str:
    own = env_url(variable, schemes=("redis", "rediss"))
    url = own or (redis_role_url(REDIS_URL, role) if REDIS_URL else "")
    _REDIS_ROLES[role] = (variable if own else "REDIS_URL", url)
    return url


REDIS_CACHE_URL = _redis_role("REDIS_CACHE_URL", "cache")
# The admission code's rate limits and budget reservations; "" means the database fallback.
RATELIMIT_REDIS_URL = _redis_role("RATELIMIT_REDIS_URL", "ratelimit")
if REDIS_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_CACHE_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "tokenmill"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "tokenmill_cache",
        }
    }

# Uploads, normalized datasets, checkpoints, adapters, manifests and job markers: a
# local folder (the default) or an S3-compatible bucket (s3://bucket/prefix, with the
# endpoint, region and credentials in the standard AWS_* variables).
ARTIFACT_STORE_URL = env_artifact_store("ARTIFACT_STORE_URL", VAR_DIR / "artifacts")
# Local copies of artifacts that must be real files (validation, training's work folder).
ARTIFACT_CACHE_DIR = env_path("ARTIFACT_CACHE_DIR", VAR_DIR / "artifact-cache")
FILE_MAX_BYTES = env_int("FILE_MAX_BYTES", 512 * 1024 * 1024, minimum=1)
# The Batch API's limits (OpenAI's): an input file's bytes and requests.
BATCH_FILE_MAX_BYTES = env_int("BATCH_FILE_MAX_BYTES", 200 * 1024 * 1024, minimum=1)
BATCH_MAX_REQUESTS = env_int("BATCH_MAX_REQUESTS", 50_000, minimum=1)
# A failed validation lists this many bad lines (and says how many more there are).
BATCH_MAX_LISTED_ERRORS = env_int("BATCH_MAX_LISTED_ERRORS", 100, minimum=1)
# Lines of one batch in flight at once on a batch worker, and lines stored per chunk.
BATCH_CONCURRENCY = env_int("BATCH_CONCURRENCY", 4, minimum=1)
BATCH_CHUNK_LINES = env_int("BATCH_CHUNK_LINES", 64, minimum=1)
# Beside other traffic on its model servers a run keeps one line in flight
# (batches/pacing.py): how often it looks at their load again, and how long it waits
# for a server's /metrics.
BATCH_PACING_SECONDS = env_decimal("BATCH_PACING_SECONDS", "0.1", minimum=Decimal("0.01"))
BATCH_PACING_TIMEOUT = env_decimal("BATCH_PACING_TIMEOUT", "2", minimum=Decimal("0.1"))
# vLLM's request priority for batch lines (lower runs first; live requests are 0).
BATCH_PRIORITY = env_int("BATCH_PRIORITY", 10, minimum=1)
# How often a line answered 503/504 (overloaded, timed out) is sent again.
BATCH_LINE_RETRIES = env_int("BATCH_LINE_RETRIES", 3, minimum=0)
# The first retry's wait in seconds (doubling after): tests make it small.
BATCH_RETRY_SECONDS = env_decimal("BATCH_RETRY_SECONDS", "1", minimum=Decimal("0"))
# A run that started no line for this long is taken over by another (its worker died).
# Above GATEWAY_TOTAL_TIMEOUT, so lines still running never look stalled.
BATCH_STALL_SECONDS = env_int("BATCH_STALL_SECONDS", 900, minimum=10)
# How often the sweeper looks for batches to expire or to take over.
BATCH_SWEEP_SECONDS = env_int("BATCH_SWEEP_SECONDS", 60, minimum=1)
STORAGE_QUOTA_BYTES = env_int("STORAGE_QUOTA_BYTES", 10 * 1024**3, minimum=0)
MAX_CONCURRENT_JOBS = env_int("MAX_CONCURRENT_JOBS", 2, minimum=1)
# Uploads go to a temporary file on disk, never into memory, on their way to the store.
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.TemporaryFileUploadHandler"]
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The largest JSON body an API endpoint reads (413 request_too_large beyond it).
JSON_BODY_MAX_BYTES = env_int("JSON_BODY_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
# A task delivered more often than this, each earlier delivery having lost its worker
# (killed, say, for its memory), is given up with a recorded failure (workers/deliveries.py).
TASK_MAX_DELIVERIES = env_int("TASK_MAX_DELIVERIES", 3, minimum=1)
# The longest line of a dataset that validation reads (a line error beyond it).
DATASET_MAX_LINE_BYTES = env_int("DATASET_MAX_LINE_BYTES", 1024 * 1024, minimum=1024)
MODEL_ROOT = env_path("MODEL_ROOT", VAR_DIR / "models")
# The catalog model whose tokenizer counts the tokens of uploaded datasets.
DEFAULT_TOKENIZER_MODEL = env_str("DEFAULT_TOKENIZER_MODEL", "tiny-chat")

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = env_url("STRIPE_API_BASE", schemes=("http", "https"))
# One Billing Meter per kind of token (their event names) and the metered prices a new
# subscription gets (comma-separated Stripe price ids, one per meter).
STRIPE_METER_INPUT = env_str("STRIPE_METER_INPUT", "tokenmill_input_tokens")
STRIPE_METER_OUTPUT = env_str("STRIPE_METER_OUTPUT", "tokenmill_output_tokens")
STRIPE_METER_TRAINING = env_str("STRIPE_METER_TRAINING", "tokenmill_training_tokens")
STRIPE_METERED_PRICES = env_list("STRIPE_METERED_PRICES")
# Where Stripe Checkout and the customer portal send people back to.
BILLING_RETURN_URL = env_str("BILLING_RETURN_URL", "http://127.0.0.1:8000/billing/")
# Free organizations get this credit once; Pay as you go organizations may spend this
# much a month (after credits) unless an operator sets their own limit.
BILLING_TRIAL_CREDIT = env_decimal("BILLING_TRIAL_CREDIT", "5", minimum=Decimal("0"))
BILLING_PAYG_MONTHLY_LIMIT = env_decimal("BILLING_PAYG_MONTHLY_LIMIT", "1000", minimum=Decimal("0"))
# After a failed payment, inference keeps working this long before it is paused.
BILLING_GRACE_DAYS = env_int("BILLING_GRACE_DAYS", 7, minimum=0)
# The month's spend is reserved at admission with the rate limits (tokenmill.billing.admission).
BILLING_ENFORCE_AT_ADMISSION = env_bool("BILLING_ENFORCE_AT_ADMISSION", "true")
# Batch API lines (usage kind `batch`) pay this much less than live requests, as OpenAI's do.
BILLING_BATCH_DISCOUNT_PERCENT = env_int(
    "BILLING_BATCH_DISCOUNT_PERCENT", 50, minimum=0, maximum=100
)
BILLING_SYNC_SECONDS = env_int("BILLING_SYNC_SECONDS", 60, minimum=1)
BILLING_SYNC_BATCH = env_int("BILLING_SYNC_BATCH", 500, minimum=1)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tenants",
    "workers",
    "tokenmill.catalog",
    "tokenmill.files",
    "tokenmill.finetuning",
    "tokenmill.gateway",
    "tokenmill.metering",
    "tokenmill.billing",
    "tokenmill.batches",
    "tokenmill.dashboard",
]

MIDDLEWARE = [
    "tokenmill.observability.middleware.RequestObservationMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tokenmill.api.middleware.ApiErrorShapeMiddleware",
]

ROOT_URLCONF = "tokenmill.urls"
WSGI_APPLICATION = "tokenmill.wsgi.application"
ASGI_APPLICATION = "tokenmill.asgi.application"

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
                "tokenmill.dashboard.context.current_organization",
            ],
        },
    },
]

AUTH_USER_MODEL = "tenants.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "dashboard:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Tokenmill <no-reply@tokenmill.localhost>")
# Where users are told to write when their organization is suspended (the operator).
SUPPORT_EMAIL = env_str("SUPPORT_EMAIL")
# Links in e-mails (invitations) point here.
PUBLIC_URL = env_str("PUBLIC_URL", f"http://127.0.0.1:{PORT}").rstrip("/")

# HTTPS. With DEBUG off: cookies only over HTTPS, HSTS for a year with subdomains, and
# plain HTTP redirected to HTTPS; each can be turned down by its variable.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", str(not DEBUG))
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", str(not DEBUG))
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", str(not DEBUG))
# Preloading is a promise to browsers that is slow to take back: only on request.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", "false")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", str(not DEBUG))
# Probes and scrapers call these over plain HTTP from inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Behind a TLS-terminating proxy, Django sees plain HTTP; it may believe the proxy's
# header (X-Forwarded-Proto: https) only when the proxy always sets it, overwriting any
# a client sent: say so by naming the header. Unset, no header is trusted.
PROXY_SSL_HEADER = env_str("PROXY_SSL_HEADER")
if PROXY_SSL_HEADER:
    if not PROXY_SSL_HEADER.replace("-", "").isalnum():
        raise ImproperlyConfigured(
            f"PROXY_SSL_HEADER must be a header name such as X-Forwarded-Proto, "
            f"got {PROXY_SSL_HEADER!r}"
        )
    SECURE_PROXY_SSL_HEADER = (f"HTTP_{PROXY_SSL_HEADER.upper().replace('-', '_')}", "https")
if not DEBUG and not SECURE_HSTS_PRELOAD:
    # check --deploy asks for preload whenever HSTS is on; leaving it off is the choice above.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

INVITATION_TTL_DAYS = env_int("INVITATION_TTL_DAYS", 7, minimum=1)
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 300, minimum=0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tokenmill.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "tokenmill.api.parsers.StrictJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "tokenmill.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tokenmill API",
    "DESCRIPTION": (
        "The OpenAI-compatible API under /v1 and the platform API under /api/v1. "
        "Authenticate with `Authorization: Bearer <API key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's assets come from our own static files, never a CDN: the API
    # reference works on a machine without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Fine-tuning. GPU_WORKER_SLOTS is how many training tasks the gpu queue's workers
# run at once (one per GPU); the dispatcher never sends more, so it can share them
# fairly between tenants.
GPU_WORKER_SLOTS = env_int("GPU_WORKER_SLOTS", 1, minimum=1)
JOB_HEARTBEAT_SECONDS = env_int("JOB_HEARTBEAT_SECONDS", 5, minimum=1)
JOB_HEARTBEAT_TIMEOUT = env_int("JOB_HEARTBEAT_TIMEOUT", 60, minimum=2)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
JOB_DISPATCH_TIMEOUT = env_int("JOB_DISPATCH_TIMEOUT", 600, minimum=10)
JOB_REAPER_SECONDS = env_int("JOB_REAPER_SECONDS", 10, minimum=1)
# How long a GPU worker retries sending a job's outcome before leaving it to the reaper,
# which records the copy the worker wrote to the artifact store.
JOB_OUTCOME_RETRY_SECONDS = env_int("JOB_OUTCOME_RETRY_SECONDS", 600, minimum=1)
# Jobs an organization may have waiting (validating files or queued, not yet running).
MAX_QUEUED_JOBS = env_int("MAX_QUEUED_JOBS", 100, minimum=1)
# A job is prepared when its files' validation ends; the reaper prepares one whose
# trigger was lost after JOB_PREPARE_GRACE seconds, and fails one whose files are
# still unvalidated after JOB_FILE_VALIDATION_TIMEOUT seconds.
JOB_PREPARE_GRACE = env_int("JOB_PREPARE_GRACE", 60, minimum=1)
JOB_FILE_VALIDATION_TIMEOUT = env_int("JOB_FILE_VALIDATION_TIMEOUT", 1800, minimum=60)
# A fine-tune file still `uploaded` this many seconds after its upload lost its
# validation task: the reaper sends it again (once per period).
FILE_VALIDATION_GRACE = env_int("FILE_VALIDATION_GRACE", 120, minimum=1)
# Evaluation reports (tokenmill/finetuning/evaluation.py): how long a report waits for its
# model to be served by a replica, how long a run may take before the reaper sends it
# again, the timeout of one request to a replica, and the most examples evaluated.
EVALUATION_WAIT_SECONDS = env_int("EVALUATION_WAIT_SECONDS", 1800, minimum=10)
EVALUATION_RUN_TIMEOUT = env_int("EVALUATION_RUN_TIMEOUT", 1800, minimum=60)
EVALUATION_REQUEST_TIMEOUT = env_int("EVALUATION_REQUEST_TIMEOUT", 120, minimum=1)
EVALUATION_MAX_EXAMPLES = env_int("EVALUATION_MAX_EXAMPLES", 200, minimum=1)
# The training entry point GPU workers call (tests point it at a fake trainer).
TRAINER = env_str("TRAINER", "gpu_inference.training:run_training").replace(":", ".")

# Gateway (inference). Timeouts in seconds: opening a connection to a replica, its
# first byte (and the longest pause inside a stream), the whole request.
GATEWAY_CONNECT_TIMEOUT = env_int("GATEWAY_CONNECT_TIMEOUT", 3, minimum=1)
GATEWAY_FIRST_BYTE_TIMEOUT = env_int("GATEWAY_FIRST_BYTE_TIMEOUT", 60, minimum=1)
GATEWAY_TOTAL_TIMEOUT = env_int("GATEWAY_TOTAL_TIMEOUT", 600, minimum=1)
GATEWAY_MAX_BODY_BYTES = env_int("GATEWAY_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024)
GATEWAY_MAX_CONNECTIONS = env_int("GATEWAY_MAX_CONNECTIONS", 1000, minimum=1)
# How long each gateway process trusts what it read from the cache (keys, routes,
# health): a revoke, a suspension or a deleted model takes effect within this time.
GATEWAY_LOCAL_CACHE_SECONDS = env_int("GATEWAY_LOCAL_CACHE_MS", 500, minimum=0, maximum=1000) / 1000
# Health checks of every replica (a beat task) and how long their findings count.
GATEWAY_HEALTH_SECONDS = env_int("GATEWAY_HEALTH_SECONDS", 5, minimum=1)
GATEWAY_HEALTH_STALE_SECONDS = 3 * GATEWAY_HEALTH_SECONDS + 5
# A replica that refused a connection is skipped by that gateway process this long.
GATEWAY_REPLICA_DOWN_SECONDS = env_int("GATEWAY_REPLICA_DOWN_SECONDS", 5, minimum=0)

# Model servers that `runplatform` (make run) starts beside the platform: one vLLM per
# active base model (chat models with runtime LoRA, embedding models with the pooling
# runner), on ports from MODEL_SERVER_PORT up, each registered as a replica.
MODEL_SERVERS = env_bool("MODEL_SERVERS", "true")
MODEL_SERVER_PORT = env_int("MODEL_SERVER_PORT", 8101, minimum=1024, maximum=65000)
MODEL_SERVER_DEVICE = env_str("VLLM_DEVICE", "cpu")
if MODEL_SERVER_DEVICE not in ("cpu", "cuda"):
    raise ImproperlyConfigured(f"VLLM_DEVICE must be cpu or cuda, got {MODEL_SERVER_DEVICE!r}")
MODEL_SERVER_KV_CACHE_GIB = env_int("MODEL_SERVER_KV_CACHE_GIB", 1, minimum=1)
MODEL_SERVER_MAX_LORAS = env_int("MODEL_SERVER_MAX_LORAS", 4, minimum=1)
MODEL_SERVER_MAX_LORA_RANK = env_int("MODEL_SERVER_MAX_LORA_RANK", 16, minimum=1)

# Admission and metering (tokenmill/metering): the plan's default limits per organization
# per minute (0: none), the Redis stream usage events go to, and the ledger task's rhythm.
ORG_REQUESTS_PER_MINUTE = env_int("ORG_REQUESTS_PER_MINUTE", 600, minimum=0)
ORG_TOKENS_PER_MINUTE = env_int("ORG_TOKENS_PER_MINUTE", 1_000_000, minimum=0)
METERING_STREAM = env_str("METERING_STREAM", "usage-events")
METERING_LEDGER_SECONDS = env_int("METERING_LEDGER_SECONDS", 10, minimum=1)
METERING_BATCH = env_int("METERING_BATCH", 1000, minimum=1)
# A ledger consumer's unacknowledged batch is taken over after this long (it died).
METERING_CLAIM_IDLE_SECONDS = env_int("METERING_CLAIM_IDLE_SECONDS", 60, minimum=1)
# A stream's in-flight record takes the usage delivered so far at most this often, so a
# gateway that dies mid-stream is billed what it had delivered up to then.
METERING_PROGRESS_MS = env_int("METERING_PROGRESS_MS", 1000, minimum=10)
# Connections each gateway process's event loop keeps to the metering Redis, at most.
METERING_REDIS_CONNECTIONS = env_int("METERING_REDIS_CONNECTIONS", 32, minimum=1)

# Celery (see workers/celery.py): Redis when configured, else the filesystem broker.
CELERY_BROKER_URL = _redis_role("CELERY_BROKER_URL", "broker") or "filesystem://"
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
CELERY_RESULT_BACKEND = _redis_role("CELERY_RESULT_BACKEND", "results") or (
    f"file://{VAR_DIR / 'celery-results'}"
)
# Two roles in one database would bring back "a cache clear wipes the queues".
redis_roles_check_distinct(_REDIS_ROLES)
# Worker liveness (workers/probes.py): how often runplatform probes each worker, and how
# long a probe may go unanswered, while the worker runs no task, before it is restarted.
WORKER_PROBE_SECONDS = env_int("WORKER_PROBE_SECONDS", 15, minimum=1)
WORKER_PROBE_TIMEOUT = env_int("WORKER_PROBE_TIMEOUT", 30, minimum=1)

# Logs (gpu_inference/telemetry.py): JSON lines in production, text on a terminal. Every
# line carries the request id, job id and tenant where known; secrets are masked.
LOG_FORMAT = env_str("LOG_FORMAT", "json" if not DEBUG else "text").lower()
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "gpu_inference.telemetry.JsonFormatter"},
        "text": {"()": "gpu_inference.telemetry.TextFormatter"},
    },
    "filters": {"context": {"()": "gpu_inference.telemetry.ContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per proxied request would cost the gateway more CPU than its own work.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # uvicorn sets its own handlers before it loads the app; these replace them, so
        # its lines (uvicorn.error propagates here) come out in LOG_FORMAT too.
        "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # A line per request costs the gateway more CPU than its own work: off unless
        # WEB_ACCESS_LOG (uvicorn's --no-access-log does not reach a logger set up here).
        "uvicorn.access": {
            "handlers": ["console"],
            "level": "INFO" if env_bool("WEB_ACCESS_LOG") else "WARNING",
            "propagate": False,
        },
    },
}

# Metrics (tokenmill/observability): prometheus_client's multiprocess mode, every process
# of this host (web workers, Celery pool processes, beat) writing its own files in
# METRICS_DIR; /metrics adds them up. The variable must be set before prometheus_client
# is first imported, which is why it is set here. /metrics answers only a bearer
# METRICS_TOKEN; without one it is a 404.
METRICS_DIR = env_path("PROMETHEUS_MULTIPROC_DIR", env_path("METRICS_DIR", VAR_DIR / "metrics"))
METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
METRICS_TOKEN = env_str("METRICS_TOKEN")
# /readyz answers from a finding at most this old (it checks the database, Redis, replicas).
READINESS_CACHE_SECONDS = env_int("READINESS_CACHE_SECONDS", 2, minimum=0, maximum=30)
