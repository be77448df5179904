from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "tokenmill.files"
    label = "files"
    verbose_name = "Files"

    def ready(self) -> None:
        from django.db.models.signals import pre_delete

        from tenants.models import Organization
        from tokenmill.files.storage_usage import on_organization_delete

        # tenants imports nothing of tokenmill, so the store's cleanup listens here.
        pre_delete.connect(
            on_organization_delete, sender=Organization, dispatch_uid="files-organization-bytes"
        )
