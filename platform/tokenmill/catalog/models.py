from decimal import Decimal

from django.db import models
from django.utils import timezone


class BaseModel(models.Model):
    """An open model the platform serves and fine-tunes, with its prices."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        DISABLED = "disabled"

    model_id = models.SlugField(
        max_length=64, unique=True, help_text="The id clients send as `model`."
    )
    display_name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    owned_by = models.CharField(max_length=64, default="tokenmill")
    # A folder in Hugging Face layout, absolute or relative to MODEL_ROOT.
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
