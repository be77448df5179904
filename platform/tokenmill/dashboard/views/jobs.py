"""Fine-tuning jobs: the list, the new-job form with its estimate, and the live job page.

The job page polls `status/` every two seconds while the job runs, and a little
after it ends. The answer carries the figures, the metrics recorded since the page's
last one (`?after=<event id>`, drawn by the page's script into the loss chart), the
parts of the page that describe the job rendered again, and the events and
checkpoints only when their counts changed (`?events=N&checkpoints=M`): an idle poll
reads no metrics history and costs a few small queries.
"""

from contextlib import suppress

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views import View

from tenants.errors import TenantError
from tenants.models import Organization, Role
from tokenmill.catalog.selectors import base_model_list
from tokenmill.dashboard.evaluation import evaluation_context
from tokenmill.dashboard.forms import FineTuningJobForm, add_service_error
from tokenmill.dashboard.job_progress import (
    STATUS_LABELS,
    chart_point,
    job_loss_chart,
    job_progress,
    last_metrics_cursor,
    latest_metrics,
    metric_points_after,
    metrics_events,
)
from tokenmill.dashboard.mixins import TenantMixin
from tokenmill.dashboard.templatetags.dashboard_tags import thousands
from tokenmill.dashboard.views.datasets import no_store
from tokenmill.files import selectors as file_selectors
from tokenmill.files.models import File
from tokenmill.finetuning import selectors, services
from tokenmill.finetuning.bodies import job_body
from tokenmill.finetuning.estimates import TokenizerUnavailable, TrainingEstimate, job_estimate
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.params import JobRequest, parse_job_request

PAGE_SIZE = 25
EVENTS_SHOWN = 100
# The parts of the job page rendered again on every poll (templates/dashboard/partials/job_*.html).
LIVE_PARTS = ("status", "actions", "outcome", "progress", "details", "hyperparameters")
# How long after a job ends its page keeps asking for late reports (the last checkpoint).
SETTLE_SECONDS = 30


class JobsPage(TenantMixin, View):
    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        return selectors.job_list(tenant=tenant)


class JobsView(JobsPage):
    def get(self, request, *args, **kwargs) -> HttpResponse:
        page = Paginator(self.get_queryset(), PAGE_SIZE).get_page(request.GET.get("page"))
        context = {
            "page": page,
            "jobs": page.object_list,
            "status_labels": STATUS_LABELS,
            "can_create": self.can(Role.MEMBER),
        }
        return render(request, "dashboard/jobs.html", context)


class JobFormPage(JobsPage):
    read_role = Role.MEMBER  # viewers may watch jobs, not start them

    def job_form(self, data=None, *, initial=None) -> FineTuningJobForm:
        models = base_model_list(tenant=self.tenant).filter(supports_fine_tuning=True)
        files = file_selectors.file_list(tenant=self.tenant, purpose=File.Purpose.FINE_TUNE)
        return FineTuningJobForm(
            data,
            initial=initial,
            models=[(m.model_id, f"{m.display_name} · {m.model_id}") for m in models],
            files=[
                (f.public_id, _file_label(f)) for f in files.filter(status=File.Status.PROCESSED)
            ],
        )

    def estimate(self, job_request: JobRequest) -> tuple[TrainingEstimate | None, str]:
        """The estimate, or None and why it is unavailable; TenantError for a bad request."""
        try:
            return job_estimate(tenant=self.tenant, request=job_request), ""
        except TokenizerUnavailable:
            return None, "The estimate is unavailable right now: the model's tokenizer is loading."

    def render_estimate(self, estimate, *, unavailable: str = "", problem: str = "") -> str:
        return render_to_string(
            "dashboard/partials/job_estimate.html",
            {"estimate": estimate, "unavailable": unavailable, "problem": problem},
            request=self.request,
        )


def _file_label(file: File) -> str:
    examples = ((file.validation or {}).get("statistics") or {}).get("n_examples")
    shown = f" · {thousands(examples)} examples" if examples is not None else ""
    return f"{file.filename}{shown} · {file.public_id}"


