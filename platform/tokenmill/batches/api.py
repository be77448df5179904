"""`/v1/batches`: OpenAI's Batch API.

Batches run inference, so they need the key's `models` scope; creating one reads the
input file, so it needs `files` too. Another tenant's batch answers 404, exactly like
a missing one.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from tenants.models import ApiKeyScope
from tokenmill.api.errors import ApiError
from tokenmill.api.pagination import cursor_page, list_body, parse_limit
from tokenmill.api.views import TenantAPIView
from tokenmill.batches import selectors, services
from tokenmill.batches.bodies import batch_body
from tokenmill.batches.schema import BatchCreateRequest, BatchList, BatchObject

PAGING = [
    OpenApiParameter("after", str, description="Return batches after this id."),
    OpenApiParameter(
        "limit", int, description="How many batches to return, 1 to 100 (default 20)."
    ),
]


class BatchAPIView(TenantAPIView):
    required_scope = ApiKeyScope.MODELS
    object_noun = "batch"
    lookup_url_kwarg = "batch_id"

    def tenant_queryset(self, tenant):
        return selectors.batch_list(tenant=tenant)


class BatchListView(BatchAPIView):
    @extend_schema(
        operation_id="batches_list", parameters=PAGING, responses=BatchList, tags=["batches"]
    )
    def get(self, request):
        limit = parse_limit(request.query_params.get("limit"))
        rows, has_more = cursor_page(
            self.get_queryset(), after=request.query_params.get("after"), limit=limit
        )
        return Response(list_body([batch_body(row) for row in rows], has_more=has_more))

    @extend_schema(
        operation_id="batches_create",
        request=BatchCreateRequest,
        responses=BatchObject,
        tags=["batches"],
    )
    def post(self, request):
        if not request.auth.allows(ApiKeyScope.FILES):
            raise ApiError(
                "This API key does not have the 'files' scope needed to read a batch's input file.",
                status_code=403,
                code="missing_scope",
            )
        batch = services.batch_create(
            tenant=self.tenant,
            data=request.data,
            api_key_id=request.auth.id,
            api_key_public_id=request.auth.public_id,
        )
        return Response(batch_body(self.get_queryset().get(pk=batch.pk)))


class BatchDetailView(BatchAPIView):
    @extend_schema(operation_id="batches_retrieve", responses=BatchObject, tags=["batches"])
    def get(self, request, batch_id: str):
        return Response(batch_body(self.get_object()))


class BatchCancelView(BatchAPIView):
    @extend_schema(
        operation_id="batches_cancel", request=None, responses=BatchObject, tags=["batches"]
    )
    def post(self, request, batch_id: str):
        batch = services.batch_cancel(tenant=self.tenant, batch=self.get_object())
        return Response(batch_body(self.get_queryset().get(pk=batch.pk)))
