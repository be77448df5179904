"""Scoping fails closed: `Model.objects` refuses any query without a tenant, and what
must see every tenant says `Model.unscoped`. Django's own machinery (the console,
related managers, unique checks) keeps working through the default manager."""

import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.urls import reverse

from tenants.errors import TenantScopeError
from tenants.models import ApiKey, Membership
from tests.factories import UserFactory
from tests.tenancy import TENANT_OWNED

ROOT = Path(__file__).resolve().parents[2]


QUERIES_WITHOUT_A_TENANT = {
    "all": lambda objects: objects.all(),
    "filter": lambda objects: objects.filter(pk=1),
    "get": lambda objects: objects.get(pk=1),
    "first": lambda objects: objects.first(),
    "count": lambda objects: objects.count(),
    "exists": lambda objects: objects.exists(),
    "select_related": lambda objects: objects.select_related("tenant"),
    "select_for_update": lambda objects: objects.select_for_update(),
    "values_list": lambda objects: objects.values_list("pk", flat=True),
    "get_or_create": lambda objects: objects.get_or_create(pk=1),
    "in_bulk": lambda objects: objects.in_bulk([1]),
}


def test_every_tenant_owned_model_is_found():
    names = {model.__name__ for model in TENANT_OWNED}
    assert {
        "Membership",
        "Invitation",
        "ApiKey",
        "File",
        "FineTuningJob",
        "JobEvent",
        "JobCheckpoint",
        "FineTunedModel",
    } <= names


@pytest.mark.parametrize("model", TENANT_OWNED, ids=lambda model: model.__name__)
@pytest.mark.parametrize("query", sorted(QUERIES_WITHOUT_A_TENANT))
def test_objects_refuses_a_query_without_a_tenant(model, query, db):
    name = model.__name__
    message = (
        f"{name}.objects needs a tenant: use {name}.objects.for_tenant(tenant), or {name}.unscoped"
    )
    with pytest.raises(TenantScopeError, match=re.escape(message)):
        QUERIES_WITHOUT_A_TENANT[query](model.objects)


@pytest.mark.parametrize("model", TENANT_OWNED, ids=lambda model: model.__name__)
def test_for_tenant_and_unscoped_work_and_the_default_manager_is_unscoped(model, acme):
    assert model.objects.for_tenant(acme).count() == 0
    with pytest.raises(TenantScopeError, match="queried without a tenant"):
        model.objects.for_tenant(None)
    assert model.unscoped.count() >= 0
    # Django's default manager serves the console, related managers and unique checks.
    assert model._default_manager.name == "unscoped"
    assert model._base_manager.name != "objects"


def test_create_needs_a_tenant(acme):
    user = UserFactory()
    with pytest.raises(TenantScopeError, match=r"Membership.objects.create\(\) needs a tenant"):
        Membership.objects.create(user=user, role="member")
    assert Membership.objects.create(tenant=acme, user=user, role="member").pk


def test_related_managers_keep_working(acme, alice, alice_key):
    from tests.finetuning.conftest import make_training_file
    from tokenmill.finetuning import services as finetuning_services
    from tokenmill.finetuning.params import JobRequest

    training_file = make_training_file(acme)
    job = finetuning_services.job_create(
        tenant=acme, request=JobRequest(model="tiny-chat", training_file=training_file.public_id)
    )
    assert job.events.all().count() >= 1
    assert list(training_file.training_jobs.all()) == [job]
    assert acme.api_keys.get().created_by == alice
    assert alice.memberships.get().tenant == acme
    assert ApiKey.objects.for_tenant(acme).select_related("tenant").get().tenant == acme


IN_THE_CONSOLE = [model for model in TENANT_OWNED if model in admin.site._registry]


@pytest.mark.parametrize("model", IN_THE_CONSOLE, ids=lambda model: model.__name__)
def test_the_console_lists_every_tenant_owned_model(model, admin_client, acme, alice, alice_key):
    meta = model._meta
    response = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert response.status_code == 200


