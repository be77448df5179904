"""Every Django response carries `x-request-id`; every log line of the request carries it.

The id is ours (`req_…`), like the gateway's; a client's own sane `x-client-request-id`
(or `x-request-id`) is logged beside it and echoed back. The request is counted and
timed by its URL pattern (never the raw path), and a 4xx or 5xx by its error code.

The first middleware, sync and async alike.
"""

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from gpu_inference import telemetry
from tokenmill.api.middleware import AroundMiddleware
from tokenmill.gateway.proxy import new_request_id
from tokenmill.observability import metrics

_ERROR_BODY_LIMIT = 64 * 1024


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return "/" + match.route
    if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unmatched"


def _error_fields(response: HttpResponse) -> tuple[str, str]:
    """(code, type) of an OpenAI-shaped error body, or ("", "")."""
    if response.streaming or not response.get("Content-Type", "").startswith("application/json"):
        return "", ""
    content = response.content
    if len(content) > _ERROR_BODY_LIMIT:
        return "", ""
    try:
        error = orjson.loads(content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    code, kind = error.get("code"), error.get("type")
    return (code if isinstance(code, str) else ""), (kind if isinstance(kind, str) else "")


class RequestObservationMiddleware(AroundMiddleware):
    def before(self, request: HttpRequest):
        request.request_id = new_request_id()
        request.client_request_id = telemetry.sane_client_request_id(
            request.headers.get("x-client-request-id") or request.headers.get("x-request-id")
        )
        # The tenant is bound once the view knows it; unbinding at the end puts it back
        # to nothing, so a thread that serves the next request starts clean.
        bound = telemetry.bind(
            request_id=request.request_id,
            client_request_id=request.client_request_id,
            tenant="",
            job_id="",
        )
        return metrics.begin("", request.method or ""), bound

    def after(self, request: HttpRequest, response: HttpResponse, state) -> HttpResponse:
        observation, bound = state
        response["x-request-id"] = request.request_id
        if request.client_request_id:
            response["x-client-request-id"] = request.client_request_id
        observation.route = _route(request)
        if response.status_code >= 400 and not observation.code:
            code, kind = _error_fields(response)
            observation.code = code
            observation.limit = kind if response.status_code == 429 else ""
        metrics.finish(observation, response.status_code)
        telemetry.unbind(bound)
        return response
