"""The console's metrics page (staff only, through the admin site's own login)."""

from django.contrib import admin
from django.template.response import TemplateResponse

from tokenmill.observability.figures import figures


def metrics_page(request):
    context = {**admin.site.each_context(request), "title": "Metrics", "figures": figures()}
    return TemplateResponse(request, "console/metrics.html", context)
