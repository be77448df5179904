from django.dispatch import receiver

from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.signals import job_succeeded
from tokenmill.metering.services import training_event_emit


@receiver(job_succeeded)
def _emit_training_usage(sender, job_id: int, **kwargs) -> None:
    job = FineTuningJob.unscoped.select_related("base_model").get(pk=job_id)
    training_event_emit(job=job)
