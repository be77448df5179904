"""Datasets: the organization's files, uploads with a progress bar, and validation reports.

The upload form posts multipart to the list's URL. A browser with JavaScript sends
it with XMLHttpRequest (for the progress bar) and `Accept: application/json`, and
gets JSON back; without JavaScript the same POST redirects to the new file's page,
or shows the form again with the errors beside their fields.
"""

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views import View

from tenants.errors import TenantError
from tenants.models import Organization, Role
from tokenmill.dashboard.forms import DatasetUploadForm, add_service_error
from tokenmill.dashboard.mixins import TenantMixin
from tokenmill.files import downloads, selectors, services
from tokenmill.files.models import File
from tokenmill.finetuning import selectors as finetuning_selectors

PAGE_SIZE = 50


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def no_store(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)  # polled: a cached answer would freeze the page
    return response


class DatasetsPage(TenantMixin, View):
    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        return selectors.file_list(tenant=tenant)


class DatasetsView(DatasetsPage):
    def get(self, request, *args, **kwargs) -> HttpResponse:
        return self._page(DatasetUploadForm())

    def post(self, request, *args, **kwargs) -> HttpResponse:
        form = DatasetUploadForm()
        try:
            # Before the form reads the files: refuse an oversized upload unstored.
            services.upload_size_check(content_length=request.META.get("CONTENT_LENGTH"))
            form = DatasetUploadForm(request.POST, request.FILES)
            if not form.is_valid():
                return self._invalid(form, status=400)
            file = services.file_create(
                tenant=self.tenant,
                upload=form.cleaned_data["file"],
                purpose=form.cleaned_data["purpose"],
            )
        except TenantError as error:
            add_service_error(form, error)
            return self._invalid(form, status=error.status)
        url = reverse("dashboard:dataset-detail", args=[file.public_id])
        if wants_json(request):
            body = {"id": file.public_id, "filename": file.filename, "status": file.status}
            return JsonResponse({**body, "url": url}, status=201)
        messages.success(request, f"Uploaded {file.filename}.")
        return redirect(url)

    def _invalid(self, form: DatasetUploadForm, *, status: int) -> HttpResponse:
        if wants_json(self.request):
            return JsonResponse({"errors": form.errors.get_json_data()}, status=status)
        return self._page(form, status=status)

    def _page(self, form: DatasetUploadForm, *, status: int = 200) -> HttpResponse:
        used = selectors.storage_used_bytes(tenant=self.tenant)
        quota = selectors.storage_quota_bytes(tenant=self.tenant)
        page = Paginator(self.get_queryset(), PAGE_SIZE).get_page(self.request.GET.get("page"))
        context = {
            "page": page,
            "files": page.object_list,
            "form": form,
            "can_upload": self.can(Role.MEMBER),
            "storage_used": used,
            "storage_quota": quota,
            "storage_percent": min(100, round(100 * used / quota)) if quota else 100,
            "max_bytes": settings.FILE_MAX_BYTES,
        }
        return render(self.request, "dashboard/datasets.html", context, status=status)


class DatasetDetailView(DatasetsPage):
    def get(self, request, public_id: str) -> HttpResponse:
        return self.render_detail(self.get_tenant_object(public_id))

    def render_detail(self, file: File, *, delete_error: str = "", status: int = 200):
        report = file.validation or {}
        statistics = report.get("statistics") or {}
        labels = statistics.get("label_distribution") or {}
        n_labelled = sum(labels.values())
        jobs = finetuning_selectors.job_list(tenant=self.tenant).filter(
            Q(training_file=file) | Q(validation_file=file)
        )
        context = {
            "file": file,
            "report": report,
            "statistics": statistics,
            "tokens": statistics.get("tokens_per_example") or {},
            "labels": [
                (label, count, round(100 * count / n_labelled, 1) if n_labelled else 0)
                for label, count in labels.items()
            ],
            "line_errors": [e for e in report.get("errors", []) if e.get("line") is not None],
            "file_errors": [e for e in report.get("errors", []) if e.get("line") is None],
            "jobs": jobs[:10],
            "n_jobs": jobs.count(),
            "can_delete": self.can(Role.MEMBER),
            "can_fine_tune": self.can(Role.MEMBER)
            and file.purpose == File.Purpose.FINE_TUNE
            and file.status == File.Status.PROCESSED,
            "can_batch": self.can(Role.MEMBER) and file.purpose == File.Purpose.BATCH,
            "delete_error": delete_error,
            "pending": file.status == File.Status.UPLOADED,
        }
        return render(self.request, "dashboard/dataset_detail.html", context, status=status)


class DatasetStatusView(DatasetsPage):
    """Polled by a file's page while its validation is pending."""

    def get(self, request, public_id: str) -> HttpResponse:
        file = self.get_tenant_object(public_id)
        body = {
            "id": file.public_id,
            "status": file.status,
            "status_details": file.status_details or None,
        }
        return no_store(JsonResponse(body))


class DatasetDownloadView(DatasetsPage):
    """The file's bytes, as the API's `/v1/files/<id>/content` gives them."""

    def get(self, request, public_id: str) -> HttpResponse:
        file = self.get_tenant_object(public_id)
        try:
            return downloads.content_response(request, file)
        except FileNotFoundError:  # deleted since the row was read
            raise Http404("Not found") from None


class DatasetDeleteView(DatasetDetailView):
    def get(self, request, public_id: str) -> HttpResponse:
        file = self.get_tenant_object(public_id)
        return render(
            request,
            "dashboard/confirm.html",
            {
                "title": f"Delete “{file.filename}”?",
                "message": (
                    f"{file.public_id} and its validation report are deleted for good. "
                    "A file that a fine-tuning job used cannot be deleted."
                ),
                "action": reverse("dashboard:dataset-delete", args=[public_id]),
                "button": "Delete file",
                "cancel": reverse("dashboard:dataset-detail", args=[public_id]),
            },
        )

    def post(self, request, public_id: str) -> HttpResponse:
        file = self.get_tenant_object(public_id)
        try:
            services.file_delete(tenant=self.tenant, file=file)
        except TenantError as error:
            return self.render_detail(file, delete_error=error.message, status=error.status)
        messages.success(request, f"Deleted {file.filename}.")
        return redirect("dashboard:datasets")
