"""The cross-tenant matrix: charlie (globex) must see nothing of acme's.

Every URL under /v1 and /api/v1 must appear in ENDPOINTS below, as a detail URL (an
object of acme's by id), a list, or the caller's own organization; a new endpoint that
is not added here fails `test_every_endpoint_is_in_the_matrix`, and every entry is
checked by the test of its kind. The methods tried are the ones each route's view
implements, and acme's rows are snapshotted before and after each of charlie's
requests to prove they are untouched.
"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tenants import services
from tenants.models import Membership, Organization
from tests.factories import MembershipFactory, UserFactory
from tests.tenancy import snapshot, view_methods
from tokenmill.catalog.models import BaseModel
from tokenmill.files import services as file_services


@pytest.fixture(autouse=True)
def _private_artifact_store(artifact_store):
    return artifact_store


def _member(acme, alice):
    return MembershipFactory(tenant=acme, user=UserFactory(), role="member").public_id


def _invitation(acme, alice):
    invitation, _ = services.member_invite(
        tenant=acme,
        actor=Membership.objects.for_tenant(acme).get(user=alice),
        email="dana@example.com",
    )
    return invitation.public_id


def _api_key(acme, alice):
    api_key, _ = services.api_key_create(
        tenant=acme, actor=Membership.objects.for_tenant(acme).get(user=alice), name="acme prod"
    )
    return api_key.public_id


def _job(acme, alice):
    from tests.finetuning.conftest import make_training_file
    from tokenmill.finetuning import services as finetuning_services
    from tokenmill.finetuning.params import JobRequest

    training_file = make_training_file(acme)
    request = JobRequest(model="tiny-chat", training_file=training_file.public_id)
    return finetuning_services.job_create(tenant=acme, request=request).public_id


def _fine_tuned_model(acme, alice):
    from tokenmill.finetuning.models import FineTunedModel, FineTuningJob

    job = FineTuningJob.objects.for_tenant(acme).get(public_id=_job(acme, alice))
    FineTuningJob.objects.for_tenant(acme).filter(pk=job.pk).update(
        status="succeeded", fine_tuned_model="ft:tiny-chat:acme::x"
    )
    FineTunedModel.objects.create(
        model_id="ft:tiny-chat:acme::x",
        tenant=acme,
        job=job,
        base_model=job.base_model,
        artifact_key="jobs/x",
    )
    return "ft:tiny-chat:acme::x"


def _evaluated_job(acme, alice):
    from tokenmill.finetuning.models import FineTuningJob, JobEvaluation

    job = FineTuningJob.objects.for_tenant(acme).get(public_id=_job(acme, alice))
    JobEvaluation.objects.create(
        tenant=acme, job=job, model_id="ft:tiny-chat:acme::x", status="succeeded", report={}
    )
    return job.public_id


def _file(acme, alice):
    upload = SimpleUploadedFile("notes.txt", b"acme's notes")
    return file_services.file_create(tenant=acme, upload=upload, purpose="user_data").public_id


def _batch(acme, alice):
    from django.utils import timezone

    from tokenmill.batches.models import Batch

    upload = SimpleUploadedFile("batch.jsonl", b'{"custom_id": "a"}\n')
    input_file = file_services.file_create(tenant=acme, upload=upload, purpose="batch")
    batch = Batch.objects.create(
        tenant=acme,
        endpoint="/v1/chat/completions",
        input_file=input_file,
        status="in_progress",
        expires_at=timezone.now(),
    )
    return batch.public_id


@dataclass(frozen=True)
class Detail:
    """An object of acme's by id: charlie gets exactly the answer for a missing id."""

    make: Callable[[Organization, object], str]
    owner_url_name: str | None = None  # where the owner still sees it (default: the same)


@dataclass(frozen=True)
class Listing:
    """A list: charlie's shows none of acme's objects, acme's shows the one made."""

    make: Callable[[Organization, object], str]


