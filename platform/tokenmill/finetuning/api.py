"""`/v1/fine_tuning/jobs`: OpenAI's fine-tuning API."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from tenants.models import ApiKeyScope
from tokenmill.api.errors import ApiError
from tokenmill.api.pagination import cursor_page, list_body, parse_limit
from tokenmill.api.views import TenantAPIView
from tokenmill.finetuning import selectors, services
from tokenmill.finetuning.bodies import checkpoint_body, evaluation_body, event_body, job_body
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.params import parse_job_request
from tokenmill.finetuning.schema import (
    CheckpointList,
    Evaluation,
    EventList,
    Job,
    JobCreateRequest,
    JobList,
)

PAGING = [
    OpenApiParameter("after", str, description="Return objects after this id."),
    OpenApiParameter(
        "limit", int, description="How many objects to return, 1 to 100 (default 20)."
    ),
]


class FineTuningAPIView(TenantAPIView):
    required_scope = ApiKeyScope.FINE_TUNING
    object_noun = "fine-tuning job"
    lookup_url_kwarg = "job_id"

    def tenant_queryset(self, tenant):
        return selectors.job_list(tenant=tenant)

    def paged(self, queryset, render) -> Response:
        limit = parse_limit(self.request.query_params.get("limit"))
        rows, has_more = cursor_page(
            queryset, after=self.request.query_params.get("after"), limit=limit
        )
        return Response(list_body([render(row) for row in rows], has_more=has_more))


class JobListView(FineTuningAPIView):
    @extend_schema(
        operation_id="fine_tuning_jobs_list",
        parameters=PAGING,
        responses=JobList,
        tags=["fine-tuning"],
    )
    def get(self, request):
        return self.paged(self.get_queryset(), job_body)

    @extend_schema(
        operation_id="fine_tuning_jobs_create",
        request=JobCreateRequest,
        responses=Job,
        tags=["fine-tuning"],
    )
    def post(self, request):
        job = services.job_create(
            tenant=self.tenant, request=parse_job_request(request.data), api_key_id=request.auth.id
        )
        job = self.get_queryset().get(pk=job.pk)
        return Response(job_body(job), status=status.HTTP_200_OK)


class JobDetailView(FineTuningAPIView):
    @extend_schema(operation_id="fine_tuning_jobs_retrieve", responses=Job, tags=["fine-tuning"])
    def get(self, request, job_id: str):
        return Response(job_body(self.get_object()))


class JobCancelView(FineTuningAPIView):
    @extend_schema(
        operation_id="fine_tuning_jobs_cancel", request=None, responses=Job, tags=["fine-tuning"]
    )
    def post(self, request, job_id: str):
        job: FineTuningJob = self.get_object()
        services.job_cancel(tenant=self.tenant, job=job)
        return Response(job_body(self.get_queryset().get(pk=job.pk)))


class JobEventsView(FineTuningAPIView):
    @extend_schema(
        operation_id="fine_tuning_jobs_events",
        parameters=PAGING,
        responses=EventList,
        tags=["fine-tuning"],
    )
    def get(self, request, job_id: str):
        job = self.get_object()
        return self.paged(selectors.job_events(tenant=self.tenant, job=job), event_body)


class JobCheckpointsView(FineTuningAPIView):
    @extend_schema(
        operation_id="fine_tuning_jobs_checkpoints",
        parameters=PAGING,
        responses=CheckpointList,
        tags=["fine-tuning"],
    )
    def get(self, request, job_id: str):
        job = self.get_object()
        return self.paged(selectors.job_checkpoints(tenant=self.tenant, job=job), checkpoint_body)


class JobEvaluationView(FineTuningAPIView):
    @extend_schema(
        operation_id="fine_tuning_jobs_evaluation",
        responses=Evaluation,
        tags=["fine-tuning"],
        description="The evaluation report of a succeeded job: validation figures per epoch, "
        "and the base and fine-tuned models side by side on the held-out examples.",
    )
    def get(self, request, job_id: str):
        job = self.get_object()
        evaluation = selectors.job_evaluation(tenant=self.tenant, job=job)
        if evaluation is None:
            raise ApiError(
                f"Job {job.public_id} has no evaluation report: reports are made for "
                f"succeeded jobs, and this one is {job.status}.",
                status_code=404,
                code="evaluation_not_found",
                param="fine_tuning_job_id",
            )
        return Response(evaluation_body(evaluation))
