from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "tokenmill.billing"
    label = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tokenmill.billing import admission, receivers  # noqa: F401

        admission.install()
