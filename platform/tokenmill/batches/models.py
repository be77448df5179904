from functools import partial

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.ids import public_id
from tenants.models import ApiKey, Organization
from tenants.scoping import TenantScopedManager, UnscopedManager
from tokenmill.files.models import File


class Batch(models.Model):
    """A batch of inference requests read from a `purpose=batch` file, in OpenAI's shape.

    Its lines run on the batch queue through the gateway's own request path; what they
    answered is written, chunk by chunk (`BatchChunk`), to the artifact store and joined
    into the output and error files when the batch ends.
    """

    class Status(models.TextChoices):
        VALIDATING = "validating"
        FAILED = "failed"
        IN_PROGRESS = "in_progress"
        FINALIZING = "finalizing"
        COMPLETED = "completed"
        EXPIRED = "expired"
        CANCELLING = "cancelling"
        CANCELLED = "cancelled"

    TERMINAL = (Status.FAILED, Status.COMPLETED, Status.EXPIRED, Status.CANCELLED)

    class Endpoint(models.TextChoices):
        CHAT = "/v1/chat/completions"
        COMPLETIONS = "/v1/completions"
        EMBEDDINGS = "/v1/embeddings"

    public_id = models.CharField(max_length=40, unique=True, default=partial(public_id, "batch_"))
    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="batches")
    endpoint = models.CharField(max_length=32, choices=Endpoint.choices)
    # RESTRICT: a file a batch reads cannot be deleted on its own; deleting the
    # organization deletes both.
    input_file = models.ForeignKey(File, on_delete=models.RESTRICT, related_name="batches")
    completion_window = models.CharField(max_length=8, default="24h")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.VALIDATING)
    # Who created it: an API key (the /v1 API), or a dashboard user. Its lines run as
    # that key (or user) would, re-checked when the run starts.
    created_by_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by_key_public_id = models.CharField(max_length=40, blank=True)
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    output_file = models.ForeignKey(
        File, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    error_file = models.ForeignKey(
        File, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # OpenAI's `errors.data`: [{"code", "message", "param", "line"}], set when validation failed.
    errors = models.JSONField(null=True, blank=True)
    request_counts_total = models.PositiveIntegerField(default=0)
    request_counts_completed = models.PositiveIntegerField(default=0)
    request_counts_failed = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    in_progress_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # The run's lease: the worker running the batch refreshes `heartbeat_at` as lines
    # finish; a run whose heartbeat went stale (its worker died) is taken over.
    run_token = models.CharField(max_length=32, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["status", "expires_at"], name="batch_status_expires")]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def request_counts(self) -> dict:
        return {
            "total": self.request_counts_total,
            "completed": self.request_counts_completed,
            "failed": self.request_counts_failed,
        }


class BatchChunk(models.Model):
    """One run of consecutive input lines whose results are stored: the durable record
    that lets a redelivered run skip what is done, neither losing nor repeating a line."""

    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_line = models.PositiveIntegerField()  # 1-based, as errors count lines
    line_count = models.PositiveIntegerField()
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # The chunk's output and error lines in the artifact store ("" when it has none).
    output_key = models.CharField(max_length=300, blank=True)
    error_key = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        ordering = ["index"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "index"], name="one_chunk_per_index")
        ]

    def __str__(self) -> str:
        return f"{self.batch_id} chunk {self.index}"
