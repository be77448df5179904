"""What the user must see: a suspended organization, "just now", and the overview's figures."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tenants import services
from tenants.models import ApiKey
from tests.factories import make_key
from tokenmill.dashboard.templatetags.dashboard_tags import ago


@pytest.fixture
def suspended(acme):
    services.organization_set_status(tenant=acme, status="suspended")
    return acme


@pytest.mark.parametrize("url", ["/", "/api-keys/", "/members/", "/datasets/", "/models/"])
@pytest.mark.django_db
def test_a_suspended_organization_shows_a_banner_with_whom_to_contact(
    alice_client, suspended, settings, url, tiny_chat
):
    settings.SUPPORT_EMAIL = "ops@tokenmill.example"

    page = alice_client.get(url).content.decode()

    assert "<strong>Acme is suspended.</strong>" in page
    assert "nothing can be changed, its API keys are refused" in page
    assert '<a href="mailto:ops@tokenmill.example">ops@tokenmill.example</a>' in page
    assert "data-read-only" in page  # the page's script disables any form left


@pytest.mark.django_db
def test_without_a_support_address_the_banner_names_the_operator(alice_client, suspended):
    page = alice_client.get("/").content.decode()

    assert "contact the operator of this Tokenmill installation" in page
    assert "mailto:" not in page


@pytest.mark.django_db
def test_a_suspended_organization_is_offered_no_change(alice_client, acme, alice, suspended):
    key = ApiKey.unscoped.get(prefix=make_key(acme, alice)[:12])

    home = alice_client.get("/").content.decode()
    keys = alice_client.get("/api-keys/").content.decode()
    members = alice_client.get("/members/").content.decode()

    assert "Create an API key" not in home
    assert "Create key" not in keys
    assert reverse("dashboard:api-key-revoke", args=[key.public_id]) not in keys
    assert "Invite a teammate" not in members
    assert "Leave<" not in members and "Remove<" not in members


@pytest.mark.django_db
def test_an_active_organization_has_no_banner(alice_client, acme):
    page = alice_client.get("/").content.decode()

    assert "is suspended" not in page
    assert "data-read-only" not in page


def test_under_a_minute_ago_reads_just_now():
    now = timezone.now()

    assert ago(now) == "just now"
    assert ago(now - timedelta(seconds=59)) == "just now"
    assert ago(now - timedelta(minutes=3)) == "3\xa0minutes ago"
    assert ago(None) == "—"


@pytest.mark.django_db
def test_a_key_used_seconds_ago_reads_just_now(alice_client, acme, alice):
    key = ApiKey.unscoped.get(prefix=make_key(acme, alice)[:12])
    ApiKey.unscoped.filter(pk=key.pk).update(last_used_at=timezone.now())

    page = alice_client.get("/api-keys/").content.decode()

    assert ">just now</time>" in page
    assert "0\xa0minutes ago" not in page
