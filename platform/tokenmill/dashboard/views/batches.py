"""Batches: the organization's Batch API runs, their progress, counts and result files.

A batch still running polls `status/` every two seconds: the answer carries its
counts and status, and the page reloads itself once the batch has ended, to show
its files. Without JavaScript a refresh tag does the same every ten seconds.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from tenants.errors import TenantError
from tenants.models import Organization, Role
from tokenmill.batches import selectors, services
from tokenmill.batches.models import Batch
from tokenmill.dashboard.forms import BatchForm, add_service_error
from tokenmill.dashboard.mixins import TenantMixin
from tokenmill.dashboard.views.datasets import no_store
from tokenmill.files import selectors as file_selectors
from tokenmill.files.models import File

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
        initial = {"input_file": request.GET.get("input_file", "")}
        return self._page(self._form(initial=initial))

    def post(self, request, *args, **kwargs) -> HttpResponse:
        form = self._form(request.POST)
        if not form.is_valid():
            return self._page(form, status=400)
        data = {**form.cleaned_data, "completion_window": "24h"}
        try:
            batch = services.batch_create(
                tenant=self.tenant,
                data={"input_file_id": data.pop("input_file"), **data},
                user_id=request.user.pk,
            )
        except TenantError as error:
            add_service_error(form, error, fields={"input_file_id": "input_file"})
            return self._page(form, status=error.status)
        messages.success(request, f"Created {batch.public_id}: its lines are being checked.")
        return redirect("dashboard:batch-detail", batch.public_id)

    def _form(self, data=None, *, initial=None) -> BatchForm:
        files = file_selectors.file_list(tenant=self.tenant, purpose=File.Purpose.BATCH)
        return BatchForm(data, initial=initial, files=files, endpoints=Batch.Endpoint.values)

    def _page(self, form: BatchForm, *, status: int = 200) -> HttpResponse:
        page = Paginator(self.get_queryset(), PAGE_SIZE).get_page(self.request.GET.get("page"))
        rows = [(batch, batch_progress(batch)) for batch in page.object_list]
        context = {
            "page": page,
            "rows": rows,
            "running": any(not progress["terminal"] for _, progress in rows),
            "form": form,
            "can_create": self.can(Role.MEMBER),
            "has_files": bool(form.fields["input_file"].choices),
        }
        return render(self.request, "dashboard/batches.html", context, status=status)


class BatchDetailView(BatchesPage):
    def get(self, request, public_id: str) -> HttpResponse:
        batch = self.get_tenant_object(public_id)
        errors = batch.errors or []  # OpenAI's errors.data: one entry per bad line
        context = {
            "batch": batch,
            "progress": batch_progress(batch),
            "nothing_ran": batch.is_terminal and not batch.request_counts_total,
            "errors": errors[:ERRORS_SHOWN],
            "errors_hidden": max(0, len(errors) - ERRORS_SHOWN),
            "metadata": sorted((batch.metadata or {}).items()),
            "can_cancel": self.can(Role.MEMBER)
            and batch.status in (Batch.Status.VALIDATING, Batch.Status.IN_PROGRESS),
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


class BatchCancelView(BatchesPage):
    def get(self, request, public_id: str) -> HttpResponse:
        batch = self.get_tenant_object(public_id)
        return render(
            request,
            "dashboard/confirm.html",
            {
                "title": f"Cancel {batch.public_id}?",
                "message": (
                    "No new request is sent. The requests already running finish, and the "
                    "output and error files keep every finished line."
                ),
                "action": reverse("dashboard:batch-cancel", args=[public_id]),
                "button": "Cancel batch",
                "cancel": reverse("dashboard:batch-detail", args=[public_id]),
            },
        )

    def post(self, request, public_id: str) -> HttpResponse:
        batch = self.get_tenant_object(public_id)
        try:
            batch = services.batch_cancel(tenant=self.tenant, batch=batch)
        except TenantError as error:
            messages.error(request, error.message)
        else:
            done = "Cancelled" if batch.status == Batch.Status.CANCELLED else "Cancelling"
            messages.success(request, f"{done} {batch.public_id}.")
        return redirect("dashboard:batch-detail", public_id)
