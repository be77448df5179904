"""OpenAPI descriptions of the fine-tuning shapes (the views build plain dicts, see bodies.py).

Built from the same declarations the request parser checks against (params.py and
gpu_inference.hyperparameters), so the schema cannot drift from what is accepted.
"""

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from tokenmill.finetuning import params


def hyperparameter_help(spec) -> str:
    kind = "a whole number" if spec.kind is int else "a number"
    extension = " (extension)" if spec.extension else ""
    lora = ", LoRA only" if spec.lora_only else ""
    return (
        f"'auto' or {kind} from {spec.low:g} to {spec.high:g}: {spec.description}{lora}{extension}"
    )


def _hyperparameters(name: str):
    return inline_serializer(
        name,
        {
            spec.name: serializers.JSONField(required=False, help_text=hyperparameter_help(spec))
            for spec in params.HYPERPARAMETERS.values()
        },
    )


JobCreateRequest = inline_serializer(
    "FineTuningJobCreateRequest",
    {
        "model": serializers.CharField(),
        "training_file": serializers.CharField(),
        "validation_file": serializers.CharField(required=False, allow_null=True),
        "suffix": serializers.CharField(required=False, max_length=params.SUFFIX_MAX_LENGTH),
        "seed": serializers.IntegerField(required=False, min_value=0, max_value=params.MAX_SEED),
        "metadata": serializers.DictField(
            child=serializers.CharField(),
            required=False,
            help_text=f"at most {params.METADATA_MAX_PAIRS} string pairs",
        ),
        "hyperparameters": _hyperparameters("FineTuningHyperparametersRequest"),
        "method": serializers.JSONField(
            required=False,
            help_text="{'type': 'supervised', 'supervised': {'hyperparameters': {...}}}",
        ),
        "training_type": serializers.ChoiceField(
            choices=list(params.TRAINING_TYPES), required=False, help_text="extension"
        ),
    },
)

JOB_FIELDS = {
    "id": serializers.CharField(),
    "object": serializers.CharField(default="fine_tuning.job"),
    "created_at": serializers.IntegerField(),
    "error": serializers.JSONField(allow_null=True),
    "fine_tuned_model": serializers.CharField(allow_null=True),
    "finished_at": serializers.IntegerField(allow_null=True),
    "hyperparameters": _hyperparameters("FineTuningHyperparameters"),
    "model": serializers.CharField(),
    "organization_id": serializers.CharField(),
    "result_files": serializers.ListField(child=serializers.CharField()),
    "seed": serializers.IntegerField(),
    "status": serializers.ChoiceField(
        choices=["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    ),
    "trained_tokens": serializers.IntegerField(allow_null=True),
    "training_file": serializers.CharField(),
    "validation_file": serializers.CharField(allow_null=True),
    "estimated_finish": serializers.IntegerField(allow_null=True),
    "metadata": serializers.JSONField(allow_null=True),
    "user_provided_suffix": serializers.CharField(allow_null=True),
    "method": serializers.JSONField(),
    "training_type": serializers.CharField(),
    "estimated_trained_tokens": serializers.IntegerField(allow_null=True),
}


EVENT_FIELDS = {
    "id": serializers.CharField(),
    "object": serializers.CharField(default="fine_tuning.job.event"),
    "created_at": serializers.IntegerField(),
    "level": serializers.ChoiceField(choices=["info", "warn", "error"]),
    "message": serializers.CharField(),
    "type": serializers.ChoiceField(choices=["message", "metrics"]),
    "data": serializers.JSONField(allow_null=True),
}

CHECKPOINT_FIELDS = {
    "id": serializers.CharField(),
    "object": serializers.CharField(default="fine_tuning.job.checkpoint"),
    "created_at": serializers.IntegerField(),
    "fine_tuned_model_checkpoint": serializers.CharField(),
    "fine_tuning_job_id": serializers.CharField(),
    "metrics": serializers.JSONField(),
    "step_number": serializers.IntegerField(),
}


def list_of(item_name: str, item_fields: dict, list_name: str):
    """OpenAI's list shape around items described by `item_fields`."""
    return inline_serializer(
        list_name,
        {
            "object": serializers.CharField(default="list"),
            "data": inline_serializer(item_name, item_fields, many=True),
            "has_more": serializers.BooleanField(),
            "first_id": serializers.CharField(allow_null=True),
            "last_id": serializers.CharField(allow_null=True),
        },
    )


Job = inline_serializer("FineTuningJob", JOB_FIELDS)
JobList = list_of("FineTuningJobListItem", JOB_FIELDS, "FineTuningJobList")
EventList = list_of("FineTuningJobEvent", EVENT_FIELDS, "FineTuningJobEventList")
CheckpointList = list_of(
    "FineTuningJobCheckpoint", CHECKPOINT_FIELDS, "FineTuningJobCheckpointList"
)


Evaluation = inline_serializer(
    "FineTuningJobEvaluation",
    {
        "object": serializers.CharField(default="fine_tuning.job.evaluation"),
        "fine_tuning_job_id": serializers.CharField(),
        "status": serializers.ChoiceField(choices=["pending", "running", "succeeded", "failed"]),
        "model": serializers.CharField(help_text="the fine-tuned model evaluated"),
        "holdout": serializers.JSONField(
            allow_null=True,
            help_text="{'count', 'seed'} of the training file's held-out split, when the job "
            "has no validation file",
        ),
        "created_at": serializers.IntegerField(),
        "finished_at": serializers.IntegerField(allow_null=True),
        "error": serializers.CharField(allow_null=True),
        "report": serializers.JSONField(
            allow_null=True,
            help_text="source, epochs (valid_loss, valid_token_accuracy per epoch), best_epoch, "
            "labels, models.base and models.fine_tuned (exact_match, normalized_match, "
            "answer_loss, classification: accuracy, per_label, macro_f1, confusion_matrix, "
            "roc_auc), verdict, samples",
        ),
    },
)
