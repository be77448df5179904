from django.contrib import admin

from tokenmill.metering.models import LedgerEntry


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """Usage by organization, hour, model, key and kind: read-only, the ledger is exact."""

    list_display = [
        "tenant",
        "hour",
        "model",
        "kind",
        "key_public_id",
        "requests",
        "prompt_tokens",
        "completion_tokens",
    ]
    list_filter = ["kind", "hour", "tenant"]
    search_fields = ["tenant__slug", "model", "key_public_id"]
    date_hierarchy = "hour"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
