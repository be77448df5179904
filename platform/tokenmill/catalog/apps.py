from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "tokenmill.catalog"
    label = "catalog"
    verbose_name = "Catalog"
