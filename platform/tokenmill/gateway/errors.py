"""Errors the gateway answers with, in OpenAI's shape (see tokenmill.api.errors)."""

import orjson

from tokenmill.api.errors import error_body


class GatewayError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str | None = "invalid_value",
        param: str | None = None,
        headers: dict[str, str] | None = None,
        error_type: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.error_type = error_type

    def copy(self) -> "GatewayError":
        return GatewayError(
            self.message,
            status=self.status,
            code=self.code,
            param=self.param,
            headers=self.headers,
            error_type=self.error_type,
        )

    def body(self) -> dict:
        return error_body(
            self.message,
            status_code=self.status,
            code=self.code,
            param=self.param,
            error_type=self.error_type,
        )

    def json_bytes(self) -> bytes:
        return orjson.dumps(self.body())

    def sse_bytes(self) -> bytes:
        return b"data: " + self.json_bytes() + b"\n\n"


def invalid(param: str | None, message: str, *, code: str = "invalid_value") -> GatewayError:
    return GatewayError(message, status=400, code=code, param=param)


def model_not_found(model_id: str) -> GatewayError:
    # Same words as /v1/models/<id> (tokenmill.catalog.api), for a missing model and for
    # one that belongs to another organization alike.
    return GatewayError(
        f"The model {model_id!r} does not exist or you do not have access to it.",
        status=404,
        code="model_not_found",
        param="model",
    )


def model_unavailable(model_id: str, reason: str) -> GatewayError:
    return GatewayError(
        f"The model {model_id!r} is unavailable right now: {reason} Try again in a few seconds.",
        status=503,
        code="model_unavailable",
    )


def model_timeout(model_id: str, reason: str) -> GatewayError:
    return GatewayError(
        f"The model {model_id!r} timed out: {reason}",
        status=504,
        code="model_timeout",
    )
