from django.db.models.signals import post_save
from django.dispatch import receiver

from tenants.models import Organization
from tokenmill.billing import budget
from tokenmill.billing.accounts import account_for
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.signals import job_budget_check, job_create_requested


@receiver(post_save, sender=Organization, dispatch_uid="billing.open_account")
def _open_account(sender, instance: Organization, created=False, raw=False, **kwargs) -> None:
    if created and not raw:
        account_for(tenant=instance)


@receiver(job_create_requested, sender=FineTuningJob, dispatch_uid="billing.job_create_budget")
def _job_create_budget(sender, tenant, request, **kwargs) -> None:
    budget.job_create_check(tenant=tenant, request=request)


@receiver(job_budget_check, sender=FineTuningJob, dispatch_uid="billing.job_prepare_budget")
def _job_prepare_budget(sender, job, estimated_trained_tokens: int, **kwargs) -> str | None:
    return budget.job_prepare_refusal(job=job, trained_tokens=estimated_trained_tokens)
