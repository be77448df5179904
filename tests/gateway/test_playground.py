"""The dashboard's playground: the models it offers, and chat through the gateway's own path."""

from contextlib import contextmanager

import httpx
from django.test import Client

from tenants.models import Role
from tests.factories import MembershipFactory, UserFactory
from tests.gateway.conftest import make_fine_tuned_model
from tests.gateway.helpers import chat, sse_events


@contextmanager
def _session(gateway, user):
    """An httpx client holding `user`'s session and CSRF cookies for the live server."""
    django_client = Client()
    django_client.force_login(user)
    with httpx.Client(base_url=gateway.url, timeout=30) as session:
        session.cookies.set("sessionid", django_client.cookies["sessionid"].value)
        page = session.get("/playground/")
        assert page.status_code == 200
        session.headers["x-csrftoken"] = session.cookies["csrftoken"]
        yield session


def test_the_page_offers_base_chat_models_and_only_our_fine_tunes(
    backend, gateway, alice, acme, globex, artifact_store
):
    ours = make_fine_tuned_model(acme)
    theirs = make_fine_tuned_model(globex)
    with _session(gateway, alice) as session:
        page = session.get("/playground/").text
    assert 'value="tiny-chat"' in page
    assert f'value="{ours.model_id}"' in page
    assert theirs.model_id not in page
    assert 'value="all-MiniLM-L6-v2"' not in page  # an embedding model cannot chat


def test_a_chat_streams_through_the_gateway_with_the_session(backend, gateway, alice):
    with _session(gateway, alice) as session:
        response = session.post(
            "/playground/chat",
            json=chat(stream=True, stream_options={"include_usage": True}, temperature=0.2),
        )
    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    assert events[-2]["usage"]["completion_tokens"] == 16
    assert backend.state.requests[-1]["body"]["temperature"] == 0.2


def test_playground_errors_are_the_gateways_errors(
    backend, gateway, alice, acme, globex, artifact_store
):
    theirs = make_fine_tuned_model(globex)
    with _session(gateway, alice) as session:
        bad = session.post("/playground/chat", json=chat(temperature=7, stream=True))
        foreign = session.post("/playground/chat", json=chat(model=theirs.model_id, stream=True))
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == (
        "Invalid 'temperature': 7 is out of range; it must be between 0 and 2."
    )
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "model_not_found"
    assert backend.state.served == 0


def test_a_viewer_cannot_run_models(backend, gateway, acme):
    viewer = UserFactory(email="vera@example.com")
    MembershipFactory(tenant=acme, user=viewer, role=Role.VIEWER)
    with _session(gateway, viewer) as session:
        assert "view-only access" in session.get("/playground/").text
        response = session.post("/playground/chat", json=chat(stream=True))
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "Your role (viewer) cannot run models; it needs member or above."
    )


def test_no_session_no_chat(backend, gateway):
    response = httpx.post(gateway.url + "/playground/chat", json=chat())
    assert response.status_code == 403  # no session, so no CSRF token either
    assert backend.state.served == 0
