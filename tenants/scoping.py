"""The tenant scoping every other app builds on.

Tenant-owned models use `TenantOwnedQuerySet` as their manager; the way to get their
rows for a request is `Model.objects.for_tenant(tenant)`, which refuses to run
without one, so a forgotten tenant is an error and never another tenant's data.
"""

from django.db import models

from tenants.errors import TenantScopeError


class TenantOwnedQuerySet(models.QuerySet):
    def for_tenant(self, tenant):
        meta = getattr(tenant, "_meta", None)
        if meta is None or meta.label != "tenants.Organization" or tenant.pk is None:
            raise TenantScopeError(f"{self.model.__name__} queried without a tenant")
        return self.filter(tenant=tenant)
