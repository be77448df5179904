from django.db.models import QuerySet

from tenants.models import Organization
from tokenmill.finetuning.models import (
    FineTunedModel,
    FineTuningJob,
    JobCheckpoint,
    JobEvaluation,
    JobEvent,
)


def job_list(*, tenant: Organization, status: str | None = None) -> QuerySet[FineTuningJob]:
    jobs = FineTuningJob.objects.for_tenant(tenant).select_related(
        "base_model", "training_file", "validation_file", "tenant"
    )
    return jobs.filter(status=status) if status else jobs


def job_events(*, tenant: Organization, job: FineTuningJob) -> QuerySet[JobEvent]:
    return JobEvent.objects.for_tenant(tenant).filter(job=job)


def job_checkpoints(*, tenant: Organization, job: FineTuningJob) -> QuerySet[JobCheckpoint]:
    return JobCheckpoint.objects.for_tenant(tenant).filter(job=job).select_related("job")


def fine_tuned_model_list(*, tenant: Organization) -> QuerySet[FineTunedModel]:
    return FineTunedModel.objects.for_tenant(tenant).select_related("tenant")


def job_evaluation(*, tenant: Organization, job: FineTuningJob) -> JobEvaluation | None:
    return JobEvaluation.objects.for_tenant(tenant).filter(job=job).first()
