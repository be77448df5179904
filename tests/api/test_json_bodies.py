"""Every JSON body of /v1 and /api/v1 goes through one strict parser.

A lone surrogate escape (`"\\udfff"`), JSON nested too deeply and a body over the
JSON limit get a 4xx in OpenAI's shape naming what is wrong, and a refused request
writes nothing.
"""

import json

import pytest

from tenants.models import ApiKey, Invitation, Membership, Organization, Role
from tests.finetuning.conftest import make_training_file
from tokenmill.api.json_text import unencodable_path
from tokenmill.files.models import File
from tokenmill.finetuning.models import FineTuningJob

SURROGATE = "\\udfff"  # as the client writes it inside a JSON string


def post_raw(client, path: str, body: str, method: str = "post"):
    return getattr(client, method)(path, data=body.encode(), content_type="application/json")


def surrogate_error(param: str) -> dict:
    return {
        "error": {
            "message": f"Invalid value for '{param}': it holds a lone surrogate (an escape such "
            "as \\udfff without its pair), which is not valid Unicode text.",
            "type": "invalid_request_error",
            "param": param,
            "code": "invalid_unicode",
        }
    }


def snapshot(tenant) -> dict:
    """What a request could have written for the tenant."""
    return {
        "jobs": list(FineTuningJob.unscoped.filter(tenant=tenant).values_list("id", flat=True)),
        "files": list(File.unscoped.filter(tenant=tenant).values_list("id", flat=True)),
        "name": Organization.objects.get(pk=tenant.pk).name,
        "roles": sorted(Membership.unscoped.filter(tenant=tenant).values_list("public_id", "role")),
        "invitations": Invitation.unscoped.filter(tenant=tenant).count(),
        "keys": ApiKey.unscoped.filter(tenant=tenant).count(),
    }


@pytest.fixture
def training_file(acme, artifact_store):
    return make_training_file(acme)


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("metadata", '{"note": "a' + SURROGATE + 'b"}', "metadata.note"),
        ("model", f'"tiny-chat{SURROGATE}"', "model"),
        ("validation_file", f'"file-{SURROGATE}"', "validation_file"),
        ("suffix", f'"bot{SURROGATE}"', "suffix"),
        ("metadata", '{"a' + SURROGATE + '": "x"}', "metadata.a\\udfff"),
    ],
    ids=["metadata", "model", "validation_file", "suffix", "metadata-key"],
)
def test_a_lone_surrogate_in_a_job_request_is_a_400_and_no_job(
    alice_api, acme, training_file, field, value, param, django_capture_on_commit_callbacks
):
    body = {"model": '"tiny-chat"', "training_file": f'"{training_file.public_id}"', field: value}
    raw = "{" + ", ".join(f'"{key}": {item}' for key, item in body.items()) + "}"
    before = snapshot(acme)

    with django_capture_on_commit_callbacks(execute=True):
        response = post_raw(alice_api, "/v1/fine_tuning/jobs", raw)

    assert response.status_code == 400, response.content
    assert response.json() == surrogate_error(param)
    assert snapshot(acme) == before
    assert alice_api.get("/v1/fine_tuning/jobs").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "raw", "param"),
    [
        ("patch", "/api/v1/organization", '{"name": "Acme' + SURROGATE + '"}', "name"),
        ("post", "/api/v1/invitations", '{"email": "d' + SURROGATE + '@example.com"}', "email"),
        (
            "post",
            "/api/v1/invitations",
            '{"email": "dana@example.com", "role": "viewer' + SURROGATE + '"}',
            "role",
        ),
        ("post", "/api/v1/api-keys", '{"name": "ci' + SURROGATE + '"}', "name"),
        (
            "post",
            "/api/v1/api-keys",
            '{"name": "ci", "scopes": ["' + SURROGATE + '"]}',
            "scopes[0]",
        ),
    ],
)
def test_a_lone_surrogate_in_a_platform_request_is_a_400_and_nothing_written(
    alice_api, acme, method, path, raw, param
):
    before = snapshot(acme)
    response = post_raw(alice_api, path, raw, method=method)
    assert response.status_code == 400, response.content
    assert response.json() == surrogate_error(param)
    assert snapshot(acme) == before


