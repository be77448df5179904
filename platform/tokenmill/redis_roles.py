"""One Redis URL, one database per role.

The cache, the Celery broker, the Celery results and the rate limits each get their
own Redis database, because clearing a cache is FLUSHDB: with the queues in the same
database it would wipe every waiting task. `REDIS_URL` names the first database of
a block of four (`redis://host:6379/8` gives cache 8, broker 9, results 10 and rate
limits 11); each role can also be pointed anywhere with its own variable.
"""

from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

# The offset of each role's database from the base URL's database number.
ROLES = {"cache": 0, "broker": 1, "results": 2, "ratelimit": 3}
# What a Redis server has unless its `databases` option says otherwise.
REDIS_DATABASES = 16


def redis_role_url(base_url: str, role: str, *, variable: str = "REDIS_URL") -> str:
    """The URL of `role`'s database in the block that `base_url` starts."""
    parts = urlsplit(base_url)
    raw = parts.path.strip("/") or "0"
    if not raw.isdigit():
        raise ImproperlyConfigured(
            f"{variable} must end with a database number such as /0, got /{raw}"
        )
    first = int(raw)
    last_allowed = REDIS_DATABASES - len(ROLES)
    if first > last_allowed:
        raise ImproperlyConfigured(
            f"{variable} must name a database from 0 to {last_allowed}, got {first}: "
            f"it is the first of {len(ROLES)} (cache, broker, results, rate limits)"
        )
    return urlunsplit(parts._replace(path=f"/{first + ROLES[role]}"))
