"""Production settings: secure defaults with DEBUG off, and `check --deploy` clean."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STRONG_SECRET = "kV3q9Tz-7bLw2RfN8xYp4HcJ6mDs1GaE5uQo0WiB-r4Nd0mTa1lXy"
STRONG_HASH_SECRET = "Zr8Kp2Lx6Vn4Qw9Bt1Hm7Jc3Fs5Dg0AyUeNoTi-9sQmZ2wKv7Lp"
# What a production deployment sets (deploy/kubernetes/configmap.yaml and the secret).
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": STRONG_SECRET,
    "API_KEY_HASH_SECRET": STRONG_HASH_SECRET,
    "ALLOWED_HOSTS": "api.example.com,app.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://app.example.com",
    "PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "DATABASE_URL": "postgres://tokenmill@db.internal:5432/tokenmill",
    "REDIS_URL": "redis://redis.internal:6379/0",
}
SECURITY = (
    "import json\n"
    "from tokenmill import settings as s\n"
    "names = ['SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD',\n"
    "         'SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE',\n"
    "         'ALLOWED_HOSTS', 'CSRF_TRUSTED_ORIGINS']\n"
    "found = {name: getattr(s, name) for name in names}\n"
    "found['SECURE_PROXY_SSL_HEADER'] = getattr(s, 'SECURE_PROXY_SSL_HEADER', None)\n"
    "print(json.dumps(found))\n"
)


def run(argv: list[str], var_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """A fresh process with only `env` set: nothing leaks in from the test run."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "platform"),
        "TOKENMILL_VAR_DIR": str(var_dir),
        **env,
    }
    return subprocess.run(
        argv, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=180
    )


def security_settings(var_dir: Path, **env: str) -> dict:
    result = run([sys.executable, "-c", SECURITY], var_dir, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusal(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout
    return result.stderr.strip().splitlines()[-1]


def test_check_deploy_is_clean_with_production_variables(tmp_path):
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        **PRODUCTION,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout


def test_check_deploy_warns_when_production_turns_https_off(tmp_path):
    """The clean run above is not a check that never warns."""
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        **PRODUCTION,
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="0",
    )
    assert result.returncode == 1
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


def test_production_defaults_are_secure(tmp_path):
    found = security_settings(tmp_path, **PRODUCTION)
    assert found["SECURE_HSTS_SECONDS"] == 31_536_000
    assert found["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert found["SECURE_HSTS_PRELOAD"] is False  # only when asked: browsers keep it long
    assert found["SECURE_SSL_REDIRECT"] is True
    assert found["SESSION_COOKIE_SECURE"] is True and found["CSRF_COOKIE_SECURE"] is True
    assert found["ALLOWED_HOSTS"] == ["api.example.com", "app.example.com"]
    assert found["CSRF_TRUSTED_ORIGINS"] == ["https://app.example.com"]
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_no_proxy_header_is_trusted_unless_one_is_named(tmp_path):
    env = {key: value for key, value in PRODUCTION.items() if key != "PROXY_SSL_HEADER"}
    assert security_settings(tmp_path, **env)["SECURE_PROXY_SSL_HEADER"] is None


def test_each_https_setting_follows_its_variable(tmp_path):
    found = security_settings(
        tmp_path,
        **PRODUCTION,
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        SECURE_HSTS_PRELOAD="true",
        SECURE_SSL_REDIRECT="false",
    )
    assert found["SECURE_HSTS_SECONDS"] == 3600
    assert found["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert found["SECURE_HSTS_PRELOAD"] is True
    assert found["SECURE_SSL_REDIRECT"] is False


def test_debug_keeps_plain_http_for_development(tmp_path):
    found = security_settings(tmp_path, DEBUG="true")
    assert found["SECURE_HSTS_SECONDS"] == 0
    assert found["SECURE_SSL_REDIRECT"] is False
    assert found["SESSION_COOKIE_SECURE"] is False
    assert found["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ALLOWED_HOSTS": ""},
            "ALLOWED_HOSTS must be set when DEBUG is off: the host names this site answers to, "
            "comma-separated (e.g. api.example.com,.example.com)",
        ),
        (
            {"ALLOWED_HOSTS": "api.example.com,*"},
            "ALLOWED_HOSTS must name the site's hosts when DEBUG is off, not '*'",
        ),
        (
            {"CSRF_TRUSTED_ORIGINS": "app.example.com"},
            "CSRF_TRUSTED_ORIGINS must list origins with their scheme, such as "
            "https://app.example.com, got 'app.example.com'",
        ),
        (
            {"PROXY_SSL_HEADER": "X-Forwarded-Proto: https"},
            "PROXY_SSL_HEADER must be a header name such as X-Forwarded-Proto, "
            "got 'X-Forwarded-Proto: https'",
        ),
        (
            {"SECURE_HSTS_SECONDS": "-1"},
            "SECURE_HSTS_SECONDS must be at least 0, got -1",
        ),
    ],
    ids=["no-hosts", "any-host", "origin-without-scheme", "bad-proxy-header", "negative-hsts"],
)
def test_a_bad_production_value_refuses_to_start_naming_it(tmp_path, env, message):
    result = run([sys.executable, "-c", SECURITY], tmp_path, **{**PRODUCTION, **env})
    assert refusal(result) == f"django.core.exceptions.ImproperlyConfigured: {message}"
