"""Signals other apps listen to (they sit above fine-tuning and may not be imported here)."""

from django.dispatch import Signal

#: sent after the transaction that marked a job succeeded commits; kwargs: job_id
job_succeeded = Signal()

#: sent by job_create before anything is written; kwargs: tenant, request (a JobRequest).
#: A receiver refuses the job by raising TenantError (billing: the budget).
job_create_requested = Signal()

#: sent by job_prepare once the job's trained tokens are estimated, before it is queued;
#: kwargs: job, estimated_trained_tokens. A receiver returns a message to fail the job
#: with code insufficient_quota (billing: the budget ran out meanwhile), else None.
job_budget_check = Signal()
