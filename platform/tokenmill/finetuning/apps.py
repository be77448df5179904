from django.apps import AppConfig


class FinetuningConfig(AppConfig):
    name = "tokenmill.finetuning"
    label = "finetuning"
    verbose_name = "Fine-tuning"

    def ready(self) -> None:
        from tokenmill.finetuning import receivers  # noqa: F401 - connects the receivers