@dataclass(frozen=True)
class OwnOrganization:
    """The caller's own organization, with no id in the URL."""


@dataclass(frozen=True)
class OwnUsage:
    """The caller's own usage: sums of its organization's ledger only."""


ENDPOINTS = {
    "v1:models": Listing(_fine_tuned_model),
    "v1:model": Detail(_fine_tuned_model),  # base models: the shared catalog, below
    "v1:fine-tuning-jobs": Listing(_job),
    "v1:fine-tuning-job": Detail(_job),
    "v1:fine-tuning-job-cancel": Detail(_job, owner_url_name="v1:fine-tuning-job"),
    "v1:fine-tuning-job-events": Detail(_job),
    "v1:fine-tuning-job-checkpoints": Detail(_job),
    "v1:batches": Listing(_batch),
    "v1:batch": Detail(_batch),
    "v1:batch-cancel": Detail(_batch, owner_url_name="v1:batch"),
    "v1:files": Listing(_file),
    "v1:file": Detail(_file),
    "api:fine-tuning-job-evaluation": Detail(_evaluated_job),
    "v1:file-content": Detail(_file),
    "api:organization": OwnOrganization(),
    "api:usage": OwnUsage(),
    "api:members": Listing(_member),
    "api:member": Detail(_member),
    "api:invitations": Listing(_invitation),
    "api:invitation": Detail(_invitation),
    "api:api-keys": Listing(_api_key),
    "api:api-key": Detail(_api_key),
}

# What a write would carry if the scoping let it through, so a leak shows in the snapshot.
HOSTILE_BODY = {"name": "Pwned", "role": "owner", "scopes": ["models"]}


def _api_url_names(patterns=None, namespace="") -> list[tuple[str, str]]:
    found = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            for name, route in _api_url_names(entry.url_patterns, inner):
                found.append((name, f"{entry.pattern}{route}"))
        elif isinstance(entry, URLPattern) and entry.name:
            found.append((f"{namespace}{entry.name}", str(entry.pattern)))
    return found


def _url(name: str, object_id: str | None = None) -> str:
    return reverse(name, args=[object_id] if object_id is not None else [])


def _cases(kind: type) -> list[tuple[str, str]]:
    cases = []
    for name, spec in ENDPOINTS.items():
        if isinstance(spec, kind):
            url = _url(name, "x") if kind is Detail else _url(name)
            cases.extend((name, method) for method in view_methods(url))
    return cases


DETAIL_CASES = _cases(Detail)
ORGANIZATION_CASES = _cases(OwnOrganization)
LIST_NAMES = sorted(name for name, spec in ENDPOINTS.items() if isinstance(spec, Listing))
USAGE_NAMES = sorted(name for name, spec in ENDPOINTS.items() if isinstance(spec, OwnUsage))


def test_every_endpoint_is_in_the_matrix():
    api_routes = {name for name, route in _api_url_names() if route.startswith(("v1/", "api/v1/"))}
    assert api_routes, "no API routes found"
    missing = api_routes - set(ENDPOINTS)
    assert not missing, f"add these endpoints to the cross-tenant matrix: {sorted(missing)}"
    stale = set(ENDPOINTS) - api_routes
    assert not stale, f"these matrix entries name no route: {sorted(stale)}"


def test_every_entry_is_checked():
    checked = {name for name, _ in DETAIL_CASES + ORGANIZATION_CASES}
    checked |= set(LIST_NAMES) | set(USAGE_NAMES)
    unchecked = sorted(set(ENDPOINTS) - checked)
    assert not unchecked, f"no test checks these entries: {unchecked}"
    assert all(
        isinstance(spec, Detail | Listing | OwnOrganization | OwnUsage)
        for spec in ENDPOINTS.values()
    )


def test_methods_come_from_the_views():
    assert view_methods(_url("api:member", "x")) == ["get", "patch", "delete"]
    assert view_methods(_url("v1:fine-tuning-job-cancel", "x")) == ["post"]


