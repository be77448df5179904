"""Models: the base models open to the organization and its own fine-tuned models.

A fine-tuned model is deleted from a confirmation page, as an API key is revoked; a
checkpoint of a job becomes a model of its own from the job page.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from tenants.errors import TenantError
from tenants.models import Organization, Role
from tokenmill.catalog.selectors import base_model_list
from tokenmill.dashboard.mixins import TenantMixin
from tokenmill.finetuning import checkpoint_models, evaluation, selectors, services
from tokenmill.finetuning.models import JobCheckpoint

PLAYGROUND_URL = "/playground/"


def playground_url(model_id: str) -> str:
    return f"{PLAYGROUND_URL}?{urlencode({'model': model_id})}"


def fine_tuned_models(tenant: Organization) -> QuerySet:
    return selectors.fine_tuned_model_list(tenant=tenant).select_related(
        "base_model", "job", "checkpoint"
    )


class ModelsPage(TenantMixin, View):
    write_role = Role.MEMBER

    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        return fine_tuned_models(tenant)


class ModelsView(ModelsPage):
    def get(self, request, *args, **kwargs) -> HttpResponse:
        context = {
            "base_models": [
                # The playground chats: embedding models have nothing to try there.
                (model, playground_url(model.model_id) if model.kind == model.Kind.CHAT else None)
                for model in base_model_list(tenant=self.tenant)
            ],
            "fine_tuned_models": [
                (model, playground_url(model.model_id)) for model in self.get_queryset()
            ],
            "can_delete": self.can(Role.MEMBER),
        }
        return render(request, "dashboard/models.html", context)


class ModelDeleteView(ModelsPage):
    read_role = Role.MEMBER

    def get_model(self, model_id: str):
        model = self.get_queryset().filter(model_id=model_id).first()
        if model is None:  # a base model, another organization's, or none at all
            raise Http404("Not found")
        return model

    def get(self, request, model_id: str) -> HttpResponse:
        model = self.get_model(model_id)
        return render(
            request,
            "dashboard/confirm.html",
            {
                "title": f"Delete {model.model_id}?",
                "message": (
                    "Requests naming this model will be refused, and its weights are deleted. "
                    "This cannot be undone; the fine-tuning job and its checkpoints stay."
                ),
                "subject": model.model_id,
                "action": reverse("dashboard:model-delete", args=[model.model_id]),
                "button": "Delete model",
                "cancel": reverse("dashboard:models"),
            },
        )

    def post(self, request, model_id: str) -> HttpResponse:
        model = self.get_model(model_id)
        services.fine_tuned_model_delete(tenant=self.tenant, model=model)
        messages.success(request, f"Deleted {model.model_id}.")
        return redirect("dashboard:models")


class CheckpointModelView(TenantMixin, View):
    """POST: register one of a job's checkpoints as a fine-tuned model."""

    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        return JobCheckpoint.objects.for_tenant(tenant).select_related("job")

    def post(self, request, public_id: str) -> HttpResponse:
        checkpoint = self.get_tenant_object(public_id)
        try:
            model = checkpoint_models.fine_tuned_model_from_checkpoint(
                tenant=self.tenant, checkpoint=checkpoint
            )
        except TenantError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                f"The checkpoint at step {checkpoint.step_number} is now the model {model.model_id}.",
            )
            if request.POST.get("evaluate"):
                evaluation.evaluation_for_model(tenant=self.tenant, model=model)
        return redirect("dashboard:job-detail", checkpoint.job.public_id)
