"""Error answers: JSON in OpenAI's shape under /v1/ and /api/v1/ (DEBUG on or off),
the dashboard's own branded pages everywhere else."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import Client
from django.urls import include, path
from django.views.decorators.http import require_POST

from tokenmill.urls import handler403, handler404, handler500  # noqa: F401 - used by Django
from tokenmill.urls import urlpatterns as project_urlpatterns


@require_POST
def plain_post_only(request):
    return HttpResponse("ok")


def refuses(request):
    raise PermissionDenied


def fails(request):
    raise RuntimeError("boom")


# This module is also a URLconf (see the `urls` markers): the project's routes, plus a
# plain Django view under /v1/ like the streaming gateway's, and pages that fail.
urlpatterns = [
    path("v1/plain", plain_post_only),
    path("v1/fails", fails),
    path("dashboard-refuses/", refuses),
    path("dashboard-fails/", fails),
    path("", include(project_urlpatterns)),
]

ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.mark.parametrize("url", ["/v1/nothing", "/v1/models/x/y", "/api/v1/nothing", "/v1/"])
@pytest.mark.django_db
def test_an_unknown_api_url_is_json_never_the_route_listing(client, debug, url):
    response = client.get(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == "unknown_url"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == f"Unknown request URL: GET {url}."
    assert b"URLconf" not in response.content


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_plain_view_refusing_a_method_answers_405_in_the_api_shape(client, debug):
    response = client.get("/v1/plain")

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"] == {
        "message": "Method GET is not allowed on /v1/plain. Allowed: POST.",
        "type": "invalid_request_error",
        "param": None,
        "code": "method_not_allowed",
    }


@pytest.mark.django_db
def test_a_drf_view_refusing_a_method_answers_405_in_the_api_shape(client, debug, alice_api):
    response = alice_api.delete("/api/v1/organization")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.json()["error"]["message"] == 'Method "DELETE" not allowed.'


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_an_api_crash_is_a_json_500():
    response = Client(raise_request_exception=False).get("/v1/fails")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response.json()["error"]["type"] == "server_error"


@pytest.mark.django_db
def test_an_unknown_dashboard_page_is_the_branded_404(alice_client):
    response = alice_client.get("/no-such-page/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page
    assert "This page does not exist, or you do not have access to it." in page
    assert 'class="topbar"' in page  # the site's own layout, with its navigation
    assert "Back to the dashboard" in page


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_refused_dashboard_page_is_the_branded_403(alice_client):
    response = alice_client.get("/dashboard-refuses/")

    assert response.status_code == 403
    page = response.content.decode()
    assert "You do not have access to this" in page
    assert 'class="topbar"' in page


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_crashing_dashboard_page_is_the_branded_500(alice):
    client = Client(raise_request_exception=False)
    client.force_login(alice)

    response = client.get("/dashboard-fails/")

    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong" in page
    assert 'class="topbar"' in page
    assert "Traceback" not in page


def test_under_asgi_the_middleware_stays_async_and_answers_the_same():
    from asgiref.sync import iscoroutinefunction
    from django.test import RequestFactory

    from tokenmill.api.middleware import ApiErrorShapeMiddleware

    async def missing_page(request):
        return HttpResponse("<h1>Page not found</h1>", status=404)

    middleware = ApiErrorShapeMiddleware(missing_page)
    assert iscoroutinefunction(middleware)  # an async view is not pushed into a thread

    request = RequestFactory().get("/v1/nothing")
    # Its own thread and loop: a browser test may keep a loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        response = pool.submit(asyncio.run, middleware(request)).result()

    assert response.status_code == 404
    assert json.loads(response.content)["error"]["code"] == "unknown_url"
