"""The console's fine-tuning pages: jobs with filters, cancel and retry, events inline."""

from django.contrib import admin, messages

from tenants.errors import TenantError
from tokenmill.finetuning import services
from tokenmill.finetuning.models import (
    FineTunedModel,
    FineTuningJob,
    JobCheckpoint,
    JobEvaluation,
    JobEvent,
)


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    fields = ["created_at", "level", "type", "message"]
    readonly_fields = fields
    can_delete = False
    ordering = ["-created_at", "-id"]
    max_num = 0


class JobCheckpointInline(admin.TabularInline):
    model = JobCheckpoint
    extra = 0
    fields = ["step_number", "epoch", "fine_tuned_model_checkpoint", "metrics", "created_at"]
    readonly_fields = fields
    can_delete = False
    max_num = 0


@admin.register(FineTuningJob)
class FineTuningJobAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "tenant",
        "base_model",
        "training_type",
        "status",
        "attempt",
        "trained_tokens",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "base_model", "training_type", "tenant"]
    search_fields = ["public_id", "tenant__slug", "fine_tuned_model", "training_file__public_id"]
    list_select_related = ["tenant", "base_model"]
    readonly_fields = [f.name for f in FineTuningJob._meta.fields]
    inlines = [JobCheckpointInline, JobEventInline]
    actions = ["cancel", "retry"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Cancel the selected jobs")
    def cancel(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda job: services.job_cancel(tenant=job.tenant, job=job),
            "Cancelled",
        )

    @admin.action(description="Retry the selected failed or cancelled jobs")
    def retry(self, request, queryset):
        self._each(request, queryset, lambda job: services.job_retry(job=job), "Retried")

    def _each(self, request, queryset, action, verb: str) -> None:
        done = 0
        for job in queryset.select_related("tenant"):
            try:
                action(job)
                done += 1
            except TenantError as error:
                self.message_user(request, error.message, messages.WARNING)
        if done:
            self.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS)


@admin.register(FineTunedModel)
class FineTunedModelAdmin(admin.ModelAdmin):
    list_display = ["model_id", "tenant", "base_model", "training_type", "created_at"]
    list_filter = ["base_model", "training_type", "tenant"]
    search_fields = ["model_id", "tenant__slug"]
    readonly_fields = [f.name for f in FineTunedModel._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(JobEvaluation)
class JobEvaluationAdmin(admin.ModelAdmin):
    list_display = ["job", "tenant", "status", "model_id", "created_at", "finished_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["job__public_id", "model_id", "tenant__slug"]
    readonly_fields = [f.name for f in JobEvaluation._meta.fields]

    def has_add_permission(self, request):
        return False