def test_the_console_opens_and_saves_a_tenant_owned_row(admin_client, acme, alice, alice_key):
    api_key = ApiKey.objects.for_tenant(acme).get()
    url = reverse("admin:tenants_apikey_change", args=[api_key.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url, {"name": "renamed", "scopes": '["models"]', "public_id": api_key.public_id}
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    api_key.refresh_from_db()
    assert api_key.name == "renamed"


def test_no_code_reaches_past_the_scoping():
    """Django's default manager is the unscoped one: code must not use it by accident."""
    offenders = []
    for folder in ("platform", "tenants", "workers"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            text = path.read_text()
            for needle in ("_default_manager", "get_object_or_404(", "get_list_or_404("):
                if needle in text:
                    offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, "use Model.objects.for_tenant(tenant) or Model.unscoped: " + ", ".join(
        offenders
    )


# Tenant-facing code answers a request for one tenant: it must reach every row through
# `objects.for_tenant(tenant)`. A line here that reads across tenants is listed below,
# word for word, with why it may.
UNSCOPED_NEEDLES = (".unscoped", "_base_manager")
JUSTIFIED_UNSCOPED_LINES = {
    (
        "platform/tokenmill/gateway/routes.py",
        "FineTunedModel.unscoped.filter(model_id=model_id)",
    ): "model ids are unique platform-wide; the owner found is compared with the caller's "
    "organization right after, and another tenant's model answers like a missing one",
    (
        "platform/tokenmill/dashboard/mixins.py",
        'memberships = Membership.unscoped.filter(user=request.user).select_related("tenant", "user")',
    ): "this is how the dashboard finds its tenant: the signed-in user's own memberships, "
    "before any organization is chosen",
}


def is_tenant_facing(relative: Path) -> bool:
    parts = relative.parts
    return (
        relative.name in ("api.py", "views.py", "selectors.py", "models_api.py")
        or "views" in parts[:-1]
        or "dashboard" in parts[:-1]
        or "gateway" in parts[:-1]
        or parts[:3] == ("platform", "tokenmill", "api")
    )


def unscoped_lines(relative: Path, text: str) -> list[tuple[str, str]]:
    """The (path, line) pairs of tenant-facing code that reach past the scoping."""
    if not is_tenant_facing(relative):
        return []
    return [
        (relative.as_posix(), line.strip())
        for line in text.splitlines()
        if any(needle in line for needle in UNSCOPED_NEEDLES)
    ]


def _python_files():
    for folder in ("platform", "tenants", "workers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path.relative_to(ROOT), path.read_text()


def test_tenant_facing_code_does_not_read_across_tenants():
    found = [line for path, text in _python_files() for line in unscoped_lines(path, text)]
    offenders = [
        f"{path}: {line}" for path, line in found if (path, line) not in JUSTIFIED_UNSCOPED_LINES
    ]
    assert not offenders, (
        "tenant-facing code reads through Model.objects.for_tenant(tenant); justify a "
        "cross-tenant read in JUSTIFIED_UNSCOPED_LINES: " + "; ".join(offenders)
    )
    stale = set(JUSTIFIED_UNSCOPED_LINES) - set(found)
    assert not stale, f"justified lines that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize(
    ("path", "line", "caught"),
    [
        ("platform/tokenmill/files/api.py", "File.unscoped.get(public_id=file_id)", True),
        ("platform/tokenmill/finetuning/selectors.py", "FineTuningJob.unscoped.all()", True),
        ("platform/tokenmill/dashboard/views/keys.py", "ApiKey._base_manager.all()", True),
        ("platform/tokenmill/dashboard/charts.py", "x = Usage.unscoped.filter(pk=1)", True),
        ("platform/tokenmill/api/organization.py", "Membership.unscoped.all()", True),
        ("tenants/selectors.py", "Membership.unscoped.filter(user=user)", True),
        ("platform/tokenmill/finetuning/scheduling.py", "FineTuningJob.unscoped.all()", False),
        ("workers/tasks.py", "File.unscoped.filter(pk=file_id)", False),
    ],
)
def test_the_scan_catches_unscoped_reads_in_tenant_facing_code(path, line, caught):
    assert bool(unscoped_lines(Path(path), f"def f():\n    {line}\n")) is caught
