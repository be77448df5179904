"""The one base view every tenant API endpoint builds on.

It resolves `request.tenant` from the API key, checks the key's scope, its
read-only flag and its creator's role, and builds every queryset from the tenant.
A subclass declares `tenant_queryset(tenant)`; overriding `get_queryset` is refused
at class creation, so no endpoint can forget the tenant.
"""

from django.db.models import Model, QuerySet
from django.utils.functional import cached_property
from rest_framework import generics
from rest_framework.request import Request

from gpu_inference import telemetry
from tenants.models import ApiKey, Membership, Organization, Role
from tokenmill.api.errors import ApiError


class TenantAPIView(generics.GenericAPIView):
    #: the key scope this endpoint needs (an ApiKeyScope value)
    required_scope: str = ""
    #: the least role of the key's creator for reading and for writing
    read_role: str = Role.VIEWER
    write_role: str = Role.MEMBER
    #: how objects are named in a 404 ("No file with id ...")
    object_noun: str = "object"
    lookup_field = "public_id"
    metadata_class = None  # OPTIONS answers without describing a serializer
    lookup_url_kwarg = "object_id"

    tenant: Organization

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset; define tenant_queryset(tenant) instead, "
                "so the queryset is always scoped to the request's tenant"
            )
        if not cls.required_scope:
            raise TypeError(f"{cls.__name__} must declare required_scope")

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)  # authentication and permissions
        record = request.auth
        if not record.allows(self.required_scope):
            raise ApiError(
                f"This API key does not have the '{self.required_scope}' scope needed for {request.path}.",
                status_code=403,
                code="missing_scope",
            )
        writing = request.method not in ("GET", "HEAD", "OPTIONS")
        if writing and record.read_only:
            raise ApiError("This API key is read-only.", status_code=403, code="read_only_key")
        needed = self.write_role if writing else self.read_role
        if not Membership(role=record.role).has_role(needed):
            raise ApiError(
                f"The API key's creator has the {record.role} role; this needs {needed} or above.",
                status_code=403,
                code="insufficient_role",
            )
        self.tenant = Organization.objects.get(pk=record.tenant_id)
        request.tenant = self.tenant
        telemetry.bind(tenant=self.tenant.slug)  # in this request's log lines

    @cached_property
    def actor(self) -> Membership:
        """Who acts, for services that check roles: the key creator's membership, or for a
        key an operator minted, an unsaved membership with the key's role (admin). Never
        None, which services read as an operator with every right."""
        key = ApiKey.objects.for_tenant(self.tenant).filter(pk=self.request.auth.id).first()
        if key is not None and key.created_by_id is not None:
            membership = (
                Membership.objects.for_tenant(self.tenant).filter(user_id=key.created_by_id).first()
            )
            if membership is not None:
                return membership
        return Membership(tenant=self.tenant, role=self.request.auth.role)

    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet:
        return self.tenant_queryset(self.tenant)

    def get_object(self) -> Model:
        object_id = self.kwargs[self.lookup_url_kwarg]
        obj = None
        if "\x00" not in object_id:  # PostgreSQL refuses NUL in text: a 404, not a 500
            obj = self.get_queryset().filter(**{self.lookup_field: object_id}).first()
        if obj is None:
            # The same answer for "does not exist" and "belongs to another tenant".
            raise ApiError(
                f"No {self.object_noun} with id {object_id!r}.",
                status_code=404,
                code="not_found",
                param="id",
            )
        return obj
