"""One Redis URL, one database per role.

The cache, the Celery broker, the Celery results and the rate limits each get their
own Redis database, because clearing a cache is FLUSHDB: with the queues in the same
database it would wipe every waiting task. `REDIS_URL` names the first database of
a block of four (`redis://host:6379/8` gives cache 8, broker 9, results 10 and rate
limits 11); each role can also be pointed anywhere with its own variable. The rule
itself is gpu_inference/redis_roles.py, which GPU nodes follow too.
"""

from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured

from gpu_inference import redis_roles
from gpu_inference.redis_roles import ROLES


def redis_role_url(base_url: str, role: str, *, variable: str = "REDIS_URL") -> str:
    """The URL of `role`'s database in the block that `base_url` starts."""
    try:
        return redis_roles.redis_role_url(base_url, role, variable=variable)
    except redis_roles.RedisRoleError as error:
        raise ImproperlyConfigured(str(error)) from None


def _redis_database(url: str) -> tuple[str, int, int]:
    """The host, port and database a Redis URL reaches, as redis-py reads it: a `db`
    query value wins over the path, and no database at all means 0."""
    parts = urlsplit(url)
    database = parse_qs(parts.query).get("db", [parts.path.strip("/") or "0"])[-1]
    host = (parts.hostname or "localhost").lower()
    return host, parts.port or 6379, int(database) if database.isdigit() else -1


def redis_roles_check_distinct(roles: dict[str, tuple[str, str]]) -> None:
    """Refuse two roles in one database: {role: (variable it came from, URL)}.

    A cache clear is FLUSHDB, so a broker sharing the cache's database loses its queues."""
    seen: dict[tuple[str, int, int], tuple[str, str]] = {}
    for role in sorted(roles, key=list(ROLES).index):  # named in ROLES' order
        variable, url = roles[role]
        if not url:
            continue
        where = _redis_database(url)
        if where in seen:
            other_role, other_variable = seen[where]
            host, port, database = where
            raise ImproperlyConfigured(
                f"{other_variable} ({other_role}) and {variable} ({role}) both point at Redis "
                f"database {database} on {host}:{port}: give each role its own database, "
                "or a cache clear would wipe the other's data"
            )
        seen[where] = (role, variable)
