"""The tokenizer that validation counts with: the default base model's, found through the catalog.

Counts come from `gpu_inference.formats.ExampleEncoder`, the very code the trainer
encodes with, so the statistics a tenant sees agree exactly with what training bills.
"""

from functools import lru_cache
from pathlib import Path

from django.conf import settings

from gpu_inference.formats import ExampleEncoder
from tenants.models import Organization
from tokenmill.catalog import selectors as catalog_selectors
from tokenmill.catalog.models import BaseModel


class TokenizerUnavailable(Exception):
    """The default model or its tokenizer cannot be loaded now (a build in progress, a bad setting)."""


def default_tokenizer_model(*, tenant: Organization) -> BaseModel:
    model_id = settings.DEFAULT_TOKENIZER_MODEL
    model = catalog_selectors.base_model_get(tenant=tenant, model_id=model_id)
    if model is None:
        raise TokenizerUnavailable(
            f"DEFAULT_TOKENIZER_MODEL is {model_id!r}, which is not an active model of the catalog"
        )
    return model


def model_folder(model: BaseModel) -> Path:
    path = Path(model.path)
    return path if path.is_absolute() else Path(settings.MODEL_ROOT) / path


def encoder_for(model: BaseModel) -> ExampleEncoder:
    folder = model_folder(model)
    try:
        # The modification time is part of the cache key, so a rebuilt model is picked up.
        stamp = (folder / "tokenizer.json").stat().st_mtime_ns
    except OSError as error:
        raise TokenizerUnavailable(
            f"the tokenizer of {model.model_id!r} is missing: {error}"
        ) from None
    return _cached_encoder(str(folder), stamp, model.context_length)


@lru_cache(maxsize=8)
def _cached_encoder(folder: str, stamp: int, context_length: int) -> ExampleEncoder:
    del stamp  # only part of the cache key
    try:
        return ExampleEncoder(folder, context_length=context_length)
    except FileNotFoundError as error:
        raise TokenizerUnavailable(str(error)) from None
