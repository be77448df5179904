from functools import partial

from django.db import models
from django.utils import timezone

from tenants.ids import public_id
from tenants.models import ApiKey, Organization
from tenants.scoping import TenantScopedManager, UnscopedManager
from tokenmill.catalog.models import BaseModel
from tokenmill.files.models import File


class FineTuningJob(models.Model):
    """A fine-tuning job, with OpenAI's statuses and shape."""

    class Status(models.TextChoices):
        VALIDATING_FILES = "validating_files"
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    class TrainingType(models.TextChoices):
        LORA = "lora"
        FULL = "full"

    public_id = models.CharField(max_length=40, unique=True, default=partial(public_id, "ftjob-"))
    tenant = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="fine_tuning_jobs"
    )
    created_by_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    # RESTRICT, not PROTECT: a file a job uses cannot be deleted on its own, but deleting
    # the organization deletes both.
    training_file = models.ForeignKey(File, on_delete=models.RESTRICT, related_name="training_jobs")
    validation_file = models.ForeignKey(
        File, on_delete=models.RESTRICT, null=True, blank=True, related_name="validation_jobs"
    )
    suffix = models.CharField(max_length=64, blank=True)
    seed = models.PositiveIntegerField()
    metadata = models.JSONField(null=True, blank=True)
    training_type = models.CharField(
        max_length=8, choices=TrainingType.choices, default=TrainingType.LORA
    )
    # What the user asked for ("auto" or numbers), and what the platform chose.
    hyperparameters = models.JSONField(default=dict)
    resolved_hyperparameters = models.JSONField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.VALIDATING_FILES
    )
    error = models.JSONField(null=True, blank=True)
    fine_tuned_model = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 - OpenAI's null until it exists
    n_train_examples = models.PositiveIntegerField(null=True, blank=True)
    # Without a validation file: {"count", "seed"} of the training file's held-out split
    # (gpu_inference.holdout), excluded from training and evaluated on; set when prepared.
    holdout = models.JSONField(null=True, blank=True)
    estimated_trained_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    trained_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    estimated_finish = models.DateTimeField(null=True, blank=True)
    # Dispatch bookkeeping. A job holds a GPU slot from dispatch until a worker
    # reports its end (or the reaper gives up on the worker): `released_at`.
    # `attempt` is the attempt the next (or current) dispatch runs; a requeue or a
    # retry moves it on, and only reports of this attempt are accepted.
    attempt = models.PositiveIntegerField(default=1)
    # Attempts made before an operator's last retry; the reaper's bound counts from here.
    attempt_base = models.PositiveIntegerField(default=0)
    # Attempts since then that a draining worker handed back (SIGTERM): not the job's
    # fault, so they do not count against JOB_MAX_ATTEMPTS.
    handbacks = models.PositiveIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # When the reaper last asked for this job to be prepared (its trigger was lost).
    prepare_requested_at = models.DateTimeField(null=True, blank=True)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "dispatched_at"]),
            # Dispatch asks when each waiting tenant was last served.
            models.Index(fields=["tenant", "dispatched_at"], name="ft_job_tenant_dispatched"),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def model(self) -> "FineTunedModel | None":
        """The model the job made when it succeeded (not one made from a checkpoint)."""
        return self.models.filter(checkpoint__isnull=True).first()


class JobEvent(models.Model):
    class Level(models.TextChoices):
        INFO = "info"
        WARN = "warn"
        ERROR = "error"

    class Type(models.TextChoices):
        MESSAGE = "message"
        METRICS = "metrics"

    public_id = models.CharField(max_length=40, unique=True, default=partial(public_id, "ftevent-"))
    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(FineTuningJob, on_delete=models.CASCADE, related_name="events")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    type = models.CharField(max_length=8, choices=Type.choices, default=Type.MESSAGE)
    message = models.TextField()
    data = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Set on events a GPU worker reported: the attempt, and the report's number within it.
    attempt = models.PositiveIntegerField(null=True, blank=True)
    report_seq = models.PositiveIntegerField(null=True, blank=True)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "attempt", "report_seq"],
                condition=models.Q(report_seq__isnull=False),
                name="one_event_per_report",
            )
        ]

    def __str__(self) -> str:
        return self.message


class JobCheckpoint(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=partial(public_id, "ftckpt-"))
    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(FineTuningJob, on_delete=models.CASCADE, related_name="checkpoints")
    attempt = models.PositiveIntegerField(default=1)
    step_number = models.PositiveIntegerField()
    epoch = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict)
    fine_tuned_model_checkpoint = models.CharField(max_length=240)
    artifact_key = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "attempt", "step_number"], name="one_checkpoint_per_attempt_step"
            )
        ]

    def __str__(self) -> str:
        return self.fine_tuned_model_checkpoint


class FineTunedModel(models.Model):
    """A tenant's own model: an adapter (or full weights) on top of a base model."""

    model_id = models.CharField(max_length=200, unique=True)
    tenant = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="fine_tuned_models"
    )
    # The job's final model, or one registered from one of its checkpoints (`checkpoint`).
    job = models.ForeignKey(FineTuningJob, on_delete=models.CASCADE, related_name="models")
    checkpoint = models.ForeignKey(
        JobCheckpoint, on_delete=models.SET_NULL, null=True, blank=True, related_name="models"
    )
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    training_type = models.CharField(max_length=8, choices=FineTuningJob.TrainingType.choices)
    artifact_key = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.model_id


class JobEvaluation(models.Model):
    """The evaluation report of a succeeded job (tokenmill/finetuning/evaluation.py)."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for the model to be served by a replica
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    job = models.OneToOneField(FineTuningJob, on_delete=models.CASCADE, related_name="evaluation")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The model evaluated: the job's own, or a checkpoint's registered as a model.
    model_id = models.CharField(max_length=240)
    report = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="ft_eval_status_created")]

    def __str__(self) -> str:
        return f"evaluation of {self.job_id}"
