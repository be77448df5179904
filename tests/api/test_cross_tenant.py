"""The cross-tenant matrix: charlie (globex) must see nothing of acme's.

Every URL under /v1 and /api/v1 must appear in ENDPOINTS below; a new endpoint
that is not added here fails `test_every_endpoint_is_in_the_matrix`.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver

from tenants import services
from tenants.models import Membership
from tests.factories import MembershipFactory, UserFactory
from tokenmill.files import services as file_services


@pytest.fixture(autouse=True)
def _private_artifact_store(artifact_root):
    return artifact_root


def _member(acme, alice):
    return MembershipFactory(tenant=acme, user=UserFactory(), role="member").public_id


def _invitation(acme, alice):
    invitation, _ = services.member_invite(
        tenant=acme, actor=Membership.unscoped.get(user=alice), email="dana@example.com"
    )
    return invitation.public_id


def _api_key(acme, alice):
    api_key, _ = services.api_key_create(
        tenant=acme, actor=Membership.unscoped.get(user=alice), name="acme prod"
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

    job = FineTuningJob.unscoped.get(public_id=_job(acme, alice))
    FineTuningJob.unscoped.filter(pk=job.pk).update(
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


def _file(acme, alice):
    upload = SimpleUploadedFile("notes.txt", b"acme's notes")
    return file_services.file_create(tenant=acme, upload=upload, purpose="user_data").public_id


# url name -> (make an object of acme's and return its id, methods to try) for detail
# endpoints; None for endpoints without an object id (lists and the caller's own organization).
ENDPOINTS = {
    "v1:models": None,
    "v1:model": (_fine_tuned_model, ["get", "delete"]),  # base models: the shared catalog, below
    "v1:fine-tuning-jobs": None,
    "v1:fine-tuning-job": (_job, ["get"]),
    "v1:fine-tuning-job-cancel": (_job, ["post"]),
    "v1:fine-tuning-job-events": (_job, ["get"]),
    "v1:fine-tuning-job-checkpoints": (_job, ["get"]),
    "v1:files": None,
    "v1:file": (_file, ["get", "delete"]),
    "v1:file-content": (_file, ["get"]),
    "api:organization": None,
    "api:members": None,
    "api:member": (_member, ["get", "patch", "delete"]),
    "api:invitations": None,
    "api:invitation": (_invitation, ["get", "delete"]),
    "api:api-keys": None,
    "api:api-key": (_api_key, ["get", "delete"]),
}

LIST_ENDPOINTS = {
    "v1:fine-tuning-jobs": "/v1/fine_tuning/jobs",
    "v1:files": "/v1/files",
    "api:members": "/api/v1/members",
    "api:invitations": "/api/v1/invitations",
    "api:api-keys": "/api/v1/api-keys",
}


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


def test_every_endpoint_is_in_the_matrix():
    api_routes = {name for name, route in _api_url_names() if route.startswith(("v1/", "api/v1/"))}
    assert api_routes, "no API routes found"
    missing = api_routes - set(ENDPOINTS)
    assert not missing, f"add these endpoints to the cross-tenant matrix: {sorted(missing)}"


def _detail_url(name: str, object_id: str) -> str:
    from django.urls import reverse

    return reverse(name, args=[object_id])


DETAIL_CASES = [
    (name, method)
    for name, spec in ENDPOINTS.items()
    if isinstance(spec, tuple)
    for method in spec[1]
]


@pytest.mark.parametrize(("name", "method"), DETAIL_CASES)
def test_another_tenants_object_answers_404_like_a_missing_one(
    name, method, acme, alice, charlie, api, charlie_key, alice_key
):
    make, _ = ENDPOINTS[name]
    object_id = make(acme, alice)
    charlie_client = api(charlie_key)

    theirs = getattr(charlie_client, method)(_detail_url(name, object_id), {}, format="json")
    missing = getattr(charlie_client, method)(_detail_url(name, "nothing-here"), {}, format="json")

    assert theirs.status_code == missing.status_code == 404
    error = theirs.json()["error"]
    assert error["code"] == missing.json()["error"]["code"]
    assert error["code"] in ("not_found", "model_not_found")
    assert error["message"] == missing.json()["error"]["message"].replace("nothing-here", object_id)
    # ...and the object is untouched: its owner still sees it.
    # (for an action such as cancel, the object itself is what must be untouched)
    owner_view = api(alice_key).get(_detail_url(name.removesuffix("-cancel"), object_id))
    owner_view.close()  # a download streams from an open file until closed
    assert owner_view.status_code == 200


@pytest.mark.parametrize("name", sorted(LIST_ENDPOINTS))
def test_lists_show_only_the_callers_objects(
    name, acme, alice, charlie, api, alice_key, charlie_key
):
    (
        _member(acme, alice),
        _invitation(acme, alice),
        _api_key(acme, alice),
        _file(acme, alice),
        _job(acme, alice),
    )
    url = LIST_ENDPOINTS[name]
    acme_ids = {row["id"] for row in api(alice_key).get(url).json()["data"]}
    globex_ids = {row["id"] for row in api(charlie_key).get(url).json()["data"]}
    assert acme_ids, f"alice should see acme's {name}"
    assert not acme_ids & globex_ids


def test_organization_endpoint_shows_the_callers_own(
    acme, alice, charlie, api, alice_key, charlie_key
):
    assert api(alice_key).get("/api/v1/organization").json()["slug"] == "acme"
    assert api(charlie_key).get("/api/v1/organization").json()["slug"] == "globex"


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
