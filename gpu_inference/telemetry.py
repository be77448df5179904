"""Log lines and their context, for every process: web, platform workers and GPU nodes.

No Django here: GPU nodes format their logs with this module too. A log line carries
what is known of the work it belongs to, from context variables that the request or
task sets once (`log_context`): the request id, the client's own request id, the job
id and the tenant's public id. `LOG_FORMAT=json` writes one JSON object per line
(time, level, logger, message and those fields); `text` writes the same fields after
the message, for a terminal.

Secrets never reach a line: API keys (`tm-…`), Stripe keys (`sk_…`, `rk_…`, `whsec_…`)
and bearer tokens are masked in the message and the traceback, whatever logged them.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import os
import re
from collections.abc import Iterator

CONTEXT_FIELDS = ("request_id", "client_request_id", "job_id", "tenant")
_context: dict[str, contextvars.ContextVar[str]] = {
    name: contextvars.ContextVar(f"log_{name}", default="") for name in CONTEXT_FIELDS
}

# A key pattern masks the whole secret, keeping a short prefix to tell keys apart.
_SECRETS = re.compile(
    r"(?P<keep>tm-[A-Za-z0-9]{4}|(?:sk|rk)_(?:live|test)_|whsec_|[Bb]earer\s+)"
    r"(?P<secret>[A-Za-z0-9_\-\.=+/]{6,})"
)
MASK = "[redacted]"
# A client's request id is echoed into logs and headers only if it looks like an id.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def redact(text: str) -> str:
    return _SECRETS.sub(lambda found: found.group("keep") + MASK, text)


def current(name: str) -> str:
    return _context[name].get()


def bind(**fields: str | None) -> list[tuple[contextvars.ContextVar, contextvars.Token]]:
    """Set fields for the rest of this context; returns what `unbind` needs to undo it."""
    tokens = []
    for name, value in fields.items():
        var = _context[name]
        tokens.append((var, var.set(str(value) if value else "")))
    return tokens


def unbind(tokens: list[tuple[contextvars.ContextVar, contextvars.Token]]) -> None:
    for var, token in reversed(tokens):
        with contextlib.suppress(ValueError):  # set in another context: leave it
            var.reset(token)


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    tokens = bind(**fields)
    try:
        yield
    finally:
        unbind(tokens)


def sane_client_request_id(value: str | bytes | None) -> str:
    """The client's x-request-id when it is a plain id, else ""."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value and SANE_REQUEST_ID.fullmatch(value):
        return value
    return ""


class ContextFilter(logging.Filter):
    """Adds the context fields to every record (handlers' filter: all loggers get it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in CONTEXT_FIELDS:
            if not getattr(record, name, ""):
                setattr(record, name, _context[name].get())
        return True


def _message(record: logging.LogRecord, formatter: logging.Formatter) -> tuple[str, str]:
    message = record.getMessage()
    detail = ""
    if record.exc_info:
        detail = formatter.formatException(record.exc_info)
    elif record.exc_text:
        detail = record.exc_text
    if record.stack_info:
        detail = (detail + "\n" if detail else "") + formatter.formatStack(record.stack_info)
    return redact(message), redact(detail)


def _fields(record: logging.LogRecord) -> dict[str, str]:
    found = {}
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, "") or _context[name].get()
        if value:
            found[name] = value
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, context."""

    def format(self, record: logging.LogRecord) -> str:
        message, detail = _message(record, self)
        line = {
            "time": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            **_fields(record),
            "process": record.process,
        }
        if detail:
            line["exc_info"] = detail
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message [request_id=… job_id=…]`, masked like the JSON lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        message, detail = _message(record, self)
        fields = " ".join(f"{name}={value}" for name, value in _fields(record).items())
        line = f"{self.formatTime(record)} {record.levelname} {record.name} {message}"
        if fields:
            line += f" [{fields}]"
        return line + ("\n" + detail if detail else "")


LOG_FORMATS = {"json": JsonFormatter, "text": TextFormatter}


def log_format() -> str:
    """LOG_FORMAT, by default as the platform's settings choose it: text under DEBUG."""
    debug = os.environ.get("DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    default = "text" if debug else "json"
    value = os.environ.get("LOG_FORMAT", default).strip().lower() or default
    if value not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be json or text, got {value!r}")
    return value


def make_formatter(kind: str | None = None) -> logging.Formatter:
    return LOG_FORMATS[kind or log_format()]()


def format_handlers_of(logger: logging.Logger, kind: str | None = None) -> None:
    """Give every handler of `logger` our formatter and context (Celery's own handlers)."""
    for handler in logger.handlers:
        handler.setFormatter(make_formatter(kind))
        if not any(isinstance(found, ContextFilter) for found in handler.filters):
            handler.addFilter(ContextFilter())


def connect_celery_logging() -> None:
    """Celery sets its handlers up after the app is loaded: format them as ours."""
    from celery.signals import after_setup_logger, after_setup_task_logger

    def format_them(logger: logging.Logger, **kwargs) -> None:
        format_handlers_of(logger)

    for signal in (after_setup_logger, after_setup_task_logger):
        signal.connect(format_them, weak=False, dispatch_uid="tokenmill.format_handlers")
