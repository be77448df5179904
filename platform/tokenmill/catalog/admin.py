from django.contrib import admin

from tokenmill.catalog.models import BaseModel


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = [
        "model_id",
        "display_name",
        "status",
        "context_length",
        "input_price_per_million",
        "output_price_per_million",
        "training_price_per_million",
    ]
    list_filter = ["status", "supports_fine_tuning"]
    search_fields = ["model_id", "display_name"]
