"""Strict readers for settings that come from the environment.

A bad value stops the process at start with a message naming the variable,
instead of surfacing later as a confusing failure deep inside a request.
"""

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# Every variable a helper has read in this process, in order: what the settings read is
# knowable from outside (the deploy manifests' test checks each variable they set).
_READ: dict[str, None] = {}


def variables_read() -> list[str]:
    """The names of the environment variables the helpers read so far, first read first."""
    return list(_READ)


def env_str(name: str, default: str = "") -> str:
    _READ.setdefault(name, None)
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


def env_decimal(name: str, default: str, *, minimum: Decimal | None = None) -> Decimal:
    """A Decimal setting (money): never parsed through float."""
    raw = env_str(name, default)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be a decimal number, got {raw!r}") from None
    if not value.is_finite():
        raise ImproperlyConfigured(f"{name} must be a finite decimal number, got {raw!r}")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
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


def env_artifact_store(name: str, default: Path) -> str:
    """An artifact store URL (`file:///path`, an absolute path, or `s3://bucket/prefix`),
    checked now so a bad value stops the process at start, naming the variable."""
    from gpu_inference.artifacts import ArtifactStoreConfigError, parse_store_url

    value = env_str(name) or str(default)
    try:
        parse_store_url(value, variable=name)
    except ArtifactStoreConfigError as error:
        raise ImproperlyConfigured(str(error)) from None
    return value


def env_url(name: str, *, schemes: tuple[str, ...]) -> str:
    value = env_str(name)
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if value and scheme not in schemes:
        allowed = ", ".join(f"{allowed_scheme}://" for allowed_scheme in schemes)
        # Only the scheme is echoed: the rest of a URL often carries a password.
        got = f"{scheme}://..." if scheme else "a value without a scheme"
        raise ImproperlyConfigured(f"{name} must start with one of {allowed}, got {got}")
    return value


# Django's own deploy check (security.W009) asks for 50 characters.
SECRET_MIN_LENGTH = 50
SECRET_MIN_DISTINCT = 10
# Words that mark a value copied from a template or a tutorial rather than generated.
_PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change_me",
    "replace",
    "placeholder",
    "example",
    "insecure",
    "development-only",
    "your-secret",
    "your_secret",
    "secret-key",
    "secret_key",
    "notsecret",
    "not-secret",
)
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def env_secret(name: str, *, debug: bool, development_default: str) -> str:
    """A signing or hashing secret: in production it must be set and strong; under DEBUG,
    ``development_default`` stands in when it is unset. The value is never echoed."""
    value = env_str(name)
    if debug:
        return value or development_default
    if not value:
        raise ImproperlyConfigured(
            f"{name} must be set when DEBUG is off (generate one: {GENERATE_HINT})"
        )
    lowered = value.lower()
    placeholder = next((word for word in _PLACEHOLDER_WORDS if word in lowered), None)
    if placeholder is not None:
        raise ImproperlyConfigured(
            f"{name} looks like a placeholder (it contains {placeholder!r}); "
            f"set a random value (generate one: {GENERATE_HINT})"
        )
    if len(value) < SECRET_MIN_LENGTH or len(set(value)) < SECRET_MIN_DISTINCT:
        raise ImproperlyConfigured(
            f"{name} is too weak: use at least {SECRET_MIN_LENGTH} random characters "
            f"(generate one: {GENERATE_HINT})"
        )
    return value
