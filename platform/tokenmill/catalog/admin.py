from django.contrib import admin
from django.db import models

from tokenmill.catalog.models import BaseModel, PriceOverride, Replica

# Replica URLs are usually plain http inside the cluster: say so, do not assume https.
_URL_FIELDS = {models.URLField: {"assume_scheme": "http"}}


class ReplicaInline(admin.TabularInline):
    model = Replica
    formfield_overrides = _URL_FIELDS
    extra = 0
    fields = [
        "url",
        "weight",
        "max_concurrent_requests",
        "enabled",
        "health",
        "last_checked_at",
        "adapters",
        "last_error",
    ]
    readonly_fields = ["health", "last_checked_at", "adapters", "last_error"]


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = [
        "model_id",
        "display_name",
        "kind",
        "status",
        "context_length",
        "replica_count",
        "input_price_per_million",
        "output_price_per_million",
        "training_price_per_million",
    ]
    list_filter = ["status", "kind", "supports_fine_tuning"]
    search_fields = ["model_id", "display_name"]
    inlines = [ReplicaInline]

    @admin.display(description="replicas")
    def replica_count(self, obj: BaseModel) -> int:
        return obj.replicas.count()


@admin.register(Replica)
class ReplicaAdmin(admin.ModelAdmin):
    """Deployments: where each base model is served, and how healthy each endpoint is."""

    formfield_overrides = _URL_FIELDS

    list_display = [
        "base_model",
        "url",
        "weight",
        "max_concurrent_requests",
        "enabled",
        "health",
        "last_checked_at",
        "adapter_count",
    ]
    list_filter = ["health", "enabled", "base_model"]
    list_editable = ["weight", "max_concurrent_requests", "enabled"]
    search_fields = ["url", "base_model__model_id"]
    readonly_fields = ["health", "last_checked_at", "adapters", "last_error", "created_at"]
    list_select_related = ["base_model"]

    @admin.display(description="adapters")
    def adapter_count(self, obj: Replica) -> int:
        return len(obj.adapters or [])


@admin.register(PriceOverride)
class PriceOverrideAdmin(admin.ModelAdmin):
    """A fine-tuned model's own prices, or an Enterprise organization's; the gateway's
    processes apply a change within half a minute."""

    list_display = [
        "model",
        "organization",
        "input_price_per_million",
        "output_price_per_million",
        "training_price_per_million",
        "reason",
    ]
    search_fields = ["model", "organization__slug"]
    autocomplete_fields = ["organization"]
