"""`/v1/models`: the models the calling organization may use, in OpenAI's shapes:
the catalog's base models and the organization's own fine-tuned ones. It lives here,
above the catalog, so the catalog never imports fine-tuning."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from tenants.models import ApiKeyScope
from tokenmill.api.errors import ApiError
from tokenmill.api.pagination import list_body
from tokenmill.api.views import TenantAPIView
from tokenmill.catalog import selectors as catalog_selectors
from tokenmill.catalog.models import BaseModel
from tokenmill.finetuning import selectors, services
from tokenmill.finetuning.bodies import fine_tuned_model_body

ModelSerializer = inline_serializer(
    "Model",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(default="model"),
        "created": serializers.IntegerField(),
        "owned_by": serializers.CharField(),
    },
)

DeletedModelSerializer = inline_serializer(
    "DeletedModel",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(default="model"),
        "deleted": serializers.BooleanField(),
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
        return catalog_selectors.base_model_list(tenant=tenant)

    def model_bodies(self) -> list[dict]:
        own = selectors.fine_tuned_model_list(tenant=self.tenant)
        return [base_model_body(model) for model in self.get_queryset()] + [
            fine_tuned_model_body(model) for model in own
        ]

    def not_found(self, model_id: str) -> ApiError:
        return ApiError(
            f"The model {model_id!r} does not exist or you do not have access to it.",
            status_code=404,
            code="model_not_found",
            param="model",
        )


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
        raise self.not_found(model_id)

    @extend_schema(
        operation_id="models_delete", responses={200: DeletedModelSerializer}, tags=["models"]
    )
    def delete(self, request, model_id: str):
        """Delete one of your fine-tuned models. Base models cannot be deleted."""
        model = (
            selectors.fine_tuned_model_list(tenant=self.tenant).filter(model_id=model_id).first()
        )
        if model is None:
            if self.get_queryset().filter(model_id=model_id).exists():
                raise ApiError(
                    f"The model {model_id!r} is a base model; only your fine-tuned models can be deleted.",
                    status_code=403,
                    code="model_not_deletable",
                    param="model",
                )
            raise self.not_found(model_id)
        services.fine_tuned_model_delete(tenant=self.tenant, model=model)
        return Response({"id": model_id, "object": "model", "deleted": True})
