"""The tenant scoping every other app builds on: it fails closed.

A tenant-owned model declares two managers:

    unscoped = UnscopedManager()   # first: Django's default manager (the console, related
                                   # managers such as job.events, unique checks, dumpdata)
    objects = TenantScopedManager()

`Model.objects.for_tenant(tenant)` is the way to a request's rows; `Model.objects.all()`,
`.filter()`, `.get()` and every other query without a tenant raise TenantScopeError, so a
forgotten tenant is an error and never another tenant's data. `Model.objects.create()`
works when it names the tenant. System code that must see every tenant (workers, the
reaper, the console, dispatch, migrations' own historical models) says so with
`Model.unscoped`, a name that stands out in review.
"""

from django.db import models

from tenants.errors import TenantScopeError


class TenantOwnedQuerySet(models.QuerySet):
    def for_tenant(self, tenant):
        meta = getattr(tenant, "_meta", None)
        if meta is None or meta.label != "tenants.Organization" or tenant.pk is None:
            raise TenantScopeError(f"{self.model.__name__} queried without a tenant")
        return self.filter(tenant=tenant)


class UnscopedManager(models.Manager.from_queryset(TenantOwnedQuerySet)):
    """Every tenant's rows: only for system code, which names it on purpose."""


class TenantScopedManager(models.Manager.from_queryset(TenantOwnedQuerySet)):
    """Refuses to build a queryset without a tenant."""

    def get_queryset(self):
        name = self.model.__name__
        raise TenantScopeError(
            f"{name}.objects needs a tenant: use {name}.objects.for_tenant(tenant), "
            f"or {name}.unscoped in system code that serves every tenant"
        )

    def for_tenant(self, tenant):
        return super().get_queryset().for_tenant(tenant)

    def create(self, **fields):
        if fields.get("tenant") is None and fields.get("tenant_id") is None:
            raise TenantScopeError(f"{self.model.__name__}.objects.create() needs a tenant")
        return super().get_queryset().create(**fields)
