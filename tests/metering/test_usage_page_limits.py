"""The usage page's limits: after requests the real gateway admitted, what is left this
minute for the organization and for a key with its own limits, on both stores."""

import re

import httpx
import pytest
from django.test import Client

from tenants.models import ApiKey
from tests.factories import make_key
from tests.gateway.helpers import chat, wait_for
from tests.metering.helpers import fire
from tests.metering.test_windows import fresh_minute
from tokenmill.metering import windows


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def _left(html: str, scope: str, dimension: str) -> str:
    row = html.split(f'data-limit="{scope}"')[1].split("</tr>")[0]
    return re.search(rf'data-left="{dimension}">([^<]*)<', row).group(1)


def test_the_page_shows_what_is_left_after_admitted_requests(
    store, backend, gateway, acme, alice, alice_client, settings
):
    settings.ORG_REQUESTS_PER_MINUTE, settings.ORG_TOKENS_PER_MINUTE = 600, 1_000_000
    plaintext = make_key(
        acme, alice, name="limited", requests_per_minute=10, tokens_per_minute=5000
    )
    make_key(acme, alice, name="unlimited")
    key = ApiKey.objects.for_tenant(acme).get(prefix=plaintext[:12])
    fresh_minute()

    headers = {"authorization": f"Bearer {plaintext}"}
    answers = [
        httpx.post(gateway.url + "/v1/chat/completions", json=chat(max_tokens=16), headers=headers)
        for _ in range(3)
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    used = sum(answer.json()["usage"]["total_tokens"] for answer in answers)
    assert used > 0
    listed = fire(gateway.url + "/v1/models", plaintext, count=2)
    assert [answer.status_code for answer in listed] == [200, 200]
    # Settling (the reservation given back down to the real count) ends after the reply.
    page_limits = lambda: alice_client.get("/usage/").context["limits"]  # noqa: E731
    wait_for(lambda: page_limits()[1]["usage"].tokens_used == used, what="the settled tokens")

    response = alice_client.get("/usage/")
    rows = response.context["limits"]
    assert [(row["kind"], row["key"]) for row in rows] == [("organization", None), ("key", key)]
    org, own = rows[0]["usage"], rows[1]["usage"]
    assert (own.requests_left, own.tokens_left) == (5, 5000 - used)
    assert (org.requests_left, org.tokens_left) == (595, 1_000_000 - used)
    html = response.content.decode()
    assert _left(html, key.public_id, "requests") == "5"
    assert _left(html, key.public_id, "tokens") == f"{5000 - used:,}"
    assert _left(html, "organization", "requests") == "595"
    assert _left(html, "organization", "tokens") == f"{1_000_000 - used:,}"
    # What the gateway told the client last agrees (the key is the tightest scope).
    assert min(int(a.headers["x-ratelimit-remaining-requests"]) for a in listed) == 5
    assert windows.current_usage([org.limit])[0].requests_used == 5


def test_an_organization_without_limits_says_so(alice_client, acme):
    acme.requests_per_minute = 0
    acme.tokens_per_minute = 0
    acme.save(update_fields=["requests_per_minute", "tokens_per_minute"])

    response = alice_client.get("/usage/")

    (row,) = response.context["limits"]
    assert row["usage"] is None
    assert "No limit" in response.content.decode().split('data-limit="organization"')[1]