class JobCreateView(JobFormPage):
    def get(self, request, *args, **kwargs) -> HttpResponse:
        form = self.job_form()
        files = [value for value, _ in form.fields["training_file"].choices if value]
        models = [value for value, _ in form.fields["model"].choices]
        wanted = request.GET.get("training_file")
        training_file = wanted if wanted in files else (files[0] if files else None)
        form.initial = {"model": models[0] if models else None, "training_file": training_file}
        estimate, unavailable = None, ""
        if training_file and models:
            with suppress(TenantError):  # the form says what is wrong once submitted
                estimate, unavailable = self.estimate(
                    JobRequest(model=models[0], training_file=training_file)
                )
        return self._page(form, estimate=estimate, unavailable=unavailable)

    def post(self, request, *args, **kwargs) -> HttpResponse:
        form = self.job_form(request.POST)
        if not form.is_valid():
            return self._page(form, status=400)
        try:
            job_request = parse_job_request(form.job_request_data())
            estimate, unavailable = self.estimate(job_request)
            if request.POST.get("action") == "review":
                return self._page(form, estimate=estimate, unavailable=unavailable)
            job = services.job_create(tenant=self.tenant, request=job_request)
        except TenantError as error:
            add_service_error(form, error, fields=FineTuningJobForm.PARAM_FIELDS)
            return self._page(form, status=error.status)
        messages.success(request, f"Started {job.public_id}. It is validating its files.")
        return redirect("dashboard:job-detail", job.public_id)

    def _page(self, form, *, estimate=None, unavailable: str = "", status: int = 200):
        context = {
            "form": form,
            "estimate_html": self.render_estimate(
                estimate,
                unavailable=unavailable,
                problem="Fix the fields marked in red to see the estimate." if form.errors else "",
            ),
            "has_models": bool(form.fields["model"].choices),
            "has_files": len(form.fields["training_file"].choices) > 1,
        }
        return render(self.request, "dashboard/job_new.html", context, status=status)


class JobEstimateView(JobFormPage):
    """The new-job form asks this for the estimate each time a field changes."""

    def get(self, request, *args, **kwargs) -> HttpResponse:
        form = self.job_form(request.GET)
        if not form.is_valid():
            problem = next(iter(form.errors.values()))[0]
            return self._answer(None, problem=problem, errors=form.errors.get_json_data())
        try:
            estimate, unavailable = self.estimate(parse_job_request(form.job_request_data()))
        except TenantError as error:
            field = FineTuningJobForm.PARAM_FIELDS.get(error.param or "", error.param)
            errors = {field or "__all__": [{"message": error.message, "code": error.code}]}
            return self._answer(None, problem=error.message, errors=errors)
        return self._answer(estimate, unavailable=unavailable)

    def _answer(self, estimate, *, unavailable="", problem="", errors=None) -> HttpResponse:
        body = {
            "ok": estimate is not None,
            "html": self.render_estimate(estimate, unavailable=unavailable, problem=problem),
        }
        if estimate is not None:
            body.update(
                n_examples=estimate.n_examples,
                tokens_per_epoch=estimate.tokens_per_epoch,
                n_epochs=estimate.n_epochs,
                epochs_auto=estimate.epochs_auto,
                estimated_trained_tokens=estimate.trained_tokens,
                exact=estimate.exact,
            )
        if errors:
            body["errors"] = errors
        return no_store(JsonResponse(body))


class JobDetailView(JobsPage):
    def get(self, request, public_id: str) -> HttpResponse:
        job = self.get_tenant_object(public_id)
        metrics = metrics_events(tenant=self.tenant, job=job)
        context = {
            **self.live_context(job, job_progress(job, metrics)),
            **self.events_context(job),
            **self.checkpoints_context(job),
            **evaluation_context(selectors.job_evaluation(tenant=self.tenant, job=job)),
            "chart": job_loss_chart(metrics),
            "chart_points": [p for data in metrics if (p := chart_point(data)) is not None],
            "metrics_cursor": last_metrics_cursor(tenant=self.tenant, job=job) or "",
            "follows": _follows(job),
        }
        return render(request, "dashboard/job_detail.html", context)

    def live_context(self, job: FineTuningJob, progress) -> dict:
        """What the parts of the page that change with the job are rendered from."""
        return {
            "job": job,
            "body": job_body(job),
            "progress": progress,
            "can_cancel": self.can(Role.MEMBER) and not job.is_terminal,
            "status_labels": STATUS_LABELS,
        }

    def events_context(self, job: FineTuningJob) -> dict:
        events = selectors.job_events(tenant=self.tenant, job=job)
        return {"events": events[:EVENTS_SHOWN], "n_events": events.count()}

    def checkpoints_context(self, job: FineTuningJob) -> dict:
        checkpoints = list(selectors.job_checkpoints(tenant=self.tenant, job=job))
        registered = set(
            selectors.fine_tuned_model_list(tenant=self.tenant)
            .filter(checkpoint__job=job)
            .values_list("checkpoint__public_id", flat=True)
        )
        return {
            "job": job,
            "checkpoints": checkpoints,
            "registered_checkpoints": registered,
            "can_register": self.can(Role.MEMBER),
        }


