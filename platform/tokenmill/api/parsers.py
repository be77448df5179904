"""The JSON parser of every /v1 and /api/v1 endpoint.

Stricter than DRF's: a body over JSON_BODY_MAX_BYTES is a 413 (read no further
than the limit), JSON nested too deeply is a 400 instead of a RecursionError, and a
string that cannot be encoded as UTF-8 (a lone surrogate escape such as
`"\\udfff"`) is a 400 naming the parameter, before any view or service sees it. All
errors are in OpenAI's shape, through ApiError.
"""

import json

from django.conf import settings
from rest_framework import renderers
from rest_framework.parsers import BaseParser

from tokenmill.api.errors import ApiError
from tokenmill.api.json_text import MAX_DEPTH, TooDeep, unencodable_path


def body_too_large(*, limit: int, kind: str) -> ApiError:
    """The 413 for a body over its limit; the ASGI body guard answers with the same one."""
    return ApiError(
        f"The request body is too large: a {kind} body may be at most {limit:,} bytes.",
        status_code=413,
        code="request_too_large",
    )


def _invalid(message: str, *, code: str = "invalid_json", param: str | None = None) -> ApiError:
    return ApiError(message, status_code=400, code=code, param=param)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(raw: bytes):
    """A request body's JSON value, or ApiError saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid(
            f"The request body is not valid UTF-8 (byte offset {error.start}); send JSON encoded as UTF-8."
        ) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise _invalid(
            f"The request body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        ) from None
    except RecursionError:
        raise _invalid(_too_deep_message()) from None
    except ValueError as error:  # NaN or Infinity, or an integer with too many digits
        raise _invalid(f"The request body is not valid JSON: {error}.") from None
    try:
        path = unencodable_path(value)
    except TooDeep:
        raise _invalid(_too_deep_message()) from None
    if path is not None:
        where = f"'{path}'" if path else "the request body"
        raise _invalid(
            f"Invalid value for {where}: it holds a lone surrogate (an escape such as "
            "\\udfff without its pair), which is not valid Unicode text.",
            code="invalid_unicode",
            param=path or None,
        )
    return value


def _too_deep_message() -> str:
    return f"The request body is nested too deeply: JSON may nest at most {MAX_DEPTH} levels."


class StrictJSONParser(BaseParser):
    media_type = "application/json"
    renderer_class = renderers.JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.JSON_BODY_MAX_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise body_too_large(limit=limit, kind="JSON")
        return parse_json_body(raw)
