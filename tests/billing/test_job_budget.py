"""A fine-tuning job is checked against the budget, with its estimated trained tokens."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.billing.helpers import ledger_row
from tests.finetuning.conftest import make_training_file
from tokenmill.catalog.models import BaseModel
from tokenmill.finetuning import services
from tokenmill.finetuning.models import FineTuningJob


def create(client, training_file, **body):
    return client.post(
        "/v1/fine_tuning/jobs",
        {"model": "tiny-chat", "training_file": training_file.public_id, **body},
        format="json",
    )


def assert_insufficient_quota(response, *words):
    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert error["type"] == "insufficient_quota"
    assert error["code"] == "insufficient_quota"
    for word in words:
        assert word in error["message"]
    return error


@pytest.fixture
def training_file(acme, artifact_store, demo_model_path):
    return make_training_file(acme)


def test_when_the_trial_credit_is_spent_a_job_is_refused_at_create(alice_api, acme, training_file):
    ledger_row(acme, hour=datetime.now(UTC), prompt=60_000_000)  # $6 at $0.10 / 1M
    response = create(alice_api, training_file)
    assert_insufficient_quota(response, "credits and monthly spend limit are used up")
    assert not FineTuningJob.objects.for_tenant(acme).exists()


def test_a_job_whose_estimate_costs_more_than_is_left_is_refused_with_the_figures(
    alice_api, acme, training_file
):
    BaseModel.objects.filter(model_id="tiny-chat").update(
        training_price_per_million=Decimal("100000")  # ten cents a token
    )
    response = create(alice_api, training_file, hyperparameters={"n_epochs": 2})
    error = assert_insufficient_quota(response, "this job would train about", "$5.00 more")
    assert "tokens for about $" in error["message"]
    assert not FineTuningJob.objects.for_tenant(acme).exists()
    # The same job, cheap enough, is accepted.
    BaseModel.objects.filter(model_id="tiny-chat").update(
        training_price_per_million=Decimal("0.50")
    )
    from tokenmill.billing import pricing

    pricing.forget()
    assert create(alice_api, training_file, hyperparameters={"n_epochs": 2}).status_code == 200


def test_a_job_created_before_its_file_was_validated_fails_when_the_estimate_is_over_budget(
    acme, artifact_store, demo_model_path, settings
):
    from tokenmill.finetuning.params import JobRequest

    waiting = make_training_file(acme, status="uploaded")
    job = services.job_create(
        tenant=acme, request=JobRequest(model="tiny-chat", training_file=waiting.public_id)
    )
    BaseModel.objects.filter(model_id="tiny-chat").update(
        training_price_per_million=Decimal("100000")
    )
    from tokenmill.billing import pricing

    pricing.forget()
    processed = make_training_file(acme)
    FineTuningJob.unscoped.filter(pk=job.pk).update(training_file=processed)
    assert services.job_prepare(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.error["code"] == "insufficient_quota"
    assert "may spend only $5.00 more" in job.error["message"]
