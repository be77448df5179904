"""Sign-up, log-in and log-out."""

import pytest
from django.urls import reverse

from tenants.models import Membership, Organization, Role, User
from tests.factories import PASSWORD

SIGNUP = {
    "name": "Erin Example",
    "email": "Erin@Example.com",
    "password": PASSWORD,
    "organization_name": "Initech",
}


@pytest.mark.django_db
def test_sign_up_creates_the_user_and_their_organization_and_logs_in(client, settings, tiny_chat):
    response = client.post(reverse("dashboard:signup"), SIGNUP, follow=True)

    assert response.redirect_chain == [(reverse("dashboard:home"), 302)]
    user = User.objects.get(email="erin@example.com")
    assert (user.first_name, user.last_name) == ("Erin", "Example")
    assert user.check_password(PASSWORD)
    membership = Membership.unscoped.get(user=user)
    assert (membership.tenant.name, membership.role) == ("Initech", Role.OWNER)
    assert response.wsgi_request.user == user
    page = response.content.decode()
    assert "Welcome to Tokenmill! Initech is ready." in page
    assert f"{settings.PUBLIC_URL}/v1" in page  # how to call the API
    assert "tiny-chat" in page  # the models of the overview


@pytest.mark.django_db
def test_sign_up_with_a_taken_address_shows_the_error_on_the_email_field(client, alice):
    response = client.post(reverse("dashboard:signup"), {**SIGNUP, "email": "ALICE@example.com"})

    assert response.status_code == 400
    assert response.context["form"].errors["email"] == [
        "An account with this e-mail address already exists. Log in instead."
    ]
    assert 'id="id_email_error"' in response.content.decode()
    assert not Organization.objects.filter(name="Initech").exists()


@pytest.mark.django_db
def test_sign_up_with_a_weak_password_shows_django_validators_messages(client):
    response = client.post(reverse("dashboard:signup"), {**SIGNUP, "password": "12345"})

    assert response.status_code == 400
    errors = response.context["form"].errors["password"]
    assert "This password is too common." in errors
    assert any("too short" in error for error in errors)
    assert "This password is entirely numeric." in errors
    assert 'id="id_password_error"' in response.content.decode()
    assert not User.objects.filter(email="erin@example.com").exists()


@pytest.mark.django_db
def test_a_password_like_the_email_is_refused(client):
    response = client.post(
        reverse("dashboard:signup"),
        {**SIGNUP, "email": "zanzibar.quokka@example.com", "password": "zanzibar.quokka"},
    )

    assert response.status_code == 400
    assert any("too similar" in e for e in response.context["form"].errors["password"])


@pytest.mark.django_db
@pytest.mark.parametrize("organization_name", ["", "   "])
def test_sign_up_without_an_organization_name_writes_nothing(client, organization_name):
    response = client.post(
        reverse("dashboard:signup"), {**SIGNUP, "organization_name": organization_name}
    )

    assert response.status_code == 400
    assert response.context["form"].errors["organization_name"] == [
        "The organization needs a name."
    ]
    assert 'id="id_organization_name_error"' in response.content.decode()
    assert not User.objects.exists()


@pytest.mark.django_db
def test_logged_in_people_are_sent_home_from_sign_up(alice_client):
    response = alice_client.get(reverse("dashboard:signup"))
    assert response.status_code == 302
    assert response.url == reverse("dashboard:home")


@pytest.mark.django_db
def test_pages_need_a_login(client):
    response = client.get(reverse("dashboard:api-keys"))
    assert response.status_code == 302
    assert response.url == f"{reverse('dashboard:login')}?next=/api-keys/"


@pytest.mark.django_db
def test_log_in_with_any_case_of_the_address_and_return_to_next(client, alice):
    response = client.post(
        reverse("dashboard:login"),
        {"username": "Alice@Example.COM", "password": PASSWORD, "next": "/members/"},
    )
    assert response.status_code == 302
    assert response.url == "/members/"
    assert client.get("/members/").status_code == 200


@pytest.mark.django_db
def test_log_in_refuses_an_offsite_next(client, alice):
    response = client.post(
        reverse("dashboard:login"),
        {"username": "alice@example.com", "password": PASSWORD, "next": "https://evil.test/"},
    )
    assert response.status_code == 302
    assert response.url == reverse("dashboard:home")


@pytest.mark.django_db
def test_a_wrong_password_says_so_on_the_form(client, alice):
    response = client.post(
        reverse("dashboard:login"), {"username": "alice@example.com", "password": "nope"}
    )
    assert response.status_code == 400
    assert "That e-mail address and password do not match an account." in (
        response.content.decode()
    )
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_log_out_is_a_post(alice_client):
    assert alice_client.get(reverse("dashboard:logout")).status_code == 405

    response = alice_client.post(reverse("dashboard:logout"))

    assert response.status_code == 302
    assert response.url == reverse("dashboard:login")
    assert alice_client.get(reverse("dashboard:home")).status_code == 302


@pytest.mark.django_db
def test_someone_without_an_organization_is_asked_to_create_one(client):
    client.force_login(User.objects.create_user(email="lonely@example.com", password=PASSWORD))
    response = client.get(reverse("dashboard:home"))
    assert response.status_code == 302
    assert response.url == reverse("dashboard:organization-create")
