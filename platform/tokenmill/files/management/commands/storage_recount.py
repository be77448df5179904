"""Measure again what every organization keeps in the artifact store.

The ledger (files.StoredArtifact) is kept up to date as artifacts are written and
deleted; this recounts it from the store itself: after an upgrade from a version
that did not count checkpoints and models, or after bytes were removed by hand.
"""

from django.apps import apps
from django.core.management.base import BaseCommand

from tokenmill.files.models import File, StoredArtifact
from tokenmill.files.storage import file_folder
from tokenmill.files.storage_usage import stored_artifact_forget, stored_artifact_measure


def owned_folders() -> dict[str, object]:
    """Every folder an organization owns in the store, with its owner."""
    folders = {}
    for file in File.unscoped.select_related("tenant").iterator():
        folders[file_folder(file.public_id)] = file.tenant
    # Looked up by name: the files app sits below fine-tuning and imports nothing of it.
    for job in apps.get_model("finetuning", "FineTuningJob").unscoped.select_related("tenant"):
        folders[f"jobs/{job.public_id}"] = job.tenant
    for row in StoredArtifact.unscoped.select_related("tenant").iterator():
        folders.setdefault(row.key, row.tenant)
    return folders


class Command(BaseCommand):
    help = "Recount the bytes each organization keeps in the artifact store (the storage quota)."

    def handle(self, *args, **options):
        totals: dict[str, int] = {}
        for key, tenant in sorted(owned_folders().items()):
            size = stored_artifact_measure(tenant=tenant, key=key)
            if size == 0 and not key.startswith("jobs/"):
                stored_artifact_forget(tenant=tenant, key=key)  # a file whose bytes are gone
            totals[tenant.slug] = totals.get(tenant.slug, 0) + size
        for slug, total in sorted(totals.items()):
            self.stdout.write(f"{slug}: {total:,} bytes")
