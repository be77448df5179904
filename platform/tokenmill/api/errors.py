"""OpenAI's error shape for every API response that is not a success.

`{"error": {"message", "type", "param", "code"}}` with the status codes the official
SDK maps to its exceptions (400 BadRequestError, 401 AuthenticationError,
403 PermissionDeniedError, 404 NotFoundError, 409 ConflictError, 429 RateLimitError).
"""

from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from tenants.errors import TenantError

_TYPE_BY_STATUS = {
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    429: "rate_limit_error",
}


MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. Provide it in an Authorization header using "
    "Bearer auth (Authorization: Bearer YOUR_KEY)."
)


class ApiError(exceptions.APIException):
    """Raise from a view to answer with a specific status, message, param and code."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 400,
        code: str | None = None,
        param: str | None = None,
    ):
        super().__init__(detail=message)
        self.status_code = status_code
        self.error_code = code
        self.param = param


def error_body(
    message: str,
    *,
    status_code: int,
    code: str | None = None,
    param: str | None = None,
    error_type: str | None = None,
) -> dict:
    error_type = error_type or _TYPE_BY_STATUS.get(status_code)
    if error_type is None:
        error_type = "server_error" if status_code >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    message: str, *, status_code: int, code: str | None = None, param: str | None = None
) -> JsonResponse:
    return JsonResponse(
        error_body(message, status_code=status_code, code=code, param=param), status=status_code
    )


def _first_validation_error(detail, path: str = "") -> tuple[str | None, str]:
    """Flatten DRF's nested validation errors to the first (param, message)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                name = path
            elif isinstance(key, int):  # a list item: scopes[0]
                name = f"{path}[{key}]"
            else:
                name = f"{path}.{key}" if path else str(key)
            return _first_validation_error(value, name)
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, (dict, list)):
            return _first_validation_error(first, f"{path}[0]" if path else path)
        return (path or None), str(first)
    return (path or None), str(detail)


def exception_handler(exc, context):
    # Imported here: rest_framework.views loads the parser classes, and the JSON parser
    # raises ApiError from this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, TenantError):
        return Response(
            error_body(
                exc.message,
                status_code=exc.status,
                code=exc.code,
                param=exc.param,
                error_type=getattr(exc, "error_type", None),
            ),
            status=exc.status,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handler answers in the same shape
    code, param = None, None
    if isinstance(exc, ApiError):
        message, code, param = str(exc.detail), exc.error_code, exc.param
    elif isinstance(exc, exceptions.ValidationError):
        param, message = _first_validation_error(exc.detail)
        message = f"{param}: {message}" if param and not message.startswith(param) else message
        code = "invalid_value"
    elif isinstance(exc, exceptions.NotAuthenticated):
        message, code = MISSING_KEY_MESSAGE, "missing_api_key"
    elif isinstance(exc, exceptions.AuthenticationFailed):
        message = str(exc.detail)
        code = getattr(exc, "error_code", None) or "invalid_api_key"
    elif isinstance(exc, exceptions.Throttled):
        message, code = str(exc.detail), "rate_limit_exceeded"
    elif isinstance(exc, exceptions.MethodNotAllowed):
        message, code = str(exc.detail), "method_not_allowed"
    elif isinstance(exc, exceptions.UnsupportedMediaType | exceptions.ParseError):
        message, code = str(exc.detail), "invalid_request"
    else:
        message = str(exc.detail)
        code = exc.default_code if isinstance(exc.default_code, str) else None
    response.data = error_body(message, status_code=response.status_code, code=code, param=param)
    return response


def api_not_found(request, exception=None):
    return error_response(
        f"Unknown request URL: {request.method} {request.path}.",
        status_code=status.HTTP_404_NOT_FOUND,
        code="unknown_url",
    )


def api_forbidden(request, exception=None):
    return error_response(
        "You do not have access to this resource.",
        status_code=status.HTTP_403_FORBIDDEN,
        code="permission_denied",
    )


def api_method_not_allowed(request, allowed: str = ""):
    response = error_response(
        f"Method {request.method} is not allowed on {request.path}."
        + (f" Allowed: {allowed}." if allowed else ""),
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        code="method_not_allowed",
    )
    if allowed:
        response["Allow"] = allowed
    return response


def api_server_error(request):
    return error_response(
        "The server had an error while processing your request. Retry, and contact support if it persists.",
        status_code=500,
        code="internal_error",
    )
