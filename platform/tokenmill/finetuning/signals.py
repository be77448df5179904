"""Signals other apps listen to (they sit above fine-tuning and may not be imported here)."""

from django.dispatch import Signal

#: sent after the transaction that marked a job succeeded commits; kwargs: job_id
job_succeeded = Signal()
