"""Publishing fine-tuned adapters to the serving fleet.

The platform never calls a replica: it writes the desired state, one manifest per
base model in the artifact store (served name = the fine-tuned model's id, artifact
key, checksum), and broadcasts a wake-up on the broker. The serving agent beside
each vLLM server (gpu_inference/serving/agent.py) loads and unloads adapters to
match. See gpu_inference/serving/__init__.py for why.
"""

import logging

from django.db import transaction

from gpu_inference.serving.manifest import (
    Manifest,
    build_manifest,
    read_manifest,
    send_wake_up,
    write_manifest,
)
from tokenmill.catalog.models import BaseModel
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning.models import FineTunedModel, FineTuningJob

logger = logging.getLogger(__name__)


def adapters_publish(*, base_model: BaseModel) -> Manifest:
    """Write `base_model`'s manifest from the database, then wake the agents up."""
    store = get_artifact_store()
    with transaction.atomic():
        # Publishers of one base model take turns, so the last manifest written is
        # built from everything committed before it: never an older state.
        BaseModel.objects.select_for_update().filter(pk=base_model.pk).first()
        adapters = list(
            FineTunedModel.unscoped.filter(
                base_model=base_model, training_type=FineTuningJob.TrainingType.LORA
            )
            .order_by("created_at", "id")
            .values_list("model_id", "artifact_key")
        )
        manifest = build_manifest(
            store,
            base_model.model_id,
            adapters,
            previous=_previous(store, base_model.model_id),
        )
        write_manifest(store, manifest)
    _wake_agents(base_model.model_id)
    return manifest


def adapters_publish_on_commit(*, base_model: BaseModel) -> None:
    """After the current transaction commits (a job succeeded, a model was deleted)."""
    # robust: the change is committed whatever happens here; a failure is logged, and the
    # next publication (or `manage.py publish_adapters`) writes the whole state again.
    transaction.on_commit(lambda: adapters_publish(base_model=base_model), robust=True)


def _previous(store, model_id: str) -> Manifest | None:
    try:
        return read_manifest(store, model_id)
    except ValueError:  # an unreadable manifest is rebuilt from scratch
        return None


def _wake_agents(model_id: str) -> None:
    from workers.celery import app

    try:
        with app.connection_for_write() as connection:
            send_wake_up(connection, model_id)
    except Exception:
        # The manifest is written; agents read it on their next round within seconds.
        logger.exception("could not broadcast the adapters of %s; agents will poll", model_id)
