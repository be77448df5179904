from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "tokenmill.metering"
    label = "metering"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tokenmill.metering import receivers  # noqa: F401
