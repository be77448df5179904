"""The operator console's files page: what tenants uploaded, and why validation failed."""

import json

from django.contrib import admin
from django.db.models import QuerySet
from django.utils.html import format_html

from tokenmill.files import services
from tokenmill.files.models import File


@admin.register(File)
class FileAdmin(admin.ModelAdmin):
    list_display = ["public_id", "filename", "tenant", "purpose", "status", "bytes", "created_at"]
    list_filter = ["purpose", "status", "tenant"]
    search_fields = ["public_id", "filename"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    fields = [
        "public_id",
        "tenant",
        "filename",
        "purpose",
        "status",
        "status_details",
        "bytes",
        "sha256",
        "storage_key",
        "normalized_key",
        "created_at",
        "processed_at",
        "validation_report",
    ]
    readonly_fields = fields

    @admin.display(description="validation report")
    def validation_report(self, file: File) -> str:
        if file.validation is None:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(file.validation, indent=2))

    def has_add_permission(self, request) -> bool:
        return False  # files come in through the API, which stores their bytes

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    # Deleting goes through the service, so the bytes leave the store with the row.
    def delete_model(self, request, obj: File) -> None:
        services.file_delete(tenant=obj.tenant, file=obj)

    def delete_queryset(self, request, queryset: QuerySet[File]) -> None:
        for file in queryset.select_related("tenant"):
            services.file_delete(tenant=file.tenant, file=file)
