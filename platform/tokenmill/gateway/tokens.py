"""Counting prompt tokens with the model's own tokenizer and chat template, so a request
that cannot fit the context gets a clear 400 before it reaches a model server.

The chat template is rendered by gpu_inference.formats (the code training encodes
with), so the count agrees with what vLLM computes from the same folder.

Counting exactly costs a template render and a tokenization (a few hundred
microseconds, the largest part of the gateway's own work), so it is done only when
the request might not fit: no token is shorter than one byte, so the UTF-8 length of
the rendered prompt bounds its token count from above, and the template's own text
per message is measured once per model. A request whose bound fits is forwarded with
that bound as its estimate; vLLM's usage gives the real count when it ends.
"""

import json
import time
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
        self._overhead: dict[str, int] = {}

    def chat_bound(self, messages: list[dict[str, Any]]) -> int | None:
        """An upper bound of the chat prompt's tokens, without rendering it."""
        if self.template is None:
            return None
        total = self._template_bytes(None)  # the generation prompt
        for message in messages:
            role = message["role"]
            if role not in self._overhead:
                self._overhead[role] = self._template_bytes(role)
            total += self._overhead[role] + len(_text_of(message.get("content")).encode())
        return total + _SAFETY_TOKENS

    def _template_bytes(self, role: str | None) -> int:
        # What the template writes around an empty message of this role (or, for None,
        # the generation prompt alone): the bound's fixed part.
        try:
            if role is None:
                empty, _ = self.template.render([], add_generation_prompt=True)
            else:
                empty, _ = self.template.render([{"role": role, "content": ""}])
        except Exception:
            return 1 << 20  # a template that cannot render alone: always count exactly
        return len(empty.encode())

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


# Tokenizers that add a word-start marker may add a token at a boundary: a margin.
_SAFETY_TOKENS = 8


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part["text"] for part in content)
    return content or ""


@lru_cache(maxsize=16)
def _counter(folder: str, stamp: int) -> _Counter:
    del stamp  # part of the cache key only: a rebuilt model is read again
    return _Counter(Path(folder))


_found: dict[str, tuple[float, _Counter | None]] = {}


def counter_for(base: BaseRoute) -> _Counter | None:
    """The model's counter; its folder is looked at again at most every few seconds."""
    now = time.monotonic()
    cached = _found.get(base.path)
    if cached is not None and cached[0] > now:
        return cached[1]
    folder = model_folder(base)
    counter = None
    if folder is not None:
        try:
            stamp = (folder / "tokenizer.json").stat().st_mtime_ns
        except OSError:
            pass  # no tokenizer on this machine: the model server enforces the limit
        else:
            counter = _counter(str(folder), stamp)
    _found[base.path] = (now + 5, counter)
    return counter


def prompt_tokens(prepared: Prepared, base: BaseRoute, *, room: int | None = None) -> int | None:
    """Prompt tokens of the request (the largest input, for a batch), or None if unknown.

    With `room`, a chat prompt whose upper bound is within it is not counted exactly:
    the bound is returned instead.
    """
    counter = counter_for(base)
    if counter is None:
        return None
    body = prepared.body
    if prepared.endpoint == params.CHAT:
        if room is not None:
            bound = counter.chat_bound(body["messages"])
            if bound is not None and bound <= room:
                return bound
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
    """Refuse a request whose prompt (plus the tokens asked for) exceeds the context.

    Returns the prompt's tokens, exact or (when it clearly fits) an upper bound.
    """
    limit = base.context_length
    room = limit - max(prepared.max_tokens or 0, 1)
    counted = prompt_tokens(prepared, base, room=room)
    if counted is None:
        return None
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
