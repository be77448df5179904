from django.contrib import admin

from tokenmill.catalog.models import BaseModel, Replica


class ReplicaInline(admin.TabularInline):
    model = Replica
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