def test_a_lone_surrogate_in_a_member_role_change(alice_api, acme, bob):
    bob_id = Membership.unscoped.get(user=bob).public_id
    before = snapshot(acme)
    response = post_raw(
        alice_api, f"/api/v1/members/{bob_id}", '{"role": "admin' + SURROGATE + '"}', "patch"
    )
    assert response.status_code == 400
    assert response.json() == surrogate_error("role")
    assert snapshot(acme) == before
    assert Membership.unscoped.get(user=bob).role == Role.MEMBER


def test_json_sent_to_the_upload_endpoint_is_refused_and_stores_nothing(alice_api, acme):
    before = snapshot(acme)
    response = post_raw(alice_api, "/v1/files", '{"purpose": "fine-tune' + SURROGATE + '"}')
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "invalid_request"
    assert snapshot(acme) == before


def test_a_valid_surrogate_pair_is_text_and_goes_through(alice_api):
    response = post_raw(
        alice_api, "/api/v1/organization", '{"name": "Acme \\ud83d\\ude00"}', "patch"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Acme \U0001f600"


def test_json_nested_too_deeply_is_a_400_not_a_server_error(alice_api, acme, training_file):
    before = snapshot(acme)
    deep = '{"model": "tiny-chat", "metadata": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    response = post_raw(alice_api, "/v1/fine_tuning/jobs", deep)
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "The request body is nested too deeply: JSON may nest at most 64 levels.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_json",
        }
    }
    # Deep enough to pass the parser's own recursion, too deep for what reads it afterwards.
    moderately = '{"name": ' + "[" * 200 + "]" * 200 + "}"
    response = post_raw(alice_api, "/api/v1/organization", moderately, "patch")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert snapshot(acme) == before


def test_a_json_body_over_the_limit_is_a_413_in_openai_shape(alice_api, acme):
    before = snapshot(acme)
    over = json.dumps({"name": "x" * (10 * 1024 * 1024)})  # just over the 10 MiB default
    response = post_raw(alice_api, "/api/v1/organization", over, "patch")
    assert response.status_code == 413
    assert response.json() == {
        "error": {
            "message": "The request body is too large: a JSON body may be at most 10,485,760 bytes.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }
    }
    assert snapshot(acme) == before


def test_the_json_limit_is_a_setting(alice_api, settings):
    settings.JSON_BODY_MAX_BYTES = 2048
    response = post_raw(
        alice_api, "/api/v1/organization", json.dumps({"name": "x" * 3000}), "patch"
    )
    assert response.status_code == 413
    assert response.json()["error"]["message"] == (
        "The request body is too large: a JSON body may be at most 2,048 bytes."
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"name": ', "The request body is not valid JSON: Expecting value (line 1, column 10)."),
        ('{"name": NaN}', "The request body is not valid JSON: NaN is not valid JSON."),
    ],
)
def test_invalid_json_says_where(alice_api, raw, message):
    response = post_raw(alice_api, "/api/v1/organization", raw, "patch")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_json",
    }


def test_a_body_that_is_not_utf8_is_a_400(alice_api):
    response = alice_api.patch(
        "/api/v1/organization", data=b'{"name": "\xff"}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "The request body is not valid UTF-8 (byte offset 10); send JSON encoded as UTF-8."
    )


def test_the_path_names_the_first_bad_string():
    assert unencodable_path({"a": ["ok", {"b": "\udfff"}], "c": "\udfff"}) == "a[1].b"
    assert unencodable_path(["ok", "\ud800"]) == "[1]"
    assert unencodable_path("\udfff") == ""
    assert unencodable_path({"fine": ["\U0001f600"]}) is None
