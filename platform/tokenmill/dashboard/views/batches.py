"""Batches: the organization's Batch API runs, their progress, counts and result files.

A batch still running polls `status/` every two seconds: the answer carries its
counts and status, and the page reloads itself once the batch has ended, to show
its files. Without JavaScript a refresh tag does the same every ten seconds.
"""

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import View

from tenants.models import Organization
from tokenmill.batches import selectors
from tokenmill.batches.models import Batch
from tokenmill.dashboard.mixins import TenantMixin
from tokenmill.dashboard.views.datasets import no_store

PAGE_SIZE = 25
ERRORS_SHOWN = 200
TIMELINE = (
    ("Created", "created_at"),
    ("Started", "in_progress_at"),
    ("Finalizing", "finalizing_at"),
    ("Completed", "completed_at"),
    ("Failed", "failed_at"),
    ("Cancelling", "cancelling_at"),
    ("Cancelled", "cancelled_at"),
    ("Expired", "expired_at"),
)
STATUS_LABELS = {
    Batch.Status.VALIDATING: "Validating",
    Batch.Status.FAILED: "Failed",
    Batch.Status.IN_PROGRESS: "In progress",
    Batch.Status.FINALIZING: "Finalizing",
    Batch.Status.COMPLETED: "Completed",
    Batch.Status.EXPIRED: "Expired",
    Batch.Status.CANCELLING: "Cancelling",
    Batch.Status.CANCELLED: "Cancelled",
}


def batch_progress(batch: Batch) -> dict:
    """What the page shows of a batch's counts: done of total, as a whole percent."""
    counts = batch.request_counts
    done = counts["completed"] + counts["failed"]
    total = counts["total"]
    return {
        **counts,
        "done": done,
        "percent": round(100 * done / total) if total else (100 if batch.is_terminal else 0),
        "status": batch.status,
        "status_label": STATUS_LABELS[batch.status],
        "terminal": batch.is_terminal,
    }


class BatchesPage(TenantMixin, View):
    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        return selectors.batch_list(tenant=tenant)


class BatchesView(BatchesPage):
    def get(self, request, *args, **kwargs) -> HttpResponse:
        page = Paginator(self.get_queryset(), PAGE_SIZE).get_page(request.GET.get("page"))
        rows = [(batch, batch_progress(batch)) for batch in page.object_list]
        context = {
            "page": page,
            "rows": rows,
            "running": any(not progress["terminal"] for _, progress in rows),
        }
        return render(request, "dashboard/batches.html", context)


class BatchDetailView(BatchesPage):
    def get(self, request, public_id: str) -> HttpResponse:
        batch = self.get_tenant_object(public_id)
        errors = batch.errors or []  # OpenAI's errors.data: one entry per bad line
        context = {
            "batch": batch,
            "progress": batch_progress(batch),
            "errors": errors[:ERRORS_SHOWN],
            "errors_hidden": max(0, len(errors) - ERRORS_SHOWN),
            "metadata": sorted((batch.metadata or {}).items()),
            "timeline": [
                (label, getattr(batch, field))
                for label, field in TIMELINE
                if getattr(batch, field) is not None
            ],
        }
        return render(request, "dashboard/batch_detail.html", context)


class BatchStatusView(BatchesPage):
    """Polled by a batch's page (and the list) while the batch runs."""

    def get(self, request, public_id: str) -> HttpResponse:
        batch = self.get_tenant_object(public_id)
        return no_store(JsonResponse({"id": batch.public_id, **batch_progress(batch)}))
