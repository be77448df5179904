"""Under ASGI, database connections come from psycopg's pool and none is kept per
thread (Django's advice); workers and commands keep one connection per process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.processes import worker_database_url

ROOT = Path(__file__).resolve().parents[1]

DATABASE_SUMMARY = (
    "import json, os, sys\n"
    "sys.path.insert(0, 'platform')\n"
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tokenmill.settings')\n"
    "if sys.argv[1] == 'asgi':\n"
    "    import tokenmill.asgi\n"
    "from django.conf import settings\n"
    "db = settings.DATABASES['default']\n"
    "print(json.dumps({'conn_max_age': db['CONN_MAX_AGE'], 'pool': db.get('OPTIONS', {}).get('pool')}))\n"
)


def database_settings(tmp_path, process: str, **env) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", DATABASE_SUMMARY, process],
        cwd=ROOT,
        env={
            "PATH": os.environ.get("PATH", ""),
            "TOKENMILL_VAR_DIR": str(tmp_path),
            "DEBUG": "true",
            "DATABASE_URL": "postgres://tm@db.internal:5432/tokenmill",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_asgi_app_pools_connections_and_keeps_none_persistent(tmp_path):
    assert database_settings(tmp_path, "asgi", DATABASE_POOL_MAX_SIZE="6") == {
        "conn_max_age": 0,
        "pool": {"min_size": 2, "max_size": 6, "timeout": 10},
    }


def test_workers_and_commands_keep_a_persistent_connection_per_process(tmp_path):
    assert database_settings(tmp_path, "worker") == {"conn_max_age": 60, "pool": None}


def test_the_pool_can_be_turned_off_and_connections_still_are_not_kept(tmp_path):
    assert database_settings(tmp_path, "asgi", DATABASE_POOL="false") == {
        "conn_max_age": 0,
        "pool": None,
    }


POOLED_QUERIES = (
    "import json, os, sys\n"
    "sys.path.insert(0, 'platform')\n"
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tokenmill.settings')\n"
    "import tokenmill.asgi\n"
    "from django.db import connection\n"
    "backends = []\n"
    "for _ in range(3):  # as three requests would, each closing its connection at the end\n"
    "    with connection.cursor() as cursor:\n"
    "        cursor.execute('select pg_backend_pid()')\n"
    "        backends.append(cursor.fetchone()[0])\n"
    "    connection.close()\n"
    "stats = connection.pool.get_stats()\n"
    "print(json.dumps({'backends': backends, 'idle': stats['pool_available']}))\n"
)


def test_a_pooled_connection_is_handed_back_and_reused(transactional_db, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("psycopg's pool serves PostgreSQL only; SQLite has no pool")
    result = subprocess.run(
        [sys.executable, "-c", POOLED_QUERIES],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": worker_database_url(),
            "DATABASE_POOL_MIN_SIZE": "1",
            "DATABASE_POOL_MAX_SIZE": "1",
            "TOKENMILL_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # One pooled connection served all three: closing gave it back instead of ending it.
    assert len(set(summary["backends"])) == 1
    assert summary["idle"] == 1
