from django.apps import AppConfig


class FinetuningConfig(AppConfig):
    name = "tokenmill.finetuning"
    label = "finetuning"
    verbose_name = "Fine-tuning"
