"""`/v1/models`: the models the calling organization may use, in OpenAI's shapes."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from tenants.models import ApiKeyScope
from tokenmill.api.errors import ApiError
from tokenmill.api.pagination import list_body
from tokenmill.api.views import TenantAPIView
from tokenmill.catalog import selectors
from tokenmill.catalog.models import BaseModel

ModelSerializer = inline_serializer(
    "Model",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(default="model"),
        "created": serializers.IntegerField(),
        "owned_by": serializers.CharField(),
    },
)


def base_model_body(model: BaseModel) -> dict:
    return {
        "id": model.model_id,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": model.owned_by,
    }


class ModelsAPIView(TenantAPIView):
    required_scope = ApiKeyScope.MODELS

    def tenant_queryset(self, tenant):
        return selectors.base_model_list(tenant=tenant)

    def model_bodies(self) -> list[dict]:
        return [base_model_body(model) for model in self.get_queryset()]


class ModelListView(ModelsAPIView):
    @extend_schema(operation_id="models_list", responses={200: ModelSerializer}, tags=["models"])
    def get(self, request):
        return Response(list_body(self.model_bodies()))


class ModelDetailView(ModelsAPIView):
    @extend_schema(
        operation_id="models_retrieve", responses={200: ModelSerializer}, tags=["models"]
    )
    def get(self, request, model_id: str):
        for body in self.model_bodies():
            if body["id"] == model_id:
                return Response(body)
        raise ApiError(
            f"The model {model_id!r} does not exist or you do not have access to it.",
            status_code=404,
            code="model_not_found",
            param="model",
        )
