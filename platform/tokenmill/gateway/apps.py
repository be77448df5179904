from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "tokenmill.gateway"
    label = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from tokenmill.gateway import signals  # noqa: F401  (connects the cache invalidation)
