"""Helpers for the tenancy tests: which models are tenant-owned, a tenant's rows, and
the methods a route's view implements."""

from django.apps import apps
from django.urls import resolve

from tenants.models import Organization


def tenant_owned_models() -> list[type]:
    return [
        model
        for model in apps.get_models()
        if any(
            field.name == "tenant" and field.related_model is Organization
            for field in model._meta.fields
        )
    ]


TENANT_OWNED = tenant_owned_models()


def snapshot(tenant: Organization) -> dict:
    """Every row the tenant owns, and the organization itself."""
    rows = {"organization": Organization.objects.filter(pk=tenant.pk).values().get()}
    for model in TENANT_OWNED:
        rows[model._meta.label] = list(model.objects.for_tenant(tenant).order_by("pk").values())
    return rows


def view_methods(url: str) -> list[str]:
    """The HTTP methods the view behind `url` implements (OPTIONS and HEAD aside).

    A function view does not say which methods it takes: try it with GET and POST."""
    view = getattr(resolve(url).func, "view_class", None)
    if view is None:
        return ["get", "post"]
    return [
        method
        for method in view.http_method_names
        if method not in ("options", "head") and hasattr(view, method)
    ]
