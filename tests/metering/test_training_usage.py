"""A succeeded fine-tuning job is one training event, however often its outcome arrives."""

from tests.finetuning.conftest import dispatched, report, sent  # noqa: F401
from tokenmill.metering import ledger, services
from tokenmill.metering.models import LedgerEntry


def test_a_succeeded_job_is_billed_its_trained_tokens_once(
    store,
    dispatched,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    outcome = {"status": "succeeded", "trained_tokens": 1234, "output": "jobs/x/attempt-1/final"}
    for _ in range(3):  # the control queue delivers the outcome again, and again
        with django_capture_on_commit_callbacks(execute=True):
            report(dispatched, "outcome", outcome, seq=9)
    dispatched.refresh_from_db()
    assert ledger.aggregate().counted == 1  # the job's success emitted its event
    services.training_event_emit(job=dispatched)  # even an emit repeated by hand
    assert ledger.aggregate().counted == 0
    (entry,) = LedgerEntry.objects.for_tenant(dispatched.tenant)
    assert entry.kind == "training"
    assert entry.model == dispatched.fine_tuned_model
    assert entry.base_model == "tiny-chat"
    assert (entry.requests, entry.prompt_tokens, entry.completion_tokens) == (1, 1234, 0)
    assert entry.key_public_id == ""
