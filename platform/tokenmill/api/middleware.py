"""The API never answers in HTML.

Django answers an unmatched URL with its 404 page (with DEBUG on, the page that lists
every route) and a plain view's refused method with an empty 405. Under /v1/ and
/api/v1/ both become OpenAI's error shape, whatever DEBUG says, so an SDK always
gets an error it can read.

Sync and async alike (AroundMiddleware): under ASGI the gateway's async views must not
be pushed into a thread by a sync-only middleware.
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from tokenmill.api.errors import api_method_not_allowed, api_not_found

API_PREFIXES = ("/v1/", "/api/v1/")


def api_error_shape(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if not request.path.startswith(API_PREFIXES):
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response
    if response.status_code == 404:
        return api_not_found(request)
    if response.status_code == 405:
        return api_method_not_allowed(request, allowed=response.get("Allow", ""))
    return response


class AroundMiddleware:
    """A middleware for sync and async stacks alike: `before` the view, `after` it.

    Under ASGI a sync-only middleware would push the gateway's async views into a
    thread; this one is async there, and sync under WSGI."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def before(self, request: HttpRequest):
        """Runs first; what it returns is handed to `after`."""
        return None

    def after(self, request: HttpRequest, response: HttpResponse, state) -> HttpResponse:
        return response

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        state = self.before(request)
        return self.after(request, self.get_response(request), state)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        state = self.before(request)
        return self.after(request, await self.get_response(request), state)


class ApiErrorShapeMiddleware(AroundMiddleware):
    def after(self, request: HttpRequest, response: HttpResponse, state) -> HttpResponse:
        return api_error_shape(request, response)
