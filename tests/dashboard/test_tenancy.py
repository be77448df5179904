"""Another organization's objects answer 404; forms need their CSRF token.

The dashboard matrix walks the dashboard's URLconf: every page must be in
DASHBOARD_PAGES, and each is tried by charlie (globex) with every method its view
implements, against acme's objects, with acme's rows snapshotted before and after.
"""

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import URLPattern, resolve, reverse
from django.utils import timezone

from tenants import services
from tenants.models import ApiKey, Invitation, Membership, Role
from tests.api.test_cross_tenant import snapshot, view_methods
from tests.factories import make_key
from tests.tenants.test_scoping import TENANT_OWNED
from tokenmill.batches.models import Batch
from tokenmill.dashboard import urls as dashboard_urls
from tokenmill.dashboard.mixins import TenantMixin
from tokenmill.finetuning.models import FineTunedModel, JobCheckpoint

NOT_FOUND = "This page does not exist, or you do not have access to it."


@dataclass(frozen=True)
class ObjectPage:
    """A page about one of acme's objects (by its public id): charlie gets a 404."""

    object: str  # a key of acme_world


@dataclass(frozen=True)
class TenantPage:
    """A page of the caller's own organization: charlie sees and changes nothing of acme's."""


@dataclass(frozen=True)
class TokenPage:
    """A page opened by a secret token (an invitation link): the token is the credential,
    so its holder may see whom it invites; it must not let anyone else into acme."""

    object: str


DASHBOARD_PAGES = {
    "home": TenantPage(),
    "signup": TenantPage(),
    "login": TenantPage(),
    "logout": TenantPage(),
    "organization-create": TenantPage(),
    "organization-switch": TenantPage(),
    "members": TenantPage(),
    "member-invite": TenantPage(),
    "member-role": ObjectPage("membership"),
    "member-remove": ObjectPage("membership"),
    "invitation-revoke": ObjectPage("invitation"),
    "invitation-accept": TokenPage("invitation_token"),
    "api-keys": TenantPage(),
    "api-key-revoke": ObjectPage("api_key"),
    "datasets": TenantPage(),
    "dataset-detail": ObjectPage("file"),
    "dataset-status": ObjectPage("file"),
    "dataset-delete": ObjectPage("file"),
    "dataset-download": ObjectPage("file"),
    "batches": TenantPage(),
    "batch-detail": ObjectPage("batch"),
    "batch-status": ObjectPage("batch"),
    "batch-cancel": ObjectPage("batch"),
    "jobs": TenantPage(),
    "job-create": TenantPage(),
    "job-estimate": TenantPage(),
    "job-detail": ObjectPage("job"),
    "job-status": ObjectPage("job"),
    "job-cancel": ObjectPage("job"),
    "playground": TenantPage(),
    "playground-chat": TenantPage(),
    "usage": TenantPage(),
    "checkpoint-model": ObjectPage("checkpoint"),
    "models": TenantPage(),
    "model-delete": ObjectPage("model"),
    "billing": TenantPage(),
    "billing-checkout": TenantPage(),
}


def _dashboard_url(name: str, object_id: str | None = None) -> str:
    return reverse(f"dashboard:{name}", args=[object_id] if object_id is not None else [])


def _page_url(name: str) -> str:
    spec = DASHBOARD_PAGES[name]
    return _dashboard_url(name, "x" if isinstance(spec, ObjectPage | TokenPage) else None)


def _cases(kind: type) -> list[tuple[str, str]]:
    return [
        (name, method)
        for name, spec in DASHBOARD_PAGES.items()
        if isinstance(spec, kind)
        for method in view_methods(_page_url(name))
    ]


OBJECT_CASES = _cases(ObjectPage)
TENANT_PAGE_CASES = _cases(TenantPage)
TOKEN_CASES = _cases(TokenPage)


def test_every_dashboard_page_is_in_the_matrix():
    names = {entry.name for entry in dashboard_urls.urlpatterns if isinstance(entry, URLPattern)}
    assert len(names) == len(dashboard_urls.urlpatterns), "a dashboard route has no name"
    missing = sorted(names - set(DASHBOARD_PAGES))
    assert not missing, f"add these dashboard pages to DASHBOARD_PAGES: {missing}"
    stale = sorted(set(DASHBOARD_PAGES) - names)
    assert not stale, f"these DASHBOARD_PAGES entries name no page: {stale}"
    checked = {name for name, _ in OBJECT_CASES + TENANT_PAGE_CASES + TOKEN_CASES}
    assert checked == set(DASHBOARD_PAGES), sorted(set(DASHBOARD_PAGES) - checked)
    for name in DASHBOARD_PAGES:
        assert resolve(_page_url(name)).url_name == name


