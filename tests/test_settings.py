"""Settings come from the environment through strict helpers: a bad value stops the
process at start with a message that names the variable."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tokenmill.env import env_artifact_store, env_bool, env_int, env_list, env_path, env_url

ROOT = Path(__file__).resolve().parents[1]
VAR = "TM_TEST_SETTING"


@pytest.mark.parametrize(
    ("read", "raw", "message"),
    [
        (lambda: env_bool(VAR), "maybe", f"{VAR} must be true or false, got 'maybe'"),
        (lambda: env_int(VAR, 1), "12x", f"{VAR} must be a whole number, got '12x'"),
        (lambda: env_int(VAR, 1, minimum=1), "0", f"{VAR} must be at least 1, got 0"),
        (lambda: env_int(VAR, 1, maximum=9), "10", f"{VAR} must be at most 9, got 10"),
        (
            lambda: env_list(VAR),
            "a.example.com b.example.com",
            f"{VAR} must be a comma-separated list, got 'a.example.com b.example.com' with whitespace inside",
        ),
        (
            lambda: env_url(VAR, schemes=("redis", "rediss")),
            "http://cache:6379",
            f"{VAR} must start with one of redis://, rediss://, got http://...",
        ),
        (
            lambda: env_url(VAR, schemes=("redis",)),
            "cache:6379",
            f"{VAR} must start with one of redis://, got a value without a scheme",
        ),
        (
            lambda: env_path(VAR, Path("/srv/default")),
            "var/relative",
            f"{VAR} must be an absolute path, got 'var/relative'",
        ),
    ],
    ids=["bool", "int", "int-minimum", "int-maximum", "list", "url", "url-no-scheme", "path"],
)
def test_a_bad_value_names_the_variable(monkeypatch, read, raw, message):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured) as raised:
        read()
    assert str(raised.value) == message


def test_good_values_and_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(VAR, raising=False)
    assert env_bool(VAR) is False
    assert env_int(VAR, 7) == 7
    assert env_list(VAR, "a,b") == ["a", "b"]
    assert env_path(VAR, Path("/srv/default")) == Path("/srv/default")
    assert env_url(VAR, schemes=("redis",)) == ""

    monkeypatch.setenv(VAR, " On ")
    assert env_bool(VAR) is True
    monkeypatch.setenv(VAR, " 42 ")
    assert env_int(VAR, 7, minimum=1, maximum=42) == 42
    monkeypatch.setenv(VAR, " a.example.com, ,b.example.com,")
    assert env_list(VAR) == ["a.example.com", "b.example.com"]
    monkeypatch.setenv(VAR, str(tmp_path / "x" / ".." / "y"))
    assert env_path(VAR, Path("/srv/default")) == tmp_path.resolve() / "y"
    monkeypatch.setenv(VAR, "rediss://cache:6380/1")
    assert env_url(VAR, schemes=("redis", "rediss")) == "rediss://cache:6380/1"


def test_a_bad_url_is_not_echoed_with_its_password(monkeypatch):
    monkeypatch.setenv(VAR, "mysql://tokenmill:hunter2@db/tokenmill")
    with pytest.raises(ImproperlyConfigured) as raised:
        env_url(VAR, schemes=("postgres",))
    assert "hunter2" not in str(raised.value)
    assert str(raised.value) == f"{VAR} must start with one of postgres://, got mysql://..."


# --- the settings module, imported in a fresh process --------------------------------

SUMMARY = (
    "import json\n"
    "from tokenmill import settings as s\n"
    "print(json.dumps({\n"
    "    'debug': s.DEBUG,\n"
    "    'database': {k: str(s.DATABASES['default'][k]) for k in ('ENGINE', 'NAME')},\n"
    "    'cache': s.CACHES['default'],\n"
    "    'broker': s.CELERY_BROKER_URL,\n"
    "    'port': s.PORT,\n"
    "}))\n"
)


def import_settings(var_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """Import tokenmill.settings with only `env` set (nothing leaks in from this process)."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "platform"),
        "TOKENMILL_VAR_DIR": str(var_dir),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", SUMMARY],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def failure(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout
    return result.stderr.strip().splitlines()[-1]


STRONG_SECRET = "kV3q9Tz-7bLw2RfN8xYp4HcJ6mDs1GaE5uQo0WiB-r4Nd0mTa1lXy"
STRONG_HASH_SECRET = "Zr8Kp2Lx6Vn4Qw9Bt1Hm7Jc3Fs5Dg0AyUeNoTi-9sQmZ2wKv7Lp"
HINT = "(generate one: python -c 'import secrets; print(secrets.token_urlsafe(48))')"


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    result = import_settings(tmp_path, DEBUG="false", API_KEY_HASH_SECRET=STRONG_HASH_SECRET)
    assert failure(result) == (
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off "
        + HINT
    )


