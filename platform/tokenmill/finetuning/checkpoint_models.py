"""A checkpoint of a fine-tuning job registered as a fine-tuned model of its own.

The model is named by the checkpoint (`ft:…:ckpt-step-N`) and points at the
checkpoint's weights, which stay the checkpoint's: deleting the model keeps them
(services.fine_tuned_model_delete).
"""

from django.db import transaction

from tenants.errors import TenantError
from tenants.models import Organization
from tokenmill.finetuning import adapters
from tokenmill.finetuning.models import FineTunedModel, FineTuningJob, JobCheckpoint
from tokenmill.finetuning.services import event_add


class ModelExists(TenantError):
    status = 409

    def __init__(self, message: str):
        super().__init__(message, code="model_exists", param="checkpoint")


def fine_tuned_model_from_checkpoint(
    *, tenant: Organization, checkpoint: JobCheckpoint
) -> FineTunedModel:
    """Register a checkpoint's weights as a model of its own, named by the checkpoint's id."""
    checkpoint = (
        JobCheckpoint.objects.for_tenant(tenant).select_related("job").get(pk=checkpoint.pk)
    )
    model_id = checkpoint.fine_tuned_model_checkpoint
    with transaction.atomic():
        model, created = FineTunedModel.objects.for_tenant(tenant).get_or_create(
            model_id=model_id,
            defaults={
                "tenant": tenant,
                "job": checkpoint.job,
                "checkpoint": checkpoint,
                "base_model_id": checkpoint.job.base_model_id,
                "training_type": checkpoint.job.training_type,
                "artifact_key": checkpoint.artifact_key,
            },
        )
        if not created:
            raise ModelExists(
                f"The checkpoint at step {checkpoint.step_number} is already the model {model_id}."
            )
        event_add(
            checkpoint.job,
            f"Checkpoint at step {checkpoint.step_number} registered as the model {model_id}",
        )
        if model.training_type == FineTuningJob.TrainingType.LORA:
            # The replicas load it like the job's own model, so it answers through the gateway.
            adapters.adapters_publish_on_commit(base_model=checkpoint.job.base_model)
    return model
