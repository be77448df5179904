"""The normalized training example format, and its encoding into token ids and labels.

Each line of a normalized JSONL file is one of:

    {"messages": [{"role": "system"|"user"|"assistant", "content": str,
                   "weight": 0|1 (optional, assistant only)}, ...]}
    {"prompt": str, "completion": str}

Only `tokenizers` and `jinja2` are used here, never torch or transformers: the
platform's validation worker counts tokens with this module, and the trainer encodes
with the very same code, so the two counts agree exactly. The chat template is
rendered the way transformers renders it (same jinja environment, same
`{% generation %}` tracking, same token/span overlap rule); a test checks that the
ids and masks equal `apply_chat_template(..., return_assistant_tokens_mask=True)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100
_GENERATION_TAG = re.compile(r"{%-?\s*generation\s*-?%}")
ROLES = ("system", "user", "assistant")


class InvalidExample(ValueError):
    """An example (or a line of a JSONL file) that does not follow the normalized format."""


def validate_example(example: Any) -> None:
    if not isinstance(example, dict):
        raise InvalidExample("an example must be a JSON object")
    if "messages" in example:
        if set(example) != {"messages"}:
            raise InvalidExample("a chat example has only the key 'messages'")
        _validate_messages(example["messages"])
    elif "prompt" in example or "completion" in example:
        if set(example) != {"prompt", "completion"}:
            raise InvalidExample(
                "a completion example has exactly the keys 'prompt' and 'completion'"
            )
        if not isinstance(example["prompt"], str) or not isinstance(example["completion"], str):
            raise InvalidExample("'prompt' and 'completion' must be strings")
    else:
        raise InvalidExample("an example needs 'messages', or 'prompt' and 'completion'")


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidExample("'messages' must be a non-empty list")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidExample(f"{where} must be an object")
        unknown = set(message) - {"role", "content", "weight"}
        if unknown:
            raise InvalidExample(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        if message.get("role") not in ROLES:
            raise InvalidExample(f"{where}.role must be one of {', '.join(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise InvalidExample(f"{where}.content must be a string")
        if "weight" in message:
            if message["role"] != "assistant":
                raise InvalidExample(f"{where}.weight is only allowed on assistant messages")
            # bool is an int subclass; true/false in JSON is a mistake, not a weight.
            if isinstance(message["weight"], bool) or message["weight"] not in (0, 1):
                raise InvalidExample(f"{where}.weight must be 0 or 1")
    if not any(m["role"] == "assistant" and m.get("weight", 1) != 0 for m in messages):
        raise InvalidExample("a chat example needs at least one assistant message with weight 1")


def read_examples(path: Path | str) -> Iterator[dict[str, Any]]:
    """Validated examples of a JSONL file; InvalidExample names the line of the first bad one."""
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                example = json.loads(line)
                validate_example(example)
            except (json.JSONDecodeError, InvalidExample) as exc:
                reason = (
                    f"invalid JSON ({exc.msg})"
                    if isinstance(exc, json.JSONDecodeError)
                    else str(exc)
                )
                raise InvalidExample(f"line {line_number}: {reason}") from exc
            yield example


class ChatTemplate:
    """A chat template rendered like transformers renders it, tracking `{% generation %}` spans."""

    def __init__(self, source: str, *, special_tokens: dict[str, str]) -> None:
        self.source = source
        self._template = _compile(source)
        self._special_tokens = special_tokens

    def render(
        self, messages: list[dict[str, str]], *, add_generation_prompt: bool = False
    ) -> tuple[str, list[tuple[int, int]]]:
        """The rendered text and the character spans of its generation blocks."""
        blocks: list[str] = []
        spans: list[tuple[int, int]] = []
        token = _TRACKING.set((blocks, spans))
        try:
            for block in self._template.generate(
                messages=messages,
                tools=None,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                **self._special_tokens,
            ):
                blocks.append(block)
        finally:
            _TRACKING.reset(token)
        return "".join(blocks), spans


_TRACKING: ContextVar[tuple[list[str], list[tuple[int, int]]] | None] = ContextVar(
    "gpu_inference_generation_tracking", default=None
)


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTracker(jinja2.ext.Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_track"), [], [], body).set_lineno(
                lineno
            )

        def _track(self, caller: Any) -> str:
            rendered = caller()
            tracking = _TRACKING.get()
            if tracking is not None:
                blocks, spans = tracking
                start = len("".join(blocks))
                spans.append((start, start + len(rendered)))
            return rendered

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        value: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationTracker, jinja2.ext.loopcontrols],
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return environment.from_string(source)


@contextmanager
def _bad_model_folder(model_dir: Path) -> Iterator[None]:
    try:
        yield
    # tokenizers reports a missing or corrupt tokenizer.json as a bare Exception.
    except Exception as exc:
        raise FileNotFoundError(
            f"{model_dir} is not a model folder with a tokenizer: {exc}"
        ) from exc


def _token_text(value: Any) -> str | None:
    # tokenizer_config.json stores special tokens as strings or as AddedToken dicts.
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


class ExampleEncoder:
    """Turns examples into (input_ids, labels) for one model's tokenizer and chat template."""

    def __init__(self, model_dir: Path | str, context_length: int | None = None) -> None:
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        with _bad_model_folder(model_dir):
            self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
            template_file = model_dir / "chat_template.jinja"
            source = (
                template_file.read_text(encoding="utf-8")
                if template_file.exists()
                else config.get("chat_template")
            )
        special_tokens = {
            key: text
            for key in ("bos_token", "eos_token", "unk_token", "pad_token")
            if (text := _token_text(config.get(key))) is not None
        }
        self.chat_template = ChatTemplate(source, special_tokens=special_tokens) if source else None
        self.eos_token_id = self._token_id(special_tokens.get("eos_token"))
        # Completion examples start with BOS only where the tokenizer asks for one.
        self._bos_ids = (
            [self._token_id(special_tokens["bos_token"])]
            if config.get("add_bos_token") and "bos_token" in special_tokens
            else []
        )
        self.context_length = context_length or _model_context_length(model_dir, config)

    def _token_id(self, text: str | None) -> int | None:
        return None if text is None else self._tokenizer.token_to_id(text)

    def encode(self, example: dict[str, Any]) -> tuple[list[int], list[int]]:
        """Token ids and labels (IGNORE_INDEX where no loss is taken), truncated to the context."""
        input_ids, labels = self._encode_full(example)
        return input_ids[: self.context_length], labels[: self.context_length]

    def count_tokens(self, example: dict[str, Any]) -> int:
        """Tokens of the example before truncation."""
        return len(self._encode_full(example)[0])

    def _encode_full(self, example: dict[str, Any]) -> tuple[list[int], list[int]]:
        validate_example(example)
        if "messages" in example:
            return self._encode_chat(example["messages"])
        return self._encode_completion(example["prompt"], example["completion"])

    def _encode_completion(self, prompt: str, completion: str) -> tuple[list[int], list[int]]:
        if self.eos_token_id is None:
            raise InvalidExample(
                "this model has no end token, so it cannot train prompt/completion examples"
            )
        prompt_ids = self._bos_ids + self._tokenizer.encode(prompt, add_special_tokens=False).ids
        completion_ids = [
            *self._tokenizer.encode(completion, add_special_tokens=False).ids,
            self.eos_token_id,
        ]
        return prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids

    def _encode_chat(self, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
        if self.chat_template is None:
            raise InvalidExample(
                "this model has no chat template, so it cannot train chat examples"
            )
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        text, spans = self.chat_template.render(plain)
        if not spans and not _GENERATION_TAG.search(self.chat_template.source):
            spans = self._assistant_spans_by_prefix(plain, text)
        assistant_weights = [m.get("weight", 1) for m in messages if m["role"] == "assistant"]
        if len(spans) != len(assistant_weights):
            raise InvalidExample(
                "the chat template marks a different number of assistant turns than the example has"
            )
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        labels = [IGNORE_INDEX] * len(encoding.ids)
        # Same rule as transformers: a token is trained when it overlaps a generation
        # span; spans and offsets are both in order, so one pass is enough.
        span_index = 0
        for position, (start, end) in enumerate(encoding.offsets):
            while span_index < len(spans) and start >= spans[span_index][1]:
                span_index += 1
            if span_index == len(spans):
                break
            if end > spans[span_index][0] and assistant_weights[span_index] != 0:
                labels[position] = encoding.ids[position]
        return list(encoding.ids), labels

    def _assistant_spans_by_prefix(
        self, messages: list[dict[str, str]], text: str
    ) -> list[tuple[int, int]]:
        """Assistant spans for templates without `{% generation %}` (most published models):
        each turn runs from the end of the conversation before it, rendered with the
        generation prompt, to the end of the conversation through it."""
        spans = []
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before, _ = self.chat_template.render(messages[:index], add_generation_prompt=True)
            through, _ = self.chat_template.render(messages[: index + 1])
            if not (text.startswith(through) and through.startswith(before)):
                raise InvalidExample(
                    "this model's chat template does not render conversations as growing prefixes, "
                    "so its assistant turns cannot be found; add {% generation %} markers to it"
                )
            spans.append((len(before), len(through)))
        return spans


def _model_context_length(model_dir: Path, tokenizer_config: dict[str, Any]) -> int:
    config_file = model_dir / "config.json"
    if config_file.exists():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if isinstance(config.get("max_position_embeddings"), int):
            return config["max_position_embeddings"]
    limit = tokenizer_config.get("model_max_length")
    # Tokenizers without a limit store a huge sentinel (1e30) here.
    if isinstance(limit, int) and limit < 10**9:
        return limit
    raise ValueError(f"cannot tell the context length of {model_dir}; pass context_length")