@pytest.fixture
def acme_world(acme, alice, bob, artifact_store) -> dict[str, str]:
    """One of each of acme's objects, by public id (and the invitation's token)."""
    from tests.finetuning.conftest import make_training_file
    from tokenmill.finetuning import services as finetuning_services
    from tokenmill.finetuning.params import JobRequest

    key = ApiKey.objects.for_tenant(acme).get(prefix=make_key(acme, alice)[:12])
    invitation, token = services.member_invite(tenant=acme, actor=None, email="g@example.com")
    training_file = make_training_file(acme)
    job = finetuning_services.job_create(
        tenant=acme, request=JobRequest(model="tiny-chat", training_file=training_file.public_id)
    )
    checkpoint = JobCheckpoint.objects.create(
        tenant=acme,
        job=job,
        step_number=4,
        epoch=1,
        fine_tuned_model_checkpoint="ft:tiny-chat:acme::x:ckpt-step-4",
        artifact_key="jobs/x/checkpoints/step-4",
    )
    model = FineTunedModel.objects.create(
        model_id="ft:tiny-chat:acme::x",
        tenant=acme,
        job=job,
        base_model=job.base_model,
        training_type=job.training_type,
        artifact_key="jobs/x/final",
    )
    batch = Batch.objects.for_tenant(acme).create(
        tenant=acme,
        endpoint=Batch.Endpoint.CHAT,
        input_file=training_file,
        expires_at=timezone.now() + timedelta(hours=24),
    )
    return {
        "organization": acme.public_id,
        "batch": batch.public_id,
        "api_key": key.public_id,
        "invitation": invitation.public_id,
        "invitation_token": token,
        "membership": Membership.objects.for_tenant(acme).get(user=bob).public_id,
        "file": training_file.public_id,
        "job": job.public_id,
        "checkpoint": checkpoint.public_id,
        "model": model.model_id,
    }


def _hostile_body(world: dict[str, str]) -> dict:
    """What a form post would carry to reach acme's objects if the scoping let it."""
    return {
        "name": "Pwned",
        "role": Role.OWNER,
        "email": "mallory@example.com",
        "scopes": ["models"],
        "organization": world["organization"],
        "training_file": world["file"],
        "validation_file": world["file"],
        "model": "tiny-chat",
    }


def _request(client: Client, method: str, url: str, body: dict):
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    if method == "post":
        return client.post(url, body)
    return getattr(client, method)(
        url, urlencode(body, doseq=True), content_type="application/x-www-form-urlencoded"
    )


def _references_to(tenant, world_rows) -> list[str]:
    """Rows of other tenants whose foreign keys point at `tenant`'s rows."""
    owned = {
        (label, row["id"])
        for label, rows in world_rows.items()
        if label != "organization"
        for row in rows
    }
    found = []
    for model in TENANT_OWNED:
        links = [
            field
            for field in model._meta.fields
            if field.is_relation and field.related_model in TENANT_OWNED
        ]
        for row in model.unscoped.exclude(tenant=tenant).values("id", *(f.attname for f in links)):
            for field in links:
                if (field.related_model._meta.label, row[field.attname]) in owned:
                    found.append(f"{model._meta.label} {row['id']}.{field.name}")
    return found


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), OBJECT_CASES)
def test_dashboard_pages_of_acmes_objects_answer_404_to_charlie(
    charlie_client, acme, acme_world, name, method
):
    object_id = acme_world[DASHBOARD_PAGES[name].object]
    before = snapshot(acme)

    theirs = _request(
        charlie_client, method, _dashboard_url(name, object_id), _hostile_body(acme_world)
    )

    assert snapshot(acme) == before, f"charlie's {method.upper()} changed acme's rows"
    missing = _request(charlie_client, method, _dashboard_url(name, "nothing-here"), {})
    assert theirs.status_code == missing.status_code == 404
    assert NOT_FOUND in theirs.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), TENANT_PAGE_CASES)
