"""Creating organizations and the switcher in the navigation."""

import pytest
from django.urls import reverse

from tenants.models import Membership, Role
from tenants.services import organization_create
from tokenmill.dashboard.mixins import SESSION_KEY


@pytest.mark.django_db
def test_create_another_organization_and_land_in_it(alice_client, alice):
    response = alice_client.post(
        reverse("dashboard:organization-create"), {"name": "Acme Labs"}, follow=True
    )

    membership = Membership.unscoped.get(user=alice, tenant__name="Acme Labs")
    assert membership.role == Role.OWNER
    assert alice_client.session[SESSION_KEY] == membership.tenant.public_id
    page = response.content.decode()
    assert "Created Acme Labs. You are its owner." in page
    assert response.context["current_organization"] == membership.tenant


@pytest.mark.django_db
def test_an_organization_needs_a_name(alice_client):
    response = alice_client.post(reverse("dashboard:organization-create"), {"name": "  "})
    assert response.status_code == 400
    assert response.context["form"].errors["name"] == ["The organization needs a name."]
    assert 'id="id_name_error"' in response.content.decode()


@pytest.mark.django_db
def test_the_switcher_lists_my_organizations_and_switches(alice_client, alice, acme):
    labs = organization_create(name="Acme Labs", owner=alice)
    page = alice_client.get(reverse("dashboard:home")).content.decode()
    assert f'value="{labs.public_id}"' in page
    assert f'value="{acme.public_id}"' in page

    response = alice_client.post(
        reverse("dashboard:organization-switch"), {"organization": labs.public_id}, follow=True
    )

    assert response.context["current_organization"] == labs
    assert "Switched to Acme Labs." in response.content.decode()
    assert alice_client.session[SESSION_KEY] == labs.public_id


@pytest.mark.django_db
def test_the_switcher_refuses_an_organization_i_am_not_in(charlie_client, globex, acme):
    charlie_client.get(reverse("dashboard:home"))

    response = charlie_client.post(
        reverse("dashboard:organization-switch"), {"organization": acme.public_id}
    )

    assert response.status_code == 404
    assert charlie_client.session[SESSION_KEY] == globex.public_id
    assert "Acme" not in charlie_client.get(reverse("dashboard:home")).content.decode()


@pytest.mark.django_db
def test_switching_is_a_post(alice_client, acme):
    response = alice_client.get(
        reverse("dashboard:organization-switch"), {"organization": acme.public_id}
    )
    assert response.status_code == 405


@pytest.mark.django_db
def test_a_stale_session_organization_falls_back_to_one_of_mine(alice_client, globex, acme):
    session = alice_client.session
    session[SESSION_KEY] = globex.public_id  # e.g. alice was removed from it meanwhile
    session.save()

    response = alice_client.get(reverse("dashboard:home"))

    assert response.context["current_organization"] == acme
