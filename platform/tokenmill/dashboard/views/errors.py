"""The dashboard's error pages (403, 404, 500), in the site's own layout."""

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.template.loader import render_to_string


def forbidden(request: HttpRequest, message: str = "") -> HttpResponse:
    return render(
        request,
        "dashboard/error.html",
        {
            "title": "You do not have access to this",
            "message": message or "Your role in this organization does not allow this action.",
            "code": 403,
        },
        status=403,
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(
        request,
        "dashboard/error.html",
        {
            "title": "Not found",
            "message": "This page does not exist, or you do not have access to it.",
            "code": 404,
        },
        status=404,
    )


def server_error(request: HttpRequest) -> HttpResponse:
    # Rendered without the request, so no context processor touches the database
    # that may be the very thing that failed.
    body = render_to_string(
        "dashboard/error.html",
        {
            "title": "Something went wrong",
            "message": "We could not process this request. Please try again.",
            "code": 500,
        },
    )
    return HttpResponseServerError(body)
