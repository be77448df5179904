"""Which models a tenant may use."""

from django.db.models import QuerySet

from tenants.models import Organization
from tokenmill.catalog.models import BaseModel


def base_model_list(*, tenant: Organization) -> QuerySet[BaseModel]:
    # Every active base model is open to every tenant; per-tenant allow-lists would filter here.
    del tenant
    return BaseModel.objects.filter(status=BaseModel.Status.ACTIVE)


def base_model_get(*, tenant: Organization, model_id: str) -> BaseModel | None:
    return base_model_list(tenant=tenant).filter(model_id=model_id).first()
