"""Creating organizations and switching between them.

Neither view uses TenantMixin: a person without any organization must be able to
create one, and switching is what chooses the tenant in the first place.
"""

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views import View
from django.views.generic import FormView

from tenants import services
from tenants.errors import TenantError
from tokenmill.dashboard.forms import OrganizationForm, add_service_error
from tokenmill.dashboard.mixins import switch_organization


class OrganizationCreateView(LoginRequiredMixin, FormView):
    template_name = "dashboard/organization_create.html"
    form_class = OrganizationForm

    def form_valid(self, form: OrganizationForm) -> HttpResponse:
        try:
            organization = services.organization_create(
                name=form.cleaned_data["name"], owner=self.request.user
            )
        except TenantError as error:
            add_service_error(form, error)
            return self.form_invalid(form)
        switch_organization(self.request, organization.public_id)
        messages.success(self.request, f"Created {organization.name}. You are its owner.")
        return redirect("dashboard:home")

    def form_invalid(self, form: OrganizationForm) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)


class OrganizationSwitchView(LoginRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        # switch_organization answers 404 for any organization the user is not in.
        organization = switch_organization(request, request.POST.get("organization", ""))
        messages.info(request, f"Switched to {organization.name}.")
        return redirect("dashboard:home")
