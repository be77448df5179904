"""Billing's answers to other apps' signals (they sit below billing and cannot import it).

An organization's account (and its trial credit) is opened on its first use by billing,
not when it is created.
"""

from django.dispatch import receiver

from tokenmill.billing import budget
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.signals import job_budget_check, job_create_requested


@receiver(job_create_requested, sender=FineTuningJob, dispatch_uid="billing.job_create_budget")
def _job_create_budget(sender, tenant, request, **kwargs) -> None:
    budget.job_create_check(tenant=tenant, request=request)


@receiver(job_budget_check, sender=FineTuningJob, dispatch_uid="billing.job_prepare_budget")
def _job_prepare_budget(sender, job, estimated_trained_tokens: int, **kwargs) -> str | None:
    return budget.job_prepare_refusal(job=job, trained_tokens=estimated_trained_tokens)
