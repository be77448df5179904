"""API keys of the current organization: list, create, revoke.

A new key's plaintext exists only in the response to the POST that created it: it
is rendered there, marked no-store, and kept nowhere (not in the session, not in a
URL). Reloading the page shows the list without it.
"""

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views import View

from tenants import selectors, services
from tenants.errors import TenantError
from tenants.models import ApiKey, Organization, Role
from tokenmill.dashboard.forms import ApiKeyForm, add_service_error
from tokenmill.dashboard.mixins import TenantMixin


class ApiKeysView(TenantMixin, View):
    write_role = Role.MEMBER

    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        return selectors.api_key_list(tenant=tenant, include_revoked=True)

    def get(self, request, *args, **kwargs) -> HttpResponse:
        return self._page(ApiKeyForm())

    def post(self, request, *args, **kwargs) -> HttpResponse:
        form = ApiKeyForm(request.POST)
        if not form.is_valid():
            return self._page(form, status=400)
        try:
            api_key, plaintext = services.api_key_create(
                tenant=self.tenant,
                actor=self.membership,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                read_only=form.cleaned_data["read_only"],
                expires_at=form.expiry(),
                requests_per_minute=form.cleaned_data["requests_per_minute"],
                tokens_per_minute=form.cleaned_data["tokens_per_minute"],
            )
        except TenantError as error:
            add_service_error(form, error)
            return self._page(form, status=error.status)
        response = self._page(ApiKeyForm(), created=api_key, plaintext=plaintext, status=201)
        add_never_cache_headers(response)  # the secret must not linger in any cache
        return response

    def _page(
        self,
        form: ApiKeyForm,
        *,
        created: ApiKey | None = None,
        plaintext: str = "",
        status: int = 200,
    ) -> HttpResponse:
        may_revoke_any = self.can(Role.ADMIN)
        api_keys = [
            (
                key,
                key.status == "active"
                and self.tenant.is_active
                and (may_revoke_any or key.created_by_id == self.request.user.pk),
            )
            for key in self.get_queryset()
        ]
        context = {
            "api_keys": api_keys,
            "form": form,
            "can_create": self.can(Role.MEMBER),
            "created": created,
            "plaintext": plaintext,
            "form_open": form.is_bound,
        }
        return render(self.request, "dashboard/api_keys.html", context, status=status)


class ApiKeyRevokeView(TenantMixin, View):
    # Members revoke their own keys, admins anyone's: the service decides, a refusal is a 403.
    read_role = Role.MEMBER
    write_role = Role.MEMBER

    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        return selectors.api_key_list(tenant=tenant, include_revoked=True)

    def get(self, request, public_id: str) -> HttpResponse:
        api_key = self.get_tenant_object(public_id)
        return render(
            request,
            "dashboard/confirm.html",
            {
                "title": f"Revoke “{api_key.name}”?",
                "message": (
                    f"Requests with {api_key.redacted} will be refused within a second. "
                    "This cannot be undone; programs using it need a new key."
                ),
                "action": reverse("dashboard:api-key-revoke", args=[public_id]),
                "button": "Revoke key",
                "cancel": reverse("dashboard:api-keys"),
            },
        )

    def post(self, request, public_id: str) -> HttpResponse:
        api_key = self.get_tenant_object(public_id)
        services.api_key_revoke(tenant=self.tenant, actor=self.membership, api_key=api_key)
        messages.success(request, f"Revoked {api_key.name} ({api_key.redacted}).")
        return redirect("dashboard:api-keys")
