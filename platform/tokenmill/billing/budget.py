"""The budget check of a fine-tuning job, with its estimated trained tokens, before it starts."""

from tenants.models import Organization
from tokenmill.billing.accounts import spend_allowance
from tokenmill.billing.errors import InsufficientQuota
from tokenmill.billing.pricing import request_cost_micros
from tokenmill.files.models import File
from tokenmill.finetuning.estimates import TokenizerUnavailable, job_estimate
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.params import JobRequest


def _dollars(micros: int) -> str:
    return f"${micros / 1_000_000:,.2f}"


def training_cost_micros(*, tenant_id: int, base_model: str, trained_tokens: int) -> int:
    return request_cost_micros(
        tenant_id=tenant_id,
        model=base_model,
        base_model=base_model,
        prompt_tokens=trained_tokens,
        completion_tokens=0,
        kind="training",
    )


def _refusal(allowance: int, cost: int, trained_tokens: int | None) -> str | None:
    if cost <= allowance and allowance > 0:
        return None
    if allowance <= 0:
        return (
            "You exceeded your current quota: your organization's credits and monthly spend "
            "limit are used up. Add credits or raise the limit on the billing page."
        )
    return (
        f"You exceeded your current quota: this job would train about {trained_tokens:,} "
        f"tokens for about {_dollars(cost)}, but your organization may spend only "
        f"{_dollars(allowance)} more this month. Add credits or raise the limit on the "
        "billing page, or train fewer tokens (fewer epochs or a smaller file)."
    )


def job_create_check(*, tenant: Organization, request: JobRequest) -> None:
    """Raise InsufficientQuota (429) when the budget cannot pay for the job's estimate.

    When the training file is still being validated the estimate is not known yet: only
    an exhausted budget is refused now, and job_prepare checks the estimate later."""
    allowance = spend_allowance(tenant_id=tenant.pk)
    if allowance is None:
        return
    cost, tokens = 0, None
    training_file = File.objects.for_tenant(tenant).filter(public_id=request.training_file).first()
    if training_file is not None and training_file.status == File.Status.PROCESSED:
        try:
            estimate = job_estimate(tenant=tenant, request=request)
        except TokenizerUnavailable:
            estimate = None  # job_prepare counts with the tokenizer, and checks then
        if estimate is not None:
            tokens = estimate.trained_tokens
            cost = training_cost_micros(
                tenant_id=tenant.pk,
                base_model=estimate.base_model.model_id,
                trained_tokens=tokens,
            )
    refusal = _refusal(allowance, cost, tokens)
    if refusal:
        raise InsufficientQuota(refusal)


def job_prepare_refusal(*, job: FineTuningJob, trained_tokens: int) -> str | None:
    allowance = spend_allowance(tenant_id=job.tenant_id)
    if allowance is None:
        return None
    cost = training_cost_micros(
        tenant_id=job.tenant_id, base_model=job.base_model.model_id, trained_tokens=trained_tokens
    )
    return _refusal(allowance, cost, trained_tokens)