def _follows(job: FineTuningJob) -> bool:
    """Whether the page should keep asking for news: until the job has ended and its
    worker has let go (a last checkpoint may be recorded just after the outcome)."""
    return not job.is_terminal or job.released_at is None or _recently(job.finished_at)


def _recently(moment) -> bool:
    return moment is not None and (timezone.now() - moment).total_seconds() < SETTLE_SECONDS


class JobStatusView(JobDetailView):
    """Polled by the job page every two seconds while `follows` is true.

    `after` is the last metrics event the page has: only the metrics recorded since
    are read and sent, as chart points. The parts of the page that describe the job
    are sent every time (they cost no query); the events and checkpoints only when
    their count differs from the page's (`events`, `checkpoints`).
    """

    def get(self, request, public_id: str) -> HttpResponse:
        job = self.get_tenant_object(public_id)
        page = metric_points_after(tenant=self.tenant, job=job, after=request.GET.get("after"))
        progress = job_progress(job, latest_metrics(tenant=self.tenant, job=job))
        n_events = selectors.job_events(tenant=self.tenant, job=job).count()
        n_checkpoints = selectors.job_checkpoints(tenant=self.tenant, job=job).count()
        body = {
            "id": job.public_id,
            "status": job.status,
            "status_label": progress.status_label,
            "is_terminal": job.is_terminal,
            "follows": _follows(job),
            "step": progress.step,
            "total_steps": progress.total_steps,
            "progress_percent": progress.percent,
            "tokens_per_second": progress.tokens_per_second,
            "seconds_left": progress.seconds_left,
            "train_loss": progress.train_loss,
            "valid_loss": progress.valid_loss,
            "trained_tokens": job.trained_tokens,
            "estimated_trained_tokens": job.estimated_trained_tokens,
            "fine_tuned_model": job.fine_tuned_model,
            "error": job.error,
            "n_events": n_events,
            "n_checkpoints": n_checkpoints,
            "metrics": page.points,
            "cursor": page.cursor,
            "more": page.more,
        }
        live = self.live_context(job, progress)
        html = {name: _render(f"job_{name}", live, request) for name in LIVE_PARTS}
        if request.GET.get("events") != str(n_events):
            html["events"] = _render("job_events", self.events_context(job), request)
        if request.GET.get("checkpoints") != str(n_checkpoints):
            html["checkpoints"] = _render("job_checkpoints", self.checkpoints_context(job), request)
        return no_store(JsonResponse({**body, "html": html}))


def _render(partial: str, context: dict, request) -> str:
    return render_to_string(f"dashboard/partials/{partial}.html", context, request=request)


class JobCancelView(JobsPage):
    def get(self, request, public_id: str) -> HttpResponse:
        job = self.get_tenant_object(public_id)
        return render(
            request,
            "dashboard/confirm.html",
            {
                "title": f"Cancel {job.public_id}?",
                "message": "Training stops at its next step, and no model is created.",
                "action": reverse("dashboard:job-cancel", args=[public_id]),
                "button": "Cancel job",
                "cancel": reverse("dashboard:job-detail", args=[public_id]),
            },
        )

    def post(self, request, public_id: str) -> HttpResponse:
        job = self.get_tenant_object(public_id)
        try:
            services.job_cancel(tenant=self.tenant, job=job)
        except TenantError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Cancelled {job.public_id}.")
        return redirect("dashboard:job-detail", public_id)
