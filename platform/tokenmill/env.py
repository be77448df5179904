"""Strict readers for settings that come from the environment.

A bad value stops the process at start with a message naming the variable,
instead of surfacing later as a confusing failure deep inside a request.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: str = "false") -> bool:
    value = env_str(name, default).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    raw = env_str(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    items = [item.strip() for item in env_str(name, default).split(",") if item.strip()]
    for item in items:
        # "a.example b.example" is one bogus item, not two: the separator is a comma.
        if any(char.isspace() for char in item):
            raise ImproperlyConfigured(
                f"{name} must be a comma-separated list, got {item!r} with whitespace inside"
            )
    return items


def env_path(name: str, default: Path) -> Path:
    raw = env_str(name)
    if not raw:
        return default
    path = Path(raw).expanduser()
    # A relative path would depend on the directory each process was started from.
    if not path.is_absolute():
        raise ImproperlyConfigured(f"{name} must be an absolute path, got {raw!r}")
    return path.resolve()


def env_url(name: str, *, schemes: tuple[str, ...]) -> str:
    value = env_str(name)
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if value and scheme not in schemes:
        allowed = ", ".join(f"{allowed_scheme}://" for allowed_scheme in schemes)
        # Only the scheme is echoed: the rest of a URL often carries a password.
        got = f"{scheme}://..." if scheme else "a value without a scheme"
        raise ImproperlyConfigured(f"{name} must start with one of {allowed}, got {got}")
    return value
