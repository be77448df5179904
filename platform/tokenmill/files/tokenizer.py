"""The tokenizer that validation counts with: the default base model's, found through the catalog.

Counts come from `gpu_inference.formats.ExampleEncoder`, the very code the trainer
encodes with, so the statistics a tenant sees agree exactly with what training bills.
"""

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

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


def context_counter(model: BaseModel) -> Callable[[dict[str, Any]], int]:
    """Counts an example's tokens exactly while it fits the model's context, tokenizing no more
    than that needs: an example whose text is longer than the context could hold even in the
    longest tokens of the vocabulary is longer than the context for sure, and is counted as
    ``context_length + 1`` without being tokenized (a 1 MB line would take ~200 MB to tokenize)."""
    encoder = encoder_for(model)
    context = model.context_length
    budget = (context + 1) * _longest_token_chars(str(model_folder(model)))

    def count(example: dict[str, Any]) -> int:
        # A chat template renders each message with at least its role's marker, so more
        # messages than the context holds are longer than it too.
        if _text_chars(example) > budget or len(example.get("messages", ())) > context:
            return context + 1
        return encoder.count_tokens(example)

    return count


def _text_chars(example: dict[str, Any]) -> int:
    if "messages" in example:
        return sum(len(message["content"]) for message in example["messages"])
    return len(example["prompt"]) + len(example["completion"])


@lru_cache(maxsize=8)
def _longest_token_chars(folder: str) -> int:
    """The most characters one token of the vocabulary covers (a byte-level token's string has
    one character per byte, so this bounds the characters of text too)."""
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(Path(folder) / "tokenizer.json")).get_vocab(
        with_added_tokens=True
    )
    return max((len(token) for token in vocab), default=1)


@lru_cache(maxsize=8)
def _cached_encoder(folder: str, stamp: int, context_length: int) -> ExampleEncoder:
    del stamp  # only part of the cache key
    try:
        return ExampleEncoder(folder, context_length=context_length)
    except FileNotFoundError as error:
        raise TokenizerUnavailable(str(error)) from None
