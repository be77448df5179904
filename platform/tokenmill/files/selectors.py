"""Reads on files."""

from django.conf import settings
from django.db.models import QuerySet, Sum

from tenants.models import Organization
from tokenmill.files.models import File, StoredArtifact


def file_list(*, tenant: Organization, purpose: str | None = None) -> QuerySet[File]:
    files = File.objects.for_tenant(tenant)
    return files.filter(purpose=purpose) if purpose else files


def storage_used_bytes(*, tenant: Organization) -> int:
    """Everything the organization keeps in the artifact store: files, their normalized
    copies, checkpoints and fine-tuned models (see storage_usage.py)."""
    rows = StoredArtifact.objects.for_tenant(tenant)
    return rows.aggregate(total=Sum("bytes"))["total"] or 0


def storage_quota_bytes(*, tenant: Organization) -> int:
    """The organization's own quota, else the platform default."""
    if tenant.storage_quota_bytes is not None:
        return tenant.storage_quota_bytes
    return settings.STORAGE_QUOTA_BYTES
