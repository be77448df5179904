"""/v1/batches: creation's errors, validation errors by line, listing, scopes, tenancy."""

import pytest

from tests.batches.conftest import chat_line
from tests.factories import make_key
from tests.files.helpers import refused
from tokenmill.batches.models import Batch

pytestmark = pytest.mark.django_db(transaction=True)


def embedding_line(custom_id: str) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "all-MiniLM-L6-v2", "input": "hello"},
    }


@pytest.mark.parametrize(
    ("fields", "param", "code", "message"),
    [
        (
            {"endpoint": "/v1/responses"},
            "endpoint",
            "invalid_value",
            "Invalid endpoint '/v1/responses': use '/v1/chat/completions', '/v1/completions', "
            "'/v1/embeddings'.",
        ),
        (
            {"completion_window": "1h"},
            "completion_window",
            "invalid_value",
            "Invalid completion_window '1h': only '24h' is supported.",
        ),
        (
            {"metadata": {"k": "v" * 513}},
            "metadata.k",
            "invalid_value",
            "metadata keys must be at most 64 characters and values strings of at most 512.",
        ),
        (
            {"metadata": {f"k{i}": "v" for i in range(17)}},
            "metadata",
            "invalid_value",
            "metadata must be an object of at most 16 string pairs.",
        ),
        (
            {"priority": 1},
            "priority",
            "unknown_parameter",
            "Unrecognized request argument supplied: priority.",
        ),
        (
            {"endpoint": None},
            "endpoint",
            "missing_required_parameter",
            "Missing required parameter: 'endpoint'.",
        ),
    ],
)
def test_bad_requests_name_the_parameter(
    upload_batch_file, create_batch, fields, param, code, message
):
    file_id = upload_batch_file([chat_line("a")])
    refused(create_batch(file_id, **fields), 400, param, code, message)
    assert not Batch.unscoped.exists()


def test_the_input_file_must_exist_be_yours_and_have_purpose_batch(
    upload_batch_file, create_batch, charlie_key
):
    refused(
        create_batch("file-missing"),
        404,
        "input_file_id",
        "not_found",
        "No file with id 'file-missing'.",
    )
    theirs = upload_batch_file([chat_line("a")], key=charlie_key)
    refused(create_batch(theirs), 404, "input_file_id", "not_found", f"No file with id {theirs!r}.")
    data = upload_batch_file([chat_line("a")], purpose="user_data")
    refused(
        create_batch(data),
        400,
        "input_file_id",
        "invalid_file_purpose",
        f"File {data} has purpose 'user_data'; a batch needs purpose 'batch'.",
    )
    assert not Batch.unscoped.exists()


def test_bad_lines_fail_the_batch_with_errors_by_line_and_run_nothing(
    backend, upload_batch_file, create_batch
):
    rows = [
        chat_line("ok-1"),
        b"{not json",
        chat_line("ok-1"),  # duplicate
        {**chat_line("c"), "url": "/v1/embeddings"},
        {**chat_line("d"), "method": "GET"},
        chat_line("e", stream=True),
        chat_line("f", temperature=5),
        {**chat_line("g"), "body": {**chat_line("g")["body"], "model": "no-such-model"}},
        {**chat_line(""), "custom_id": ""},
        chat_line("h", content="word " * 400),
        {**chat_line("i"), "body": {**chat_line("i")["body"], "model": "all-MiniLM-L6-v2"}},
    ]
    body = create_batch(upload_batch_file(rows)).json()

    assert body["status"] == "failed"
    assert body["failed_at"] is not None
    assert body["output_file_id"] is None
    errors = {error["line"]: error for error in body["errors"]["data"]}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert errors[2] == {
        "code": "invalid_json",
        "message": "This line is not valid JSON.",
        "param": None,
        "line": 2,
    }
    assert errors[3]["code"] == "duplicate_custom_id"
    assert errors[3]["message"] == "Duplicate custom_id 'ok-1': each must be unique in the batch."
    assert errors[4]["message"] == (
        "url must be the batch's endpoint '/v1/chat/completions', got '/v1/embeddings'."
    )
    assert errors[5]["param"] == "method"
    assert errors[6]["param"] == "body.stream"
    assert errors[7]["param"] == "body.temperature"
    assert errors[8]["code"] == "model_not_found"
    assert errors[9]["code"] == "missing_custom_id"
    assert errors[10]["message"].startswith("This model's maximum context length is 256 tokens")
    assert errors[11]["code"] == "model_not_supported"
    assert backend.state.requests == []  # nothing ran


