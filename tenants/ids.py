"""Opaque public ids: URLs and API objects never expose row numbers."""

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def public_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}{random_token(length)}"
