"""The API never answers in HTML.

Django answers an unmatched URL with its 404 page (with DEBUG on, the page that lists
every route) and a plain view's refused method with an empty 405. Under /v1/ and
/api/v1/ both become OpenAI's error shape, whatever DEBUG says, so an SDK always
gets an error it can read.

Sync and async alike: under ASGI the gateway's async views must not be pushed into a
thread by a sync-only middleware.
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


class ApiErrorShapeMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        return api_error_shape(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return api_error_shape(request, await self.get_response(request))
