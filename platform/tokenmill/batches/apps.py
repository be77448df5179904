from django.apps import AppConfig


class BatchesConfig(AppConfig):
    name = "tokenmill.batches"
    label = "batches"
    verbose_name = "Batches"
