"""Checks on parsed JSON that Python's json module lets through.

JSON may escape a lone UTF-16 surrogate (`"\\udfff"`); Python decodes it into a
`str` that cannot be encoded as UTF-8, so it fails later, far from the request,
when PostgreSQL, a tokenizer or a renderer meets it. `unencodable_path` finds the
first such string (a key or a value) and names it as a parameter path, in the form
the API's errors use (`metadata.note`, `scopes[0]`).

Pure standard library: the API's parser and the dataset validation both use it.
"""

from __future__ import annotations

from typing import Any

#: deeper than any request or example needs; deep enough to catch a pathological body
MAX_DEPTH = 64


class TooDeep(ValueError):
    pass


def is_unicode_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_text(text: str) -> str:
    """Text safe to echo back: a lone surrogate is written as its escape (`\\udfff`)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = shown_text(key)
    return f"{path}.{key}" if path else key


def unencodable_path(value: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """The path of the first string that is not valid Unicode text, or None; "" is the value itself.

    Raises TooDeep for containers nested deeper than ``max_depth``. Iterative, so a
    deep value cannot exhaust the stack here.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if not is_unicode_text(item):
                return path
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise TooDeep(f"nested more than {max_depth} levels deep")
            if isinstance(item, dict):
                for key in item:
                    if not is_unicode_text(key):
                        return _child_path(path, key)
                pairs = list(item.items())
            else:
                pairs = list(enumerate(item))
            # Reversed, so the first key or item is checked first.
            stack.extend(
                (child, _child_path(path, key), depth + 1) for key, child in reversed(pairs)
            )
    return None
