"""Which upstream serves a model id: the routing table, from the cache, built from the catalog.

Base models and their replicas are one shared cache entry (cleared after commit by any
change, see signals.py); a fine-tuned model is its own entry keyed by a hash of its id,
holding its owner and base model. Only a cache miss reads the database.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.cache import cache

from tokenmill.catalog.models import BaseModel, Replica
from tokenmill.catalog.services import HEALTH_CACHE_KEY, ROUTES_CACHE_KEY
from tokenmill.finetuning.models import FineTunedModel
from tokenmill.gateway.errors import model_not_found
from tokenmill.gateway.memo import LocalMemo

ROUTES_CACHE_SECONDS = 300
FINE_TUNE_CACHE_SECONDS = 300
_MISSING_CACHE_SECONDS = 10


@dataclass(frozen=True)
class ReplicaRoute:
    id: int
    url: str
    api_key: str
    weight: int
    max_concurrent_requests: int


@dataclass(frozen=True)
class BaseRoute:
    model_id: str
    kind: str
    context_length: int
    path: str
    replicas: tuple[ReplicaRoute, ...]


@dataclass(frozen=True)
class ModelRoute:
    """A resolved `model`: what the caller named, and the base model that serves it."""

    model_id: str
    base: BaseRoute
    fine_tuned: bool

    @property
    def kind(self) -> str:
        return self.base.kind


def _load_routes_from_database() -> dict:
    models = {
        model.pk: {
            "model_id": model.model_id,
            "kind": model.kind,
            "context_length": model.context_length,
            "path": model.path,
            "replicas": [],
        }
        for model in BaseModel.objects.filter(status=BaseModel.Status.ACTIVE)
    }
    for replica in Replica.objects.filter(enabled=True, base_model_id__in=list(models)).order_by(
        "pk"
    ):
        models[replica.base_model_id]["replicas"].append(
            {
                "id": replica.pk,
                "url": replica.url,
                "api_key": replica.api_key,
                "weight": replica.weight,
                "max_concurrent_requests": replica.max_concurrent_requests,
            }
        )
    return {"by_pk": models}


def _routes_snapshot() -> dict[str, BaseRoute]:
    raw = cache.get(ROUTES_CACHE_KEY)
    if raw is None:
        raw = _load_routes_from_database()
        cache.set(ROUTES_CACHE_KEY, raw, ROUTES_CACHE_SECONDS)
    table = {}
    for pk, model in raw["by_pk"].items():
        route = BaseRoute(
            model_id=model["model_id"],
            kind=model["kind"],
            context_length=model["context_length"],
            path=model["path"],
            replicas=tuple(ReplicaRoute(**replica) for replica in model["replicas"]),
        )
        table[model["model_id"]] = route
        table[("pk", int(pk))] = route
    return table


def fine_tune_cache_key(model_id: str) -> str:
    # Ids come from callers: hash them, so any string makes a valid, bounded cache key.
    return "gateway:ft:v1:" + hashlib.sha256(model_id.encode("utf-8", "surrogatepass")).hexdigest()


def _fine_tune_entry(model_id: str) -> dict:
    key = fine_tune_cache_key(model_id)
    entry = cache.get(key)
    if entry is None:
        # A system read across tenants, on purpose: model ids are unique platform-wide, and
        # the owner found here is compared with the caller's organization right after.
        row = (
            FineTunedModel.unscoped.filter(model_id=model_id)
            .values("tenant_id", "base_model_id")
            .first()
        )
        entry = (
            {"tenant_id": row["tenant_id"], "base_model_pk": row["base_model_id"]} if row else {}
        )
        cache.set(key, entry, FINE_TUNE_CACHE_SECONDS if entry else _MISSING_CACHE_SECONDS)
    return entry


def _health_snapshot() -> dict:
    return cache.get(HEALTH_CACHE_KEY) or {}


_memo = LocalMemo()


def forget_local() -> None:
    """Drop this process's memo (tests, and a signal in this process after a change)."""
    _memo.clear()


async def routes() -> dict:
    return await _memo.get("routes", _routes_snapshot)


async def health() -> dict:
    return await _memo.get("health", _health_snapshot)


async def resolve_model(*, tenant_id: int, model_id: str) -> ModelRoute:
    """The route for `model_id` as the organization `tenant_id` may use it.

    Another organization's fine-tuned model is `model_not_found`, exactly like a missing
    one; the owner comes from the catalog, never from the text of the id.
    """
    table = await routes()
    base = table.get(model_id)
    if base is not None:
        return ModelRoute(model_id=model_id, base=base, fine_tuned=False)
    if len(model_id) > 256:
        raise model_not_found(model_id[:256] + "…")
    entry = await _memo.get(("ft", model_id), lambda: _fine_tune_entry(model_id))
    if not entry or entry["tenant_id"] != tenant_id:
        raise model_not_found(model_id)
    base = table.get(("pk", entry["base_model_pk"]))
    if base is None:  # its base model was disabled
        raise model_not_found(model_id)
    return ModelRoute(model_id=model_id, base=base, fine_tuned=True)


def model_folder(base: BaseRoute) -> Path | None:
    """The folder holding the model's tokenizer, or None where this process has none."""
    if base.path.startswith("package:"):
        return _package_folder(base.path.removeprefix("package:"))
    path = Path(base.path)
    return path if path.is_absolute() else Path(settings.MODEL_ROOT) / path


def _package_folder(distribution: str) -> Path | None:
    import importlib

    try:
        module = importlib.import_module(distribution.replace("-", "_"))
    except ImportError:
        return None
    folder = getattr(module, "get_model_path", None)
    return Path(folder()) if folder else None
