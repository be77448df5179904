"""The metering Redis (settings.RATELIMIT_REDIS_URL): limits, in-flight requests, events.

"" means no Redis: the embedded default, where the database stands in for it.
"""

import functools

import redis
from django.conf import settings


def enabled() -> bool:
    return bool(settings.RATELIMIT_REDIS_URL)


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, health_check_interval=30)


def client() -> redis.Redis:
    return _client_for(settings.RATELIMIT_REDIS_URL)
