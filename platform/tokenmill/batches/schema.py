"""OpenAPI descriptions of the batch shapes (the views build plain dicts, see bodies.py)."""

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from tokenmill.batches.models import Batch
from tokenmill.finetuning.params import METADATA_MAX_PAIRS
from tokenmill.finetuning.schema import list_of

METADATA = serializers.DictField(
    child=serializers.CharField(),
    required=False,
    allow_null=True,
    help_text=f"at most {METADATA_MAX_PAIRS} string pairs",
)

BatchCreateRequest = inline_serializer(
    "BatchCreateRequest",
    {
        "input_file_id": serializers.CharField(help_text="a file uploaded with purpose 'batch'"),
        "endpoint": serializers.ChoiceField(choices=Batch.Endpoint.values),
        "completion_window": serializers.ChoiceField(choices=["24h"]),
        "metadata": METADATA,
    },
)

_TIMES = (
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)

BATCH_FIELDS = {
    "id": serializers.CharField(),
    "object": serializers.CharField(default="batch"),
    "endpoint": serializers.ChoiceField(choices=Batch.Endpoint.values),
    "errors": serializers.JSONField(
        allow_null=True, help_text="{'object': 'list', 'data': [{code, message, param, line}]}"
    ),
    "input_file_id": serializers.CharField(),
    "completion_window": serializers.CharField(),
    "status": serializers.ChoiceField(choices=Batch.Status.values),
    "output_file_id": serializers.CharField(allow_null=True),
    "error_file_id": serializers.CharField(allow_null=True),
    **{name: serializers.IntegerField(allow_null=True) for name in _TIMES},
    "request_counts": inline_serializer(
        "BatchRequestCounts",
        {
            "total": serializers.IntegerField(),
            "completed": serializers.IntegerField(),
            "failed": serializers.IntegerField(),
        },
    ),
    "metadata": METADATA,
}

BatchObject = inline_serializer("Batch", BATCH_FIELDS)
BatchList = list_of("BatchListItem", BATCH_FIELDS, "BatchList")
