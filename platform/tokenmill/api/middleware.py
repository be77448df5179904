"""The API never answers in HTML.

Django answers an unmatched URL with its 404 page (with DEBUG on, the page that lists
every route) and a plain view's refused method with an empty 405. Under /v1/ and
/api/v1/ both become OpenAI's error shape, whatever DEBUG says, so an SDK always
gets an error it can read.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tokenmill.api.errors import api_method_not_allowed, api_not_found

API_PREFIXES = ("/v1/", "/api/v1/")


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


class ApiErrorShapeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIXES) or _is_json(response):
            return response
        if response.status_code == 404:
            return api_not_found(request)
        if response.status_code == 405:
            return api_method_not_allowed(request, allowed=response.get("Allow", ""))
        return response
