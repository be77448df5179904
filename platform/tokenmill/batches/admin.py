from django.contrib import admin

from tokenmill.batches.models import Batch


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    """Read-mostly: operators look; tenants cancel through the API or the dashboard."""

    list_display = (
        "public_id",
        "tenant",
        "endpoint",
        "status",
        "request_counts_total",
        "request_counts_completed",
        "request_counts_failed",
        "created_at",
    )
    list_filter = ("status", "endpoint")
    search_fields = ("public_id", "tenant__slug", "tenant__name")
    date_hierarchy = "created_at"
    list_select_related = ("tenant",)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
