from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "tokenmill.files"
    label = "files"
    verbose_name = "Files"
