"""Counting prompt tokens with the model's own tokenizer and chat template, so a request
that cannot fit the context gets a clear 400 before it reaches a model server.

The chat template is rendered by gpu_inference.formats (the code training encodes
with), so the count agrees with what vLLM computes from the same folder.
"""

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from gpu_inference.formats import ChatTemplate
from tokenmill.gateway import params
from tokenmill.gateway.errors import invalid
from tokenmill.gateway.params import Prepared
from tokenmill.gateway.routes import BaseRoute, model_folder


class _Counter:
    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
        template_file = folder / "chat_template.jinja"
        source = (
            template_file.read_text(encoding="utf-8")
            if template_file.exists()
            else config.get("chat_template")
        )
        special = {
            key: value if isinstance(value, str) else value.get("content")
            for key in ("bos_token", "eos_token", "unk_token", "pad_token")
            if (value := config.get(key))
        }
        self.template = ChatTemplate(source, special_tokens=special) if source else None

    def text(self, text: str, *, special: bool = False) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=special).ids)

    def chat(self, messages: list[dict[str, Any]]) -> int | None:
        if self.template is None:
            return None
        plain = [{"role": m["role"], "content": _text_of(m.get("content"))} for m in messages]
        try:
            rendered, _ = self.template.render(plain, add_generation_prompt=True)
        except Exception:  # a template this counter cannot render: vLLM checks instead
            return None
        return self.text(rendered)


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part["text"] for part in content)
    return content or ""


@lru_cache(maxsize=16)
def _counter(folder: str, stamp: int) -> _Counter:
    del stamp  # part of the cache key only: a rebuilt model is read again
    return _Counter(Path(folder))


def counter_for(base: BaseRoute) -> _Counter | None:
    folder = model_folder(base)
    if folder is None:
        return None
    try:
        stamp = (folder / "tokenizer.json").stat().st_mtime_ns
    except OSError:
        return None  # no tokenizer on this machine: the model server enforces the limit
    return _counter(str(folder), stamp)


def prompt_tokens(prepared: Prepared, base: BaseRoute) -> int | None:
    """Prompt tokens of the request (the largest input, for a batch), or None if unknown."""
    counter = counter_for(base)
    if counter is None:
        return None
    body = prepared.body
    if prepared.endpoint == params.CHAT:
        return counter.chat(body["messages"])
    if prepared.endpoint == params.COMPLETIONS:
        return _largest(counter, body["prompt"], special=False)
    return _largest(counter, body["input"], special=True)


def _largest(counter: _Counter, value: Any, *, special: bool) -> int:
    if isinstance(value, str):
        return counter.text(value, special=special)
    if value and isinstance(value[0], int):
        return len(value)
    return max(
        len(item) if isinstance(item, list) else counter.text(item, special=special)
        for item in value
    )


def check_context(prepared: Prepared, base: BaseRoute) -> int | None:
    """Refuse a request whose prompt (plus the tokens asked for) exceeds the context."""
    counted = prompt_tokens(prepared, base)
    if counted is None:
        return None
    limit = base.context_length
    if prepared.endpoint == params.EMBEDDINGS:
        if counted > limit:
            raise invalid(
                "input",
                f"This model's maximum context length is {limit} tokens, however you requested "
                f"{counted} tokens in one input. Please reduce your input.",
                code="context_length_exceeded",
            )
        return counted
    asked = prepared.max_tokens or 0
    if counted + max(asked, 1) > limit:
        where = "messages" if prepared.endpoint == params.CHAT else "prompt"
        detail = (
            f"{counted + asked} tokens ({counted} in the {where}, {asked} in the completion)"
            if asked
            else f"{counted} tokens in the {where}, leaving no room for a completion"
        )
        raise invalid(
            where,
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{detail}. Please reduce the length of the {where} or completion.",
            code="context_length_exceeded",
        )
    return counted
