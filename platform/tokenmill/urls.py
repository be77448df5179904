from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tokenmill.api import organization
from tokenmill.api.errors import api_forbidden, api_not_found, api_server_error
from tokenmill.batches import api as batches_api
from tokenmill.dashboard.views import errors as dashboard_errors
from tokenmill.files import api as files_api
from tokenmill.finetuning import api as finetuning_api
from tokenmill.finetuning import models_api
from tokenmill.metering import api as metering_api
from tokenmill.observability import console

openai_api = [
    path("models", models_api.ModelListView.as_view(), name="models"),
    path("models/<str:model_id>", models_api.ModelDetailView.as_view(), name="model"),
    path("files", files_api.FileListView.as_view(), name="files"),
    path("files/<str:object_id>", files_api.FileDetailView.as_view(), name="file"),
    path("files/<str:object_id>/content", files_api.FileContentView.as_view(), name="file-content"),
    path("batches", batches_api.BatchListView.as_view(), name="batches"),
    path("batches/<str:batch_id>", batches_api.BatchDetailView.as_view(), name="batch"),
    path(
        "batches/<str:batch_id>/cancel", batches_api.BatchCancelView.as_view(), name="batch-cancel"
    ),
    path("fine_tuning/jobs", finetuning_api.JobListView.as_view(), name="fine-tuning-jobs"),
    path(
        "fine_tuning/jobs/<str:job_id>",
        finetuning_api.JobDetailView.as_view(),
        name="fine-tuning-job",
    ),
    path(
        "fine_tuning/jobs/<str:job_id>/cancel",
        finetuning_api.JobCancelView.as_view(),
        name="fine-tuning-job-cancel",
    ),
    path(
        "fine_tuning/jobs/<str:job_id>/events",
        finetuning_api.JobEventsView.as_view(),
        name="fine-tuning-job-events",
    ),
    path(
        "fine_tuning/jobs/<str:job_id>/checkpoints",
        finetuning_api.JobCheckpointsView.as_view(),
        name="fine-tuning-job-checkpoints",
    ),
]

platform_api = [
    path("organization", organization.OrganizationView.as_view(), name="organization"),
    path("members", organization.MemberListView.as_view(), name="members"),
    path("members/<str:object_id>", organization.MemberDetailView.as_view(), name="member"),
    path("invitations", organization.InvitationListView.as_view(), name="invitations"),
    path(
        "invitations/<str:object_id>",
        organization.InvitationDetailView.as_view(),
        name="invitation",
    ),
    path("api-keys", organization.ApiKeyListView.as_view(), name="api-keys"),
    path("api-keys/<str:object_id>", organization.ApiKeyDetailView.as_view(), name="api-key"),
    path("usage", metering_api.UsageView.as_view(), name="usage"),
    path(
        "fine_tuning/jobs/<str:job_id>/evaluation",
        finetuning_api.JobEvaluationView.as_view(),
        name="fine-tuning-job-evaluation",
    ),
]

urlpatterns = [
    path("v1/", include((openai_api, "v1"))),
    path("api/v1/", include((platform_api, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("console/metrics/", admin.site.admin_view(console.metrics_page), name="console-metrics"),
    path("console/", admin.site.urls),
    path("", include("tokenmill.billing.urls")),
    path("", include("tokenmill.dashboard.urls")),
]

_API_PREFIXES = ("/v1/", "/api/")


def handler404(request, exception=None):
    if request.path.startswith(_API_PREFIXES):
        return api_not_found(request, exception)
    return dashboard_errors.not_found(request, exception)


def handler403(request, exception=None):
    if request.path.startswith(_API_PREFIXES):
        return api_forbidden(request, exception)
    return dashboard_errors.forbidden(request)


def handler500(request):
    if request.path.startswith(_API_PREFIXES):
        return api_server_error(request)
    return dashboard_errors.server_error(request)
