from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "tokenmill.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
