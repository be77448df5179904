"""The console's files page: filters, search, the validation report, deletion with the bytes."""

import pytest
from django.test import Client

from tests.factories import UserFactory
from tests.files.helpers import chat_lines, jsonl, stored_files
from tokenmill.files.models import File

FILES = "/console/files/file/"


@pytest.fixture
def operator(db) -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def files(upload, charlie_key, encoder) -> dict[str, str]:
    bad = chat_lines(12)
    bad[4] = "{oops"
    return {
        "good": upload(jsonl(chat_lines(12)), name="good.jsonl").json()["id"],
        "bad": upload(jsonl(bad), name="bad.jsonl").json()["id"],
        "notes": upload(b"notes", name="notes.txt", purpose="user_data").json()["id"],
        "globex": upload(b"theirs", name="globex.txt", purpose="user_data", key=charlie_key).json()[
            "id"
        ],
    }


def listed(response) -> set[str]:
    assert response.status_code == 200, response.content[:500]
    return {file.public_id for file in response.context["cl"].result_list}


def test_filters_and_search(operator, files, acme):
    assert listed(operator.get(FILES)) == set(files.values())
    assert listed(operator.get(FILES, {"purpose__exact": "user_data"})) == {
        files["notes"],
        files["globex"],
    }
    assert listed(operator.get(FILES, {"status__exact": "error"})) == {files["bad"]}
    assert listed(operator.get(FILES, {"tenant__id__exact": acme.pk})) == {
        files["good"],
        files["bad"],
        files["notes"],
    }
    assert listed(operator.get(FILES, {"q": "globex"})) == {files["globex"]}
    assert listed(operator.get(FILES, {"q": files["good"]})) == {files["good"]}


def test_the_validation_report_is_shown_read_only(operator, files):
    file = File.unscoped.get(public_id=files["bad"])
    page = operator.get(f"{FILES}{file.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "line 5: invalid JSON" in html
    assert "&quot;n_invalid_examples&quot;: 1" in html
    # A view, not a form: operators read what the tenant sent; they do not edit it.
    assert page.context["has_change_permission"] is False
    assert list(page.context["adminform"].form.fields) == []
    assert operator.get(f"{FILES}add/").status_code == 403


def test_deleting_in_the_console_removes_the_bytes(
    operator, files, artifact_store, django_capture_on_commit_callbacks
):
    file = File.unscoped.get(public_id=files["good"])
    assert artifact_store.list_files(f"files/{file.public_id}")
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(f"{FILES}{file.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not File.unscoped.filter(pk=file.pk).exists()
    assert not artifact_store.exists(f"files/{file.public_id}")

    others = File.unscoped.filter(public_id__in=[files["bad"], files["notes"]])
    with django_capture_on_commit_callbacks(execute=True):
        operator.post(
            FILES,
            {
                "action": "delete_selected",
                "_selected_action": [f.pk for f in others],
                "post": "yes",
            },
        )
    assert list(File.unscoped.values_list("public_id", flat=True)) == [files["globex"]]
    assert [key.split("/")[1] for key in stored_files(artifact_store)] == [files["globex"]]