def test_production_with_strong_secrets_starts(tmp_path):
    result = import_settings(
        tmp_path,
        DEBUG="false",
        SECRET_KEY=STRONG_SECRET,
        API_KEY_HASH_SECRET=STRONG_HASH_SECRET,
        ALLOWED_HOSTS="api.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is False


def test_production_does_not_hash_keys_with_the_secret_key_by_default(tmp_path):
    result = import_settings(tmp_path, DEBUG="false", SECRET_KEY=STRONG_SECRET)
    assert failure(result) == (
        "django.core.exceptions.ImproperlyConfigured: API_KEY_HASH_SECRET must be set when "
        "DEBUG is off " + HINT
    )


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("SECRET_KEY", "x", "is too weak: use at least 50 random characters"),
        ("SECRET_KEY", "ab" * 30, "is too weak: use at least 50 random characters"),
        (
            "SECRET_KEY",
            "django-insecure-" + STRONG_SECRET,
            "looks like a placeholder (it contains 'insecure'); set a random value",
        ),
        (
            "API_KEY_HASH_SECRET",
            "please-CHANGE-ME-before-going-live-0123456789",
            "looks like a placeholder (it contains 'change-me'); set a random value",
        ),
        (
            "API_KEY_HASH_SECRET",
            "short-but-random-9f3",
            "is too weak: use at least 50 random characters",
        ),
    ],
    ids=["one-char", "few-distinct", "django-insecure", "change-me", "short"],
)
def test_production_refuses_a_weak_secret_naming_it(tmp_path, variable, value, why):
    env = {"SECRET_KEY": STRONG_SECRET, "API_KEY_HASH_SECRET": STRONG_HASH_SECRET, variable: value}
    result = import_settings(tmp_path, DEBUG="false", **env)
    message = failure(result)
    assert message == f"django.core.exceptions.ImproperlyConfigured: {variable} {why} {HINT}"
    assert len(value) < 8 or value not in message  # a secret is never echoed


def test_debug_keeps_development_defaults_for_both_secrets(tmp_path):
    code = (
        "from tokenmill import settings as s\n"
        "print(s.SECRET_KEY == s.API_KEY_HASH_SECRET, s.SECRET_KEY.startswith('development-only'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT / "platform"),
            "TOKENMILL_VAR_DIR": str(tmp_path),
            "DEBUG": "true",
            "SECRET_KEY": "x",  # weak is fine for development
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]


def test_a_mysql_database_url_is_refused_naming_the_variable(tmp_path):
    result = import_settings(tmp_path, DEBUG="true", DATABASE_URL="mysql://u:pw@db:3306/tm")
    assert failure(result) == (
        "django.core.exceptions.ImproperlyConfigured: DATABASE_URL must start with one of "
        "sqlite://, postgres://, postgresql://, got mysql://..."
    )


def test_a_port_that_is_not_a_number_is_refused_naming_the_variable(tmp_path):
    result = import_settings(tmp_path, DEBUG="true", PORT="abc")
    assert failure(result) == (
        "django.core.exceptions.ImproperlyConfigured: PORT must be a whole number, got 'abc'"
    )


def test_a_debug_flag_that_is_not_a_boolean_is_refused(tmp_path):
    result = import_settings(tmp_path, DEBUG="yes please")
    assert failure(result) == (
        "django.core.exceptions.ImproperlyConfigured: DEBUG must be true or false, got 'yes please'"
    )


def test_redis_url_selects_the_redis_cache_and_broker(tmp_path):
    result = import_settings(tmp_path, DEBUG="true", REDIS_URL="redis://cache.internal:6379/3")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["cache"] == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://cache.internal:6379/3",
        "KEY_PREFIX": "tokenmill",
    }
    assert summary["broker"] == "redis://cache.internal:6379/4"  # a database of its own


def test_the_embedded_default_is_sqlite_and_the_database_cache_under_the_var_dir(tmp_path):
    result = import_settings(tmp_path, DEBUG="true")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["database"] == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(tmp_path.resolve() / "tokenmill.sqlite3"),
    }
    assert summary["cache"] == {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "tokenmill_cache",
    }
    assert summary["broker"] == "filesystem://"
    assert summary["port"] == 8000


def test_postgres_database_url_selects_postgresql(tmp_path):
    result = import_settings(
        tmp_path, DEBUG="true", DATABASE_URL="postgres://tm:pw@db.internal:5432/tokenmill"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["database"] == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "tokenmill",
    }


def test_production_refuses_the_secret_key_as_the_hash_secret(tmp_path):
    result = import_settings(
        tmp_path, DEBUG="false", SECRET_KEY=STRONG_SECRET, API_KEY_HASH_SECRET=STRONG_SECRET
    )
    message = failure(result)
    assert message == (
        "django.core.exceptions.ImproperlyConfigured: API_KEY_HASH_SECRET must differ from "
        "SECRET_KEY when DEBUG is off, so SECRET_KEY can be rotated without invalidating every "
        "API key; to keep keys hashed with SECRET_KEY valid, set "
        "API_KEY_HASH_SECRET_IS_SECRET_KEY=true until they are replaced"
    )
    assert STRONG_SECRET not in message


