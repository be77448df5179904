from functools import partial

from django.db import models
from django.utils import timezone

from tenants.ids import public_id
from tenants.models import Organization
from tenants.scoping import TenantScopedManager, UnscopedManager


class File(models.Model):
    """An uploaded file, in OpenAI's shape; its bytes live in the artifact store.

    A row exists only once its bytes are stored whole (`storage_key`), so `bytes`
    and `sha256` always describe what is in the store.
    """

    class Purpose(models.TextChoices):
        FINE_TUNE = "fine-tune"
        USER_DATA = "user_data"
        BATCH = "batch"
        # Written by the platform (a batch's output and error files), never uploaded.
        BATCH_OUTPUT = "batch_output"

    class Status(models.TextChoices):
        UPLOADED = "uploaded"  # stored; validation pending
        PROCESSED = "processed"
        ERROR = "error"

    public_id = models.CharField(max_length=40, unique=True, default=partial(public_id, "file-"))
    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="files")
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    filename = models.CharField(max_length=255)
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    # The first error, for OpenAI's `status_details`; the whole report is in `validation`.
    status_details = models.TextField(blank=True)
    validation = models.JSONField(null=True, blank=True)
    # The normalized JSONL the trainer reads; set only when validation passed.
    normalized_key = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "purpose", "created_at"])]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.filename})"


class StoredArtifact(models.Model):
    """What a tenant keeps in the artifact store, one row per folder it owns there (a
    file's `files/<file-id>`, a job's `jobs/<job-id>` with every attempt's checkpoints
    and model): the storage quota counts the sum of `bytes`, and deleting the
    organization deletes every folder listed here."""

    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=300, unique=True)
    bytes = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    def __str__(self) -> str:
        return f"{self.key} ({self.bytes} bytes)"
