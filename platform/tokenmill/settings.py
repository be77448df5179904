"""Tokenmill settings: everything that varies between machines comes from the environment."""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from tokenmill.env import env_bool, env_int, env_list, env_path, env_str, env_url

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = env_path("TOKENMILL_VAR_DIR", BASE_DIR / "var")

DEBUG = env_bool("DEBUG", "false")

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "development-only-secret-key-never-use-in-production"  # noqa: S105

# API keys are hashed with their own secret so SECRET_KEY (sessions, signing) can be
# rotated without invalidating every key a tenant holds.
API_KEY_HASH_SECRET = env_str("API_KEY_HASH_SECRET") or SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)

DATABASE_URL = env_url("DATABASE_URL", schemes=("sqlite", "postgres", "postgresql"))
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

REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
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

ARTIFACT_ROOT = env_path("ARTIFACT_ROOT", VAR_DIR / "artifacts")
FILE_MAX_BYTES = env_int("FILE_MAX_BYTES", 512 * 1024 * 1024, minimum=1)
STORAGE_QUOTA_BYTES = env_int("STORAGE_QUOTA_BYTES", 10 * 1024**3, minimum=0)
MAX_CONCURRENT_JOBS = env_int("MAX_CONCURRENT_JOBS", 2, minimum=1)
# Uploads go to a temporary file on disk, never into memory, on their way to the store.
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.TemporaryFileUploadHandler"]
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
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
        "rest_framework.parsers.JSONParser",
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
# The training entry point GPU workers call (tests point it at a fake trainer).
TRAINER = env_str("TRAINER", "gpu_inference.training:run_training").replace(":", ".")

# Celery (see workers/celery.py): Redis when configured, else the filesystem broker.
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
CELERY_RESULT_BACKEND = REDIS_URL or f"file://{VAR_DIR / 'celery-results'}"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