def test_production_hashes_keys_with_the_secret_key_only_when_told_to(tmp_path):
    result = import_settings(
        tmp_path,
        DEBUG="false",
        SECRET_KEY=STRONG_SECRET,
        API_KEY_HASH_SECRET=STRONG_SECRET,
        API_KEY_HASH_SECRET_IS_SECRET_KEY="true",
        ALLOWED_HOSTS="api.example.com",
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {
                "REDIS_URL": "redis://localhost:6379/0",
                "CELERY_BROKER_URL": "redis://localhost:6379/0",
            },
            "REDIS_URL (cache) and CELERY_BROKER_URL (broker) both point at Redis database 0 "
            "on localhost:6379",
        ),
        (
            {"REDIS_URL": "redis://cache:6379/4", "RATELIMIT_REDIS_URL": "redis://CACHE/5"},
            "REDIS_URL (broker) and RATELIMIT_REDIS_URL (ratelimit) both point at Redis "
            "database 5 on cache:6379",
        ),
        (
            {
                "REDIS_CACHE_URL": "redis://r1:6380",
                "CELERY_BROKER_URL": "redis://:pw@r2:6379/1",
                "CELERY_RESULT_BACKEND": "rediss://r1:6380/0",
            },
            "REDIS_CACHE_URL (cache) and CELERY_RESULT_BACKEND (results) both point at Redis "
            "database 0 on r1:6380",
        ),
        (
            {
                "REDIS_CACHE_URL": "redis://r1:6379/2",
                "CELERY_BROKER_URL": "redis://r1:6379/7?db=2",
            },
            "REDIS_CACHE_URL (cache) and CELERY_BROKER_URL (broker) both point at Redis "
            "database 2 on r1:6379",
        ),
    ],
    ids=["broker-in-the-cache", "ratelimit-in-the-broker", "default-database", "db-query"],
)
def test_two_redis_roles_in_one_database_refuse_to_start(tmp_path, env, message):
    result = import_settings(tmp_path, DEBUG="true", **env)
    assert failure(result) == (
        f"django.core.exceptions.ImproperlyConfigured: {message}: give each role its own "
        "database, or a cache clear would wipe the other's data"
    )
    assert "pw@" not in result.stderr


def test_redis_roles_on_other_hosts_or_ports_start(tmp_path):
    result = import_settings(
        tmp_path,
        DEBUG="true",
        REDIS_URL="redis://localhost:6379/0",
        CELERY_BROKER_URL="redis://localhost:6380/0",
        CELERY_RESULT_BACKEND="redis://other:6379/0",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["broker"] == "redis://localhost:6380/0"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "var/artifacts",
            f"{VAR} must be an absolute path, file:///path or s3://bucket/prefix, got 'var/artifacts'",
        ),
        (
            "file://server/share",
            f"{VAR} must be file:///absolute/path (three slashes), got 'file://server/share'",
        ),
        (
            "s3://key:secret@bucket/prefix",
            f"{VAR} must be s3://bucket/prefix with the bucket's name only, credentials in "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
        (
            "s3:///prefix",
            f"{VAR} must be s3://bucket/prefix with the bucket's name only, credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
        (
            "s3://bucket/a/../b",
            f"{VAR} has a bad prefix 'a/../b': use plain names separated by '/'",
        ),
        (
            "gs://bucket/prefix",
            f"{VAR} must start with file:// or s3:// (or be an absolute path), got gs://...",
        ),
    ],
    ids=["relative", "file-host", "s3-credentials", "s3-no-bucket", "s3-prefix", "scheme"],
)
def test_a_bad_artifact_store_url_names_the_variable(monkeypatch, raw, message):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured) as raised:
        env_artifact_store(VAR, Path("/srv/artifacts"))
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "raw", ["/srv/artifacts", "file:///srv/artifacts", "s3://bucket", "s3://bucket/a/prefix/"]
)
def test_good_artifact_store_urls_pass_and_the_default_is_the_folder(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    assert env_artifact_store(VAR, Path("/srv/default")) == raw
    monkeypatch.delenv(VAR)
    assert env_artifact_store(VAR, Path("/srv/default")) == "/srv/default"


def test_a_gpu_node_refuses_a_bad_artifact_store_url_naming_it(monkeypatch):
    from gpu_inference.gpu_worker import GpuSettings, GpuWorkerConfigError

    monkeypatch.setenv("ARTIFACT_STORE_URL", "ftp://files/artifacts")
    with pytest.raises(GpuWorkerConfigError, match="ARTIFACT_STORE_URL must start with file://"):
        GpuSettings()
