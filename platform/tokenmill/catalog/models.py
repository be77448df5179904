from decimal import Decimal

from django.db import models
from django.utils import timezone


class BaseModel(models.Model):
    """An open model the platform serves and fine-tunes, with its prices."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        DISABLED = "disabled"

    class Kind(models.TextChoices):
        CHAT = "chat"  # /v1/chat/completions and /v1/completions
        EMBEDDING = "embedding"  # /v1/embeddings

    model_id = models.SlugField(
        max_length=64, unique=True, help_text="The id clients send as `model`."
    )
    display_name = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHAT)
    description = models.TextField(blank=True)
    owned_by = models.CharField(max_length=64, default="tokenmill")
    # A folder in Hugging Face layout, absolute or relative to MODEL_ROOT, or
    # `package:<distribution>` for a model that ships inside a Python package.
    path = models.CharField(max_length=500)
    context_length = models.PositiveIntegerField()
    parameter_count = models.PositiveBigIntegerField(default=0)
    supports_fine_tuning = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Prices in US dollars per million tokens; Decimal, never float.
    input_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0")
    )
    output_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0")
    )
    training_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0")
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_id"]

    def __str__(self) -> str:
        return self.model_id


class Replica(models.Model):
    """One serving endpoint of a base model: a vLLM server, or a load balancer in front of many.

    Fine-tuned models are served by their base model's replicas (vLLM LoRA adapters),
    so routing needs only the base model's replicas and which adapters each holds.
    """

    class Health(models.TextChoices):
        UNKNOWN = "unknown"
        HEALTHY = "healthy"
        UNHEALTHY = "unhealthy"

    base_model = models.ForeignKey(BaseModel, on_delete=models.CASCADE, related_name="replicas")
    url = models.URLField(
        max_length=500,
        help_text="Root of an OpenAI-compatible server (without /v1), e.g. http://10.0.0.5:8000.",
    )
    api_key = models.CharField(
        max_length=200, blank=True, help_text="Sent as a Bearer token to the replica, if set."
    )
    weight = models.PositiveIntegerField(
        default=1,
        help_text="Relative share of traffic; a load balancer in front of N servers takes N.",
    )
    max_concurrent_requests = models.PositiveIntegerField(
        default=64,
        help_text="Requests in flight from one gateway process before it looks elsewhere.",
    )
    enabled = models.BooleanField(default=True, help_text="Untick to drain the replica.")
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.UNKNOWN)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Served names of the LoRA adapters loaded on it, from its /v1/models.
    adapters = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["base_model__model_id", "url"]
        constraints = [
            models.UniqueConstraint(fields=["base_model", "url"], name="replica_unique_url"),
            models.CheckConstraint(
                condition=models.Q(weight__gte=1), name="replica_weight_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(max_concurrent_requests__gte=1),
                name="replica_concurrency_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.base_model_id and self.base_model.model_id} @ {self.url}"


class PriceOverride(models.Model):
    """Prices an operator sets for one model, for everyone or for one organization.

    A fine-tuned model (`ft:...`) is billed at its base model's prices unless an override
    names it; an Enterprise organization's override (organization set) wins over a general one.
    """

    model = models.CharField(
        max_length=200, help_text="A base model id or a fine-tuned model id (ft:...)."
    )
    # Named apart from `tenant`: these rows are the operator's, most of them for everyone.
    organization = models.ForeignKey(
        "tenants.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        help_text="Only for this organization (Enterprise prices); empty: for everyone.",
    )
    input_price_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    output_price_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    training_price_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "organization"], name="price_override_once_per_organization"
            ),
            models.UniqueConstraint(
                fields=["model"],
                condition=models.Q(organization__isnull=True),
                name="price_override_once_for_everyone",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} ({self.organization or 'everyone'})"
