"""Redis by role: the cache, the broker, the results and the rate limits each have a
database of their own, so clearing the cache (FLUSHDB) never wipes a queue."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from tokenmill.redis_roles import redis_role_url
from workers.celery import app
from workers.tasks import ping

ROLES_SUMMARY = (
    "import json\n"
    "from tokenmill import settings as s\n"
    "print(json.dumps({\n"
    "    'cache': s.CACHES['default']['LOCATION'],\n"
    "    'broker': s.CELERY_BROKER_URL,\n"
    "    'results': s.CELERY_RESULT_BACKEND,\n"
    "    'ratelimit': s.RATELIMIT_REDIS_URL,\n"
    "}))\n"
)


ROOT = Path(__file__).resolve().parents[2]


def roles(tmp_path, **env) -> dict:
    """The settings' Redis URLs, imported in a fresh process with only `env` set."""
    result = subprocess.run(
        [sys.executable, "-c", ROLES_SUMMARY],
        cwd=ROOT,
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT / "platform"),
            "TOKENMILL_VAR_DIR": str(tmp_path),
            "DEBUG": "true",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_one_redis_url_gives_four_databases_one_per_role(tmp_path):
    assert roles(tmp_path, REDIS_URL="redis://:pw@cache.internal:6379/8") == {
        "cache": "redis://:pw@cache.internal:6379/8",
        "broker": "redis://:pw@cache.internal:6379/9",
        "results": "redis://:pw@cache.internal:6379/10",
        "ratelimit": "redis://:pw@cache.internal:6379/11",
    }


def test_each_role_can_be_pointed_elsewhere(tmp_path):
    assert roles(
        tmp_path,
        REDIS_URL="rediss://cache.internal:6380",
        CELERY_BROKER_URL="redis://queues.internal:6379/0",
        RATELIMIT_REDIS_URL="redis://limits.internal:6379/2",
    ) == {
        "cache": "rediss://cache.internal:6380/0",
        "broker": "redis://queues.internal:6379/0",
        "results": "rediss://cache.internal:6380/2",
        "ratelimit": "redis://limits.internal:6379/2",
    }


def test_without_redis_the_embedded_default_needs_no_service(tmp_path):
    summary = roles(tmp_path)
    assert summary["cache"] == "tokenmill_cache"  # the database cache
    assert summary["broker"] == "filesystem://"
    assert summary["results"].startswith("file://")
    assert summary["ratelimit"] == ""  # the admission code falls back to the database


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "redis://cache:6379/13",
            "REDIS_URL must name a database from 0 to 12, got 13: it is the first of 4 "
            "(cache, broker, results, rate limits)",
        ),
        ("redis://cache:6379/x", "REDIS_URL must end with a database number such as /0, got /x"),
    ],
)
def test_a_base_database_that_leaves_no_room_is_refused_naming_the_variable(url, message):
    with pytest.raises(ImproperlyConfigured) as raised:
        redis_role_url(url, "cache")
    assert str(raised.value) == message


@pytest.mark.worker  # a real broker: the task is published, not run in this process
def test_a_cache_clear_leaves_a_queued_task_in_the_broker(db):
    # A queue no worker consumes, so the message can only leave it by being wiped.
    queue = Queue("roles-test", Exchange("roles-test", type="direct"), routing_key="roles-test")
    with app.connection_for_write() as connection:
        queue(connection.default_channel).declare()
        queue(connection.default_channel).purge()
    sent = ping.apply_async(queue=queue.name, exchange=queue.exchange, routing_key="roles-test")
    cache.set("a-cached-key", "x")

    cache.clear()

    assert cache.get("a-cached-key") is None
    with app.connection_for_read() as connection:
        message = queue(connection.default_channel).get(no_ack=True)
    assert message is not None, "clearing the cache wiped the queue"
    assert message.headers["id"] == sent.id
