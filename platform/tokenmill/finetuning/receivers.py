"""What the fine-tuning app does when the apps below it announce something."""

from django.dispatch import receiver

from tokenmill.files.signals import validation_finished
from tokenmill.finetuning import scheduling


@receiver(validation_finished, dispatch_uid="finetuning-prepare-after-validation")
def prepare_jobs_waiting_for_the_file(sender, *, tenant, file_id, **kwargs) -> None:
    scheduling.jobs_prepare_after_validation(tenant=tenant, file_id=file_id)
