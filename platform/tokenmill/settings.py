"""Tokenmill settings: everything that varies between machines comes from the environment."""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from tokenmill.env import (
    env_artifact_store,
    env_bool,
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

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)

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
    "tokenmill.dashboard",
]

MIDDLEWARE = [
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

SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per proxied request would cost the gateway more CPU than its own work.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
