"""Storage accounting: every byte a tenant keeps in the artifact store counts.

Each folder a tenant owns in the store (`files/<file-id>`: the upload and its
normalized copy; `jobs/<job-id>`: every attempt's checkpoints and the fine-tuned
model) has a `StoredArtifact` row with its size, recorded when the folder is written
and measured again when it grows or shrinks. The quota counts their sum; deleting an
organization deletes every folder listed.
"""

from django.db import transaction
from django.utils import timezone

from tenants.models import Organization
from tokenmill.files.models import File, StoredArtifact
from tokenmill.files.storage import file_folder, get_artifact_store


def stored_artifact_record(*, tenant: Organization, key: str, size: int) -> None:
    """Record that `key` holds `size` bytes of `tenant`'s (insert or update, race-free)."""
    StoredArtifact.unscoped.bulk_create(
        [StoredArtifact(tenant=tenant, key=key, bytes=size, updated_at=timezone.now())],
        update_conflicts=True,
        unique_fields=["key"],
        update_fields=["bytes", "updated_at"],
    )


def stored_artifact_measure(*, tenant: Organization, key: str) -> int:
    """Measure what `key` holds in the store now and record it; returns the bytes."""
    size = get_artifact_store().size(key)
    stored_artifact_record(tenant=tenant, key=key, size=size)
    return size


def stored_artifact_forget(*, tenant: Organization, key: str) -> None:
    """The folder is deleted: its bytes no longer count."""
    StoredArtifact.objects.for_tenant(tenant).filter(key=key).delete()


def organization_artifacts_delete(*, tenant: Organization) -> list[str]:
    """Delete every folder the organization owns in the store, once its deletion commits.

    Called while the organization's rows are being deleted; returns the keys.
    """
    keys = set(StoredArtifact.objects.for_tenant(tenant).values_list("key", flat=True))
    # Files are listed from their own rows too, in case one predates the ledger.
    for public_id in File.objects.for_tenant(tenant).values_list("public_id", flat=True):
        keys.add(file_folder(public_id))
    store = get_artifact_store()

    def delete_all() -> None:
        for key in sorted(keys):
            store.delete(key)

    transaction.on_commit(delete_all)
    return sorted(keys)


def on_organization_delete(sender, instance: Organization, **kwargs) -> None:
    organization_artifacts_delete(tenant=instance)
