"""The validation task and the services behind it: idempotence, retries, giving up."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.files.helpers import chat_lines, jsonl
from tokenmill.files import services, tasks, tokenizer
from tokenmill.files.models import File
from tokenmill.files.storage import get_artifact_store


@pytest.fixture
def outcomes_kept():
    """Eager tasks that keep failures in their result, as a worker does, instead of raising:
    only then does Celery run retries and the failure handler in-process."""
    from workers.celery import app

    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True


@pytest.fixture
def pending(acme) -> File:
    """A fine-tune file stored and committed, whose validation has not run yet."""
    upload = SimpleUploadedFile("train.jsonl", jsonl(chat_lines()))
    # Outside django_capture_on_commit_callbacks, the on-commit validation never runs.
    return services.file_create(tenant=acme, upload=upload, purpose="fine-tune")


def test_the_task_is_named_and_routed_to_the_default_queue():
    from workers.celery import app

    assert tasks.validate_file.name == "files.validate"
    assert app.amqp.router.route({}, "files.validate")["queue"].name == "default"
    assert tasks.validate_file.max_retries == 5
    assert tasks.validate_file.autoretry_for == tasks.TRANSIENT_ERRORS


def test_the_task_validates_a_pending_file(pending, encoder):
    assert pending.status == "uploaded"
    assert tasks.validate_file.delay(pending.pk).get() == "processed"
    pending.refresh_from_db()
    assert pending.status == "processed"
    assert pending.processed_at is not None
    assert pending.validation["statistics"]["n_examples"] == 12
    assert get_artifact_store().exists(pending.normalized_key)


def test_validation_runs_once_whatever_the_deliveries(pending, acme, encoder, monkeypatch):
    assert tasks.validate_file.delay(pending.pk).get() == "processed"
    pending.refresh_from_db()
    first = (pending.processed_at, pending.validation)

    def must_not_run(*args, **kwargs):
        raise AssertionError("validated twice")

    monkeypatch.setattr(services, "validate_dataset", must_not_run)
    assert tasks.validate_file.delay(pending.pk).get() == "processed"
    pending.refresh_from_db()
    assert (pending.processed_at, pending.validation) == first


def test_a_file_deleted_before_its_validation_is_skipped(pending, acme):
    services.file_delete(tenant=acme, file=pending)
    assert tasks.validate_file.delay(pending.pk).get() == "deleted"


def test_a_file_deleted_during_validation_leaves_no_normalized_file(
    pending, acme, encoder, monkeypatch, artifact_store
):
    validate = services.validate_dataset

    def deleted_meanwhile(*args, **kwargs):
        report = validate(*args, **kwargs)
        File.unscoped.filter(pk=pending.pk).delete()  # as file_delete commits, mid-validation
        return report

    monkeypatch.setattr(services, "validate_dataset", deleted_meanwhile)
    assert tasks.validate_file.delay(pending.pk).get() == "processed"
    assert not artifact_store.exists(f"files/{pending.public_id}")


def test_transient_errors_are_retried_then_the_file_is_marked_error(
    pending, monkeypatch, outcomes_kept
):
    calls = []

    def still_building(model):
        calls.append(model.model_id)
        raise tokenizer.TokenizerUnavailable("the tokenizer of 'tiny-chat' is missing")

    monkeypatch.setattr(tokenizer, "encoder_for", still_building)
    # Eager tasks retry at once; a worker would wait with backoff between tries.
    result = tasks.validate_file.delay(pending.pk)

    assert result.failed()
    assert isinstance(result.result, tokenizer.TokenizerUnavailable)
    assert calls == ["tiny-chat"] * 6  # the first try and 5 retries
    pending.refresh_from_db()
    assert pending.status == "error"
    assert pending.status_details == services.VALIDATION_CRASHED
    assert pending.validation is None


def test_a_transient_error_that_clears_up_is_only_retried(
    pending, monkeypatch, encoder, outcomes_kept
):
    real = tokenizer.encoder_for
    failures = iter([OSError("the store blinked")])

    def flaky(model):
        for error in failures:
            raise error
        return real(model)

    monkeypatch.setattr(tokenizer, "encoder_for", flaky)
    assert tasks.validate_file.delay(pending.pk).get() == "processed"


def test_a_bug_is_not_retried_and_the_file_is_marked_error(pending, monkeypatch, outcomes_kept):
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise KeyError("a bug")

    monkeypatch.setattr(services, "validate_dataset", broken)
    assert tasks.validate_file.delay(pending.pk).failed()
    assert len(calls) == 1
    pending.refresh_from_db()
    assert pending.status == "error"


def test_the_tokenizer_model_comes_from_the_catalog(acme, settings, demo_model_path):
    from tokenmill.catalog.models import BaseModel

    model = tokenizer.default_tokenizer_model(tenant=acme)
    assert model.model_id == "tiny-chat"
    assert tokenizer.model_folder(model) == demo_model_path
    # An absolute path in the catalog is taken as it is.
    model.path = str(demo_model_path)
    assert tokenizer.model_folder(model) == demo_model_path
    assert tokenizer.encoder_for(model) is tokenizer.encoder_for(model)  # loaded once

    settings.DEFAULT_TOKENIZER_MODEL = "no-such-model"
    with pytest.raises(tokenizer.TokenizerUnavailable, match="'no-such-model', which is not"):
        tokenizer.default_tokenizer_model(tenant=acme)
    missing = BaseModel(model_id="ghost", path="ghost", context_length=8)
    with pytest.raises(tokenizer.TokenizerUnavailable, match="the tokenizer of 'ghost' is missing"):
        tokenizer.encoder_for(missing)


def test_a_service_refuses_another_tenants_file(pending, globex):
    from tenants.errors import TenantScopeError

    with pytest.raises(TenantScopeError):
        services.file_delete(tenant=globex, file=pending)
    with pytest.raises(TenantScopeError):
        services.file_validate(tenant=globex, file=pending)
    assert File.unscoped.filter(pk=pending.pk).exists()
