"""Reads on batches: the API's and the dashboard's."""

from django.db.models import QuerySet

from tenants.models import Organization
from tokenmill.batches.models import Batch


def batch_list(*, tenant: Organization, status: str | None = None) -> QuerySet[Batch]:
    """The organization's batches, newest first, with their files loaded."""
    batches = Batch.objects.for_tenant(tenant).select_related(
        "input_file", "output_file", "error_file"
    )
    return batches.filter(status=status) if status else batches


def batch_get(*, tenant: Organization, batch_id: str) -> Batch | None:
    """One batch by its public id; None when it is missing or another tenant's."""
    return batch_list(tenant=tenant).filter(public_id=batch_id).first()