def test_the_errors_listed_are_capped_and_say_how_many_more(
    upload_batch_file, create_batch, settings
):
    settings.BATCH_MAX_LISTED_ERRORS = 2
    body = create_batch(upload_batch_file([b"[]"] * 5)).json()
    data = body["errors"]["data"]
    assert [error["line"] for error in data] == [1, 2, None]
    assert data[-1]["message"] == "3 more lines have errors; only the first 2 are listed."


def test_too_many_requests_fail_validation(upload_batch_file, create_batch, settings):
    settings.BATCH_MAX_REQUESTS = 2
    body = create_batch(upload_batch_file([chat_line(str(i)) for i in range(3)])).json()
    assert body["status"] == "failed"
    assert body["errors"]["data"] == [
        {
            "code": "too_many_requests",
            "message": "A batch may hold at most 2 requests.",
            "param": None,
            "line": 3,
        }
    ]


def test_list_pages_newest_first_with_openais_cursor(
    backend, upload_batch_file, create_batch, alice_api
):
    file_id = upload_batch_file([chat_line("a")])
    made = [create_batch(file_id).json()["id"] for _ in range(3)]
    first = alice_api.get("/v1/batches?limit=2").json()
    assert first["object"] == "list"
    assert [row["id"] for row in first["data"]] == made[::-1][:2]
    assert first["has_more"] is True
    assert first["first_id"] == made[2] and first["last_id"] == made[1]
    second = alice_api.get(f"/v1/batches?limit=2&after={first['last_id']}").json()
    assert [row["id"] for row in second["data"]] == [made[0]]
    assert second["has_more"] is False


def test_another_tenants_batch_is_not_found(backend, upload_batch_file, create_batch, charlie_api):
    batch_id = create_batch(upload_batch_file([chat_line("a")])).json()["id"]
    for response in (
        charlie_api.get(f"/v1/batches/{batch_id}"),
        charlie_api.post(f"/v1/batches/{batch_id}/cancel"),
    ):
        refused(response, 404, "id", "not_found", f"No batch with id {batch_id!r}.")
    assert charlie_api.get("/v1/batches").json()["data"] == []
    output = Batch.unscoped.get(public_id=batch_id).output_file.public_id
    refused(
        charlie_api.get(f"/v1/files/{output}"),
        404,
        "id",
        "not_found",
        f"No file with id {output!r}.",
    )


def test_keys_need_the_models_scope_and_files_to_create(upload_batch_file, api, acme, alice):
    file_id = upload_batch_file([chat_line("a")])
    files_only = api(make_key(acme, alice, scopes=["files"]))
    models_only = api(make_key(acme, alice, scopes=["models"]))
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    response = files_only.get("/v1/batches")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    response = models_only.post("/v1/batches", body, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "This API key does not have the 'files' scope needed to read a batch's input file."
    )
    assert models_only.get("/v1/batches").status_code == 200


def test_a_finished_batch_cannot_be_cancelled(backend, upload_batch_file, create_batch, alice_api):
    batch_id = create_batch(upload_batch_file([chat_line("a")])).json()["id"]
    refused(
        alice_api.post(f"/v1/batches/{batch_id}/cancel"),
        400,
        None,
        "invalid_state",
        f"Batch {batch_id} is completed and can no longer be cancelled.",
    )


def test_a_line_may_name_the_tenants_own_fine_tune_but_not_anothers(
    backend, upload_batch_file, create_batch, acme, globex
):
    from tests.gateway.conftest import make_fine_tuned_model

    ours = make_fine_tuned_model(acme).model_id
    theirs = make_fine_tuned_model(globex).model_id
    rows = [chat_line("ours", model=ours), chat_line("theirs", model=theirs)]
    body = create_batch(upload_batch_file(rows)).json()
    assert body["status"] == "failed"
    assert body["errors"]["data"] == [
        {
            "code": "model_not_found",
            "message": f"The model {theirs!r} does not exist or you do not have access to it.",
            "param": "body.model",
            "line": 2,
        }
    ]


def test_a_line_longer_than_a_request_may_be_is_refused_unread(
    upload_batch_file, create_batch, settings, monkeypatch
):
    settings.GATEWAY_MAX_BODY_BYTES = 1024
    long_line = chat_line("long", content="x" * 2000)
    body = create_batch(upload_batch_file([chat_line("a"), long_line, chat_line("b")])).json()
    assert body["errors"]["data"] == [
        {
            "code": "line_too_long",
            "message": "This line is longer than 1,024 bytes, the most one request may hold.",
            "param": None,
            "line": 2,
        }
    ]
