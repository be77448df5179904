"""Clear the gateway's cached routes when the catalog or a fine-tuned model changes.

Receivers, not service calls, so every path (services, the console, a cascade from a
deleted organization) clears them; each clears after commit, so a request racing the
change cannot re-cache the old state.
"""

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from tokenmill.catalog.models import BaseModel, Replica
from tokenmill.catalog.services import routes_changed
from tokenmill.finetuning.models import FineTunedModel
from tokenmill.gateway import routes


@receiver([post_save, post_delete], sender=BaseModel, dispatch_uid="gateway-base-model")
@receiver([post_save, post_delete], sender=Replica, dispatch_uid="gateway-replica")
def _catalog_changed(sender, **kwargs) -> None:
    routes_changed()
    transaction.on_commit(routes.forget_local)


@receiver([post_save, post_delete], sender=FineTunedModel, dispatch_uid="gateway-fine-tune")
def _fine_tune_changed(sender, instance: FineTunedModel, **kwargs) -> None:
    key = routes.fine_tune_cache_key(instance.model_id)

    def clear() -> None:
        cache.delete(key)
        routes.forget_local()

    transaction.on_commit(clear)