def test_charlies_own_pages_show_and_change_nothing_of_acmes(
    charlie_client, acme, acme_world, name, method
):
    before = snapshot(acme)

    response = _request(charlie_client, method, _dashboard_url(name), _hostile_body(acme_world))

    assert snapshot(acme) == before, f"charlie's {method.upper()} changed acme's rows"
    assert not _references_to(acme, before), "a globex row now points at acme's"
    assert response.status_code < 500
    page = response.content.decode()
    for marker in ("alice@example.com", "bob@example.com", "g@example.com", *acme_world.values()):
        assert marker not in page, (name, method, marker)


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), TOKEN_CASES)
def test_an_invitation_link_lets_no_one_else_into_acme(
    charlie_client, acme, acme_world, name, method
):
    before = snapshot(acme)
    url = _dashboard_url(name, acme_world[DASHBOARD_PAGES[name].object])

    response = _request(charlie_client, method, url, _hostile_body(acme_world))

    assert snapshot(acme) == before
    assert response.status_code < 500


@pytest.fixture
def acme_objects(acme, alice, bob) -> dict[str, str]:
    """The URLs of one of each of acme's objects."""
    key = ApiKey.unscoped.get(prefix=make_key(acme, alice)[:12])
    invitation, _ = services.member_invite(tenant=acme, actor=None, email="g@example.com")
    bob_membership = Membership.unscoped.get(tenant=acme, user=bob)
    return {
        "key revoke": reverse("dashboard:api-key-revoke", args=[key.public_id]),
        "member role": reverse("dashboard:member-role", args=[bob_membership.public_id]),
        "member remove": reverse("dashboard:member-remove", args=[bob_membership.public_id]),
        "invitation revoke": reverse("dashboard:invitation-revoke", args=[invitation.public_id]),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "what", ["key revoke", "member role", "member remove", "invitation revoke"]
)
def test_another_organizations_objects_are_not_found(charlie_client, acme_objects, what):
    response = charlie_client.post(acme_objects[what], {"role": Role.OWNER})

    assert response.status_code == 404
    assert "This page does not exist, or you do not have access to it." in (
        response.content.decode()
    )


@pytest.mark.django_db
def test_nothing_of_acme_changed_after_charlies_attempts(charlie_client, acme, acme_objects):
    for url in acme_objects.values():
        charlie_client.post(url, {"role": Role.OWNER})
        assert charlie_client.get(url).status_code in (404, 405)

    assert not ApiKey.unscoped.filter(tenant=acme, revoked_at__isnull=False).exists()
    assert Membership.unscoped.get(tenant=acme, user__email="bob@example.com").role == Role.MEMBER
    assert Invitation.unscoped.get(tenant=acme).status == Invitation.Status.PENDING


@pytest.mark.django_db
def test_charlie_sees_nothing_of_acme(charlie_client, acme_objects):
    for url in ("/", "/members/", "/api-keys/"):
        page = charlie_client.get(url).content.decode()
        for text in ("Acme", "alice@example.com", "bob@example.com", "g@example.com"):
            assert text not in page, (url, text)


@pytest.mark.django_db
def test_forms_need_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post(reverse("dashboard:api-keys"), {"name": "x", "scopes": ["models"]})

    assert response.status_code == 403
    assert not ApiKey.unscoped.exists()
    page = client.get(reverse("dashboard:api-keys")).content.decode()
    assert 'name="csrfmiddlewaretoken"' in page


def test_a_view_cannot_override_get_queryset():
    with pytest.raises(TypeError, match="define tenant_queryset"):

        class Unscoped(TenantMixin):
            def get_queryset(self):
                return ApiKey.unscoped.all()


@pytest.mark.django_db
def test_the_500_page_renders_without_touching_the_database(rf, django_assert_num_queries):
    from tokenmill.dashboard.views.errors import server_error

    with django_assert_num_queries(0):
        response = server_error(rf.get("/"))

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_a_suspended_organization_can_look_but_not_change_anything(alice_client, acme):
    from tenants import services

    services.organization_set_status(tenant=acme, status="suspended")
    assert alice_client.get("/api-keys/").status_code == 200
    response = alice_client.post("/api-keys/", {"name": "new", "scopes": ["models"]})
    assert response.status_code == 403
    assert (
        "Acme is suspended, so nothing can be changed. Contact support."
        in response.content.decode()
    )
