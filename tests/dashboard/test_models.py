"""The Models page: base models and the organization's fine-tuned models, deleting one
from a confirmation page, and a job's checkpoint becoming a model of its own."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tenants import services as tenant_services
from tests.finetuning.conftest import make_training_file
from tokenmill.catalog.models import BaseModel
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning import checkpoint_models
from tokenmill.finetuning.models import FineTunedModel, FineTuningJob, JobCheckpoint

MODELS = reverse("dashboard:models")


@pytest.fixture(autouse=True)
def _private_store(artifact_store):
    """This test's own artifact store."""


def finished_job(tenant, *, suffix="bot", checkpoints=(), model=True) -> FineTuningJob:
    """A succeeded job (its model registered, unless `model` is False) with checkpoints."""
    ended = timezone.now() - timedelta(minutes=3)
    job = FineTuningJob.objects.create(  # not job_create: no task may run it here
        tenant=tenant,
        base_model=BaseModel.objects.get(model_id="tiny-chat"),
        training_file=make_training_file(tenant),
        suffix=suffix,
        seed=7,
        status="succeeded",
        finished_at=ended,
        released_at=ended,
        trained_tokens=500,
    )
    job.fine_tuned_model = f"ft:tiny-chat:{tenant.slug}:{suffix}:{job.public_id[6:14]}"
    job.save(update_fields=["fine_tuned_model"])
    model_id = job.fine_tuned_model
    store = get_artifact_store()
    for step in checkpoints:
        key = f"jobs/{job.public_id}/checkpoints/step-{step}/adapter.safetensors"
        store.write_bytes(key, b"weights")
        JobCheckpoint.objects.create(
            tenant=tenant,
            job=job,
            step_number=step,
            epoch=step // 4,
            metrics={"train_loss_mean": 1.5},
            fine_tuned_model_checkpoint=f"{model_id}:ckpt-step-{step}",
            artifact_key=key,
        )
    if model:
        store.write_bytes(f"jobs/{job.public_id}/final/adapter.safetensors", b"weights")
        FineTunedModel.objects.create(
            model_id=model_id,
            tenant=tenant,
            job=job,
            base_model=job.base_model,
            training_type=job.training_type,
            artifact_key=f"jobs/{job.public_id}/final/adapter.safetensors",
        )
    return job


def rows(page: str) -> list[str]:
    return re.findall(r"<tr id=\"model-\d+\".*?</tr>", page, re.S)


def test_the_models_page_lists_base_and_fine_tuned_models(alice_client, acme, globex, tiny_chat):
    job = finished_job(acme)
    finished_job(globex, suffix="theirs")

    page = alice_client.get(MODELS).content.decode()

    [row] = rows(page)
    assert f'<code class="model-id" id="model-id-1">{job.fine_tuned_model}</code>' in row
    assert 'data-copy="model-id-1"' in row
    assert '<code class="plain">tiny-chat</code>' in row
    assert f'href="/fine-tuning/{job.public_id}/"' in row
    assert "Final" in row  # not made from a checkpoint
    assert f'href="/playground/?model={job.fine_tuned_model.replace(":", "%3A")}"' in row
    assert f'href="/models/{job.fine_tuned_model}/delete/"' in row
    assert "theirs" not in page  # another organization's model
    # Base models in id order: the embedding model, then tiny-chat; only chat models can be tried.
    assert 'id="base-model-id-1">all-MiniLM-L6-v2</code>' in page
    assert 'id="base-model-id-2">tiny-chat</code>' in page
    assert 'href="/playground/?model=tiny-chat"' in page
    assert "/playground/?model=all-MiniLM-L6-v2" not in page
    assert "Models</a>" in page and 'aria-current="page">Models' in page


def test_a_viewer_sees_models_but_cannot_delete(dave_client, acme, tiny_chat):
    job = finished_job(acme)

    page = dave_client.get(MODELS).content.decode()

    assert job.fine_tuned_model in page
    assert "/delete/" not in page
    response = dave_client.post(reverse("dashboard:model-delete", args=[job.fine_tuned_model]))
    assert response.status_code == 403
    assert FineTunedModel.unscoped.filter(model_id=job.fine_tuned_model).exists()


def test_no_fine_tuned_model_yet_says_how_to_get_one(alice_client, acme, tiny_chat):
    page = alice_client.get(MODELS).content.decode()

    assert "No fine-tuned models yet" in page
    assert "Start a fine-tuning job" in page


def test_deleting_a_model_asks_first_then_deletes_it_and_its_weights(
    alice_client, acme, tiny_chat, django_capture_on_commit_callbacks
):
    job = finished_job(acme)
    url = reverse("dashboard:model-delete", args=[job.fine_tuned_model])
    weights = f"jobs/{job.public_id}/final/adapter.safetensors"

    confirm = alice_client.get(url).content.decode()

    assert f"Delete {job.fine_tuned_model}?" in confirm
    assert "Requests naming this model will be refused" in confirm
    assert f'action="{url}"' in confirm
    assert FineTunedModel.unscoped.filter(model_id=job.fine_tuned_model).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(url, follow=True)

    assert response.redirect_chain[-1][0] == MODELS
    assert f"Deleted {job.fine_tuned_model}." in response.content.decode()
    assert not FineTunedModel.unscoped.filter(model_id=job.fine_tuned_model).exists()
    assert not get_artifact_store().exists(weights)


def test_another_organizations_model_or_a_base_model_cannot_be_deleted(
    charlie_client, alice_client, acme, tiny_chat
):
    job = finished_job(acme)

    for client, model_id in [(charlie_client, job.fine_tuned_model), (alice_client, "tiny-chat")]:
        url = reverse("dashboard:model-delete", args=[model_id])
        assert client.get(url).status_code == 404
        assert client.post(url).status_code == 404
    assert FineTunedModel.unscoped.filter(model_id=job.fine_tuned_model).exists()


