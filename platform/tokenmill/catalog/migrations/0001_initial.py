from decimal import Decimal

import django.utils.timezone
from django.db import migrations, models


def seed_demo_model(apps, schema_editor):
    BaseModel = apps.get_model("catalog", "BaseModel")
    BaseModel.objects.get_or_create(
        model_id="tiny-chat",
        defaults={
            "display_name": "Tiny Chat (demo)",
            "description": (
                "A 0.7M-parameter Llama-architecture chat model built locally on first start. "
                "Small enough to fine-tune on a laptop CPU in seconds."
            ),
            "path": "tiny-chat",
            "context_length": 256,
            "parameter_count": 700_000,
            "input_price_per_million": Decimal("0.10"),
            "output_price_per_million": Decimal("0.20"),
            "training_price_per_million": Decimal("0.50"),
        },
    )


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="BaseModel",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "model_id",
                    models.SlugField(
                        help_text="The id clients send as `model`.", max_length=64, unique=True
                    ),
                ),
                ("display_name", models.CharField(max_length=120)),
                ("description", models.TextField(blank=True)),
                ("owned_by", models.CharField(default="tokenmill", max_length=64)),
                ("path", models.CharField(max_length=500)),
                ("context_length", models.PositiveIntegerField()),
                ("parameter_count", models.PositiveBigIntegerField(default=0)),
                ("supports_fine_tuning", models.BooleanField(default=True)),
                (
                    "status",
                    models.CharField(
                        choices=[("active", "Active"), ("disabled", "Disabled")],
                        default="active",
                        max_length=16,
                    ),
                ),
                (
                    "input_price_per_million",
                    models.DecimalField(decimal_places=6, default=Decimal("0"), max_digits=12),
                ),
                (
                    "output_price_per_million",
                    models.DecimalField(decimal_places=6, default=Decimal("0"), max_digits=12),
                ),
                (
                    "training_price_per_million",
                    models.DecimalField(decimal_places=6, default=Decimal("0"), max_digits=12),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"ordering": ["model_id"]},
        ),
        migrations.RunPython(seed_demo_model, migrations.RunPython.noop),
    ]
