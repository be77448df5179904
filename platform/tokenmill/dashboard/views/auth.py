"""Sign-up, log-in and log-out."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, resolve_url
from django.urls import Resolver404, resolve
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import FormView

from tenants.errors import TenantError
from tenants.services import user_sign_up
from tokenmill.dashboard.forms import EmailAuthenticationForm, SignUpForm, add_service_error
from tokenmill.dashboard.mixins import switch_organization


def safe_next_url(request: HttpRequest) -> str:
    """The `next` URL of the request when it points back into this site, else ''."""
    url = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if allowed else ""


def _is_invitation_url(url: str) -> bool:
    try:
        match = resolve(url.split("?", 1)[0])
    except Resolver404:
        return False
    return match.view_name == "dashboard:invitation-accept"


class SignUpView(FormView):
    template_name = "dashboard/signup.html"
    form_class = SignUpForm

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return redirect(safe_next_url(request) or "dashboard:home")
        return super().dispatch(request, *args, **kwargs)

    def joining_invitation(self) -> bool:
        return _is_invitation_url(safe_next_url(self.request))

    def get_initial(self) -> dict:
        return {"email": self.request.GET.get("email", "")}

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "require_organization": not self.joining_invitation()}

    def get_context_data(self, **kwargs) -> dict:
        return {**super().get_context_data(**kwargs), "next": safe_next_url(self.request)}

    def form_valid(self, form: SignUpForm) -> HttpResponse:
        try:
            user, organization = user_sign_up(
                email=form.cleaned_data["email"],
                name=form.cleaned_data["name"],
                password=form.cleaned_data["password"],
                organization_name=form.organization(),
            )
        except TenantError as error:
            add_service_error(form, error, fields={"name": "organization_name"})
            return self.form_invalid(form)
        login(self.request, user)
        if organization is not None:
            switch_organization(self.request, organization.public_id)
            messages.success(self.request, f"Welcome to Tokenmill! {organization.name} is ready.")
        return HttpResponseRedirect(safe_next_url(self.request) or resolve_url("dashboard:home"))

    def form_invalid(self, form: SignUpForm) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)


class LoginView(auth_views.LoginView):
    template_name = "dashboard/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form: EmailAuthenticationForm) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)


class LogoutView(auth_views.LogoutView):
    """POST only (Django's LogoutView refuses GET): a link cannot log anyone out."""