def _call(client, method: str, url: str):
    return getattr(client, method)(url, HOSTILE_BODY, format="json")


@pytest.mark.parametrize(("name", "method"), DETAIL_CASES)
def test_another_tenants_object_answers_404_like_a_missing_one(
    name, method, acme, alice, charlie, api, charlie_key, alice_key
):
    spec: Detail = ENDPOINTS[name]
    object_id = spec.make(acme, alice)
    charlie_client = api(charlie_key)
    before = snapshot(acme)

    theirs = _call(charlie_client, method, _url(name, object_id))

    assert snapshot(acme) == before, f"charlie's {method.upper()} changed acme's rows"
    missing = _call(charlie_client, method, _url(name, "nothing-here"))
    assert theirs.status_code == missing.status_code == 404
    error = theirs.json()["error"]
    assert error["code"] == missing.json()["error"]["code"]
    assert error["code"] in ("not_found", "model_not_found")
    assert error["message"] == missing.json()["error"]["message"].replace("nothing-here", object_id)
    # ...and its owner still sees it.
    owner_view = api(alice_key).get(_url(spec.owner_url_name or name, object_id))
    owner_view.close()  # a download streams from an open file until closed
    assert owner_view.status_code == 200


@pytest.mark.parametrize("name", LIST_NAMES)
def test_lists_show_only_the_callers_objects(
    name, acme, alice, charlie, api, alice_key, charlie_key
):
    object_id = ENDPOINTS[name].make(acme, alice)
    url = _url(name)
    acme_ids = {row["id"] for row in api(alice_key).get(url).json()["data"]}
    globex_ids = {row["id"] for row in api(charlie_key).get(url).json()["data"]}
    shared_catalog = set(BaseModel.objects.values_list("model_id", flat=True))
    assert object_id in acme_ids, f"alice should see acme's {name}"
    assert object_id not in globex_ids
    assert not (acme_ids & globex_ids) - shared_catalog


@pytest.mark.parametrize(("name", "method"), ORGANIZATION_CASES)
def test_the_organization_endpoint_is_the_callers_own(
    name, method, acme, alice, charlie, globex, api, alice_key, charlie_key
):
    before = snapshot(acme)
    response = _call(api(charlie_key), method, _url(name))
    assert snapshot(acme) == before
    assert response.status_code == 200
    assert response.json()["slug"] == "globex"
    assert api(alice_key).get(_url(name)).json()["slug"] == "acme"


@pytest.mark.parametrize("name", USAGE_NAMES)
def test_usage_sums_only_the_callers_ledger(
    name, acme, alice, charlie, api, alice_key, charlie_key
):
    from django.utils import timezone

    from tokenmill.metering.models import LedgerEntry

    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    LedgerEntry.unscoped.create(
        tenant=acme,
        model="tiny-chat",
        base_model="tiny-chat",
        kind="chat",
        hour=hour,
        requests=3,
        prompt_tokens=30,
        completion_tokens=9,
    )
    url = _url(name) + "?group_by=model,key,kind"
    assert api(charlie_key).get(url).json()["totals"]["requests"] == 0
    assert api(charlie_key).get(url).json()["data"] == []
    assert api(alice_key).get(url).json()["totals"]["total_tokens"] == 39


def test_base_models_are_the_shared_catalog(api, alice_key, charlie_key):
    for key in (alice_key, charlie_key):
        response = api(key).get("/v1/models/tiny-chat")
        assert response.status_code == 200
        assert response.json()["id"] == "tiny-chat"


def test_paging_after_another_tenants_id_is_refused_like_an_unknown_one(
    acme, alice, charlie, api, charlie_key
):
    acme_key_id = _api_key(acme, alice)
    response = api(charlie_key).get(f"/api/v1/api-keys?after={acme_key_id}")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": f"No object with id {acme_key_id!r} to page after.",
        "type": "invalid_request_error",
        "param": "after",
        "code": "invalid_value",
    }
