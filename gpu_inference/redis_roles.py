"""One Redis URL, one database per role: the rule both the platform and GPU nodes follow.

The cache, the Celery broker, the Celery results and the rate limits each get their
own Redis database, because clearing a cache is FLUSHDB: with the queues in the same
database it would wipe every waiting task. `REDIS_URL` names the first database of
a block of four (`redis://host:6379/8` gives cache 8, broker 9, results 10 and rate
limits 11). No Django here: tokenmill/redis_roles.py and gpu_worker.py both use it and
turn its error into their own configuration error.
"""

from urllib.parse import urlsplit, urlunsplit

# The offset of each role's database from the base URL's database number.
ROLES = {"cache": 0, "broker": 1, "results": 2, "ratelimit": 3}
# What a Redis server has unless its `databases` option says otherwise.
REDIS_DATABASES = 16


class RedisRoleError(ValueError):
    """A REDIS_URL that cannot start a block of role databases; the message names it."""


def redis_role_url(base_url: str, role: str, *, variable: str = "REDIS_URL") -> str:
    """The URL of `role`'s database in the block that `base_url` starts."""
    parts = urlsplit(base_url)
    raw = parts.path.strip("/") or "0"
    if not raw.isdigit():
        raise RedisRoleError(f"{variable} must end with a database number such as /0, got /{raw}")
    first = int(raw)
    last_allowed = REDIS_DATABASES - len(ROLES)
    if first > last_allowed:
        raise RedisRoleError(
            f"{variable} must name a database from 0 to {last_allowed}, got {first}: "
            f"it is the first of {len(ROLES)} (cache, broker, results, rate limits)"
        )
    return urlunsplit(parts._replace(path=f"/{first + ROLES[role]}"))