def test_the_overview_counts_and_lists_fine_tuned_models(alice_client, acme, tiny_chat):
    job = finished_job(acme)

    page = alice_client.get(reverse("dashboard:home")).content.decode()

    models_stat = re.search(r"Models available</span>\s*<span class=\"stat-value\">(\d+)<", page)
    assert models_stat.group(1) == "3"  # tiny-chat, all-MiniLM-L6-v2 and the fine-tune
    assert "1 fine-tuned" in page
    assert job.fine_tuned_model in page
    assert "Fine-tuned from tiny-chat" in page


def test_a_checkpoint_becomes_a_model_of_its_own(alice_client, acme, tiny_chat):
    job = finished_job(acme, checkpoints=[4, 8])
    checkpoint = JobCheckpoint.unscoped.get(job=job, step_number=4)
    url = reverse("dashboard:checkpoint-model", args=[checkpoint.public_id])
    detail = reverse("dashboard:job-detail", args=[job.public_id])

    page = alice_client.get(detail).content.decode()
    assert f'action="{url}"' in page
    assert "Make a model" in page

    response = alice_client.post(url, follow=True)

    model_id = f"{job.fine_tuned_model}:ckpt-step-4"
    assert response.redirect_chain[-1][0] == detail
    assert f"The checkpoint at step 4 is now the model {model_id}." in response.content.decode()
    model = FineTunedModel.unscoped.get(model_id=model_id)
    assert (model.tenant, model.job, model.checkpoint) == (acme, job, checkpoint)
    assert model.artifact_key == checkpoint.artifact_key
    # The job page now says so instead of offering it again; the Models page lists it.
    page = alice_client.get(detail).content.decode()
    assert page.count("Make a model") == 1  # only step 8 is left
    assert "Is a model" in page
    listed = alice_client.get(MODELS).content.decode()
    [ckpt_row] = [row for row in rows(listed) if model_id in row]
    assert "Step 4" in ckpt_row


def test_a_checkpoint_model_is_listed_by_the_api_and_deleting_it_keeps_the_checkpoint(
    alice_client, alice_api, acme, tiny_chat, django_capture_on_commit_callbacks
):
    job = finished_job(acme, checkpoints=[4])
    checkpoint = JobCheckpoint.unscoped.get(job=job)
    model = checkpoint_models.fine_tuned_model_from_checkpoint(tenant=acme, checkpoint=checkpoint)

    listed = [m["id"] for m in alice_api.get("/v1/models").json()["data"]]
    assert model.model_id in listed

    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(reverse("dashboard:model-delete", args=[model.model_id]))

    assert not FineTunedModel.unscoped.filter(pk=model.pk).exists()
    assert JobCheckpoint.unscoped.filter(pk=checkpoint.pk).exists()
    assert get_artifact_store().exists(checkpoint.artifact_key)  # the checkpoint keeps its weights


def test_a_checkpoint_already_a_model_is_a_clear_409(alice_client, acme, tiny_chat):
    job = finished_job(acme, checkpoints=[4])
    checkpoint = JobCheckpoint.unscoped.get(job=job)
    checkpoint_models.fine_tuned_model_from_checkpoint(tenant=acme, checkpoint=checkpoint)

    with pytest.raises(checkpoint_models.ModelExists) as raised:
        checkpoint_models.fine_tuned_model_from_checkpoint(tenant=acme, checkpoint=checkpoint)
    assert raised.value.status == 409
    assert raised.value.code == "model_exists"

    url = reverse("dashboard:checkpoint-model", args=[checkpoint.public_id])
    page = alice_client.post(url, follow=True).content.decode()
    assert (
        f"The checkpoint at step 4 is already the model {job.fine_tuned_model}:ckpt-step-4." in page
    )
    assert FineTunedModel.unscoped.filter(checkpoint=checkpoint).count() == 1


def test_others_and_viewers_cannot_turn_checkpoints_into_models(
    charlie_client, dave_client, acme, tiny_chat
):
    job = finished_job(acme, checkpoints=[4])
    checkpoint = JobCheckpoint.unscoped.get(job=job)
    url = reverse("dashboard:checkpoint-model", args=[checkpoint.public_id])

    assert charlie_client.post(url).status_code == 404
    assert dave_client.post(url).status_code == 403
    assert (
        "Make a model"
        not in dave_client.get(
            reverse("dashboard:job-detail", args=[job.public_id])
        ).content.decode()
    )
    assert not FineTunedModel.unscoped.filter(checkpoint=checkpoint).exists()


def test_a_suspended_organization_cannot_make_a_model(alice_client, acme, tiny_chat):
    job = finished_job(acme, checkpoints=[4])
    checkpoint = JobCheckpoint.unscoped.get(job=job)
    tenant_services.organization_set_status(tenant=acme, status="suspended")

    url = reverse("dashboard:checkpoint-model", args=[checkpoint.public_id])
    response = alice_client.post(url)

    assert response.status_code == 403
    assert not FineTunedModel.unscoped.filter(checkpoint=checkpoint).exists()


def test_a_jobs_own_model_is_still_job_model_beside_its_checkpoint_models(acme, tiny_chat):
    job = finished_job(acme, checkpoints=[4])
    checkpoint = JobCheckpoint.unscoped.get(job=job)
    checkpoint_models.fine_tuned_model_from_checkpoint(tenant=acme, checkpoint=checkpoint)

    assert job.model.model_id == job.fine_tuned_model
    assert job.models.count() == 2
    assert finished_job(acme, suffix="none", model=False).model is None
