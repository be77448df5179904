"""The rules one training example must follow, per dataset format.

Each check takes one parsed example and returns what is wrong with it or, when
nothing is, the normalized example the trainer reads. Line numbers and error
counting belong to the caller (``validation.py``); messages here start with the
field they are about, e.g. ``"messages[2].role" must be one of ...``.

Pure standard library: no Django, so it runs anywhere the validator runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DatasetFormat(StrEnum):
    CHAT = "chat"
    PROMPT_COMPLETION = "prompt_completion"
    CLASSIFICATION = "classification"

    @property
    def label(self) -> str:
        return {
            DatasetFormat.CHAT: "chat",
            DatasetFormat.PROMPT_COMPLETION: "prompt/completion",
            DatasetFormat.CLASSIFICATION: "classification CSV",
        }[self]


ROLES = ("system", "user", "assistant")
# OpenAI's chat format also allows "name" on a message; we accept it, but the
# trainer has no use for it, so it is dropped from the normalized file.
MESSAGE_KEYS = ("role", "content", "weight", "name")
TOOL_EXAMPLE_KEYS = frozenset({"tools", "functions", "parallel_tool_calls"})
TOOL_MESSAGE_KEYS = frozenset({"tool_calls", "function_call", "tool_call_id"})
PROMPT_COMPLETION_KEYS = ("prompt", "completion")


@dataclass(frozen=True)
class Problem:
    code: str
    message: str


@dataclass
class CheckedExample:
    problems: list[Problem] = field(default_factory=list)
    normalized: dict[str, Any] | None = None
    dropped_names: int = 0

    def add(self, code: str, message: str) -> None:
        self.problems.append(Problem(code, message))


def example_kind(example: dict[str, Any]) -> DatasetFormat | None:
    """Which JSONL format one object is written in, judged by its keys."""
    if "messages" in example:
        return DatasetFormat.CHAT
    if any(key in example for key in PROMPT_COMPLETION_KEYS):
        return DatasetFormat.PROMPT_COMPLETION
    return None


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, as users see it in their file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shown(value: Any, limit: int = 40) -> str:
    """A user's value quoted back to them, cut short so one bad line cannot flood the report."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quoted(path: str) -> str:
    return shown(path, limit=60)


def check_chat(example: dict[str, Any]) -> CheckedExample:
    checked = CheckedExample()
    for key in example:
        if key in TOOL_EXAMPLE_KEYS:
            checked.add(
                "unsupported_tool_use",
                f"{_quoted(key)}: tool and function calling examples are not supported",
            )
        elif key != "messages":
            checked.add("unknown_key", f"{_quoted(key)} is not an allowed key (allowed: messages)")
    if "messages" not in example:
        checked.add("missing_messages", '"messages" is required')
        return checked
    messages = example["messages"]
    if not isinstance(messages, list):
        checked.add("invalid_type", f'"messages" must be an array (got {json_type(messages)})')
        return checked
    if not messages:
        checked.add("empty_messages", '"messages" must not be empty')
        return checked

    normalized = [_check_message(checked, index, message) for index, message in enumerate(messages)]
    objects = [message for message in messages if isinstance(message, dict)]
    roles = [message.get("role") for message in objects]
    if "assistant" not in roles:
        # With a bad role in the list ("gpt", "human"), fixing the role is the news.
        if len(objects) == len(messages) and all(role in ROLES for role in roles):
            checked.add(
                "missing_assistant_message", 'at least one message must have role "assistant"'
            )
    elif all(m.get("weight", 1) == 0 for m in objects if m.get("role") == "assistant"):
        checked.add(
            "all_weights_zero",
            "every assistant message has weight 0, so there is nothing to train on",
        )
    if not checked.problems:
        checked.normalized = {"messages": normalized}
    return checked


def _check_message(checked: CheckedExample, index: int, message: Any) -> dict[str, Any] | None:
    """Check ``messages[index]``; its normalized form, or None if anything is wrong with it."""
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        checked.add("invalid_type", f'"{where}" must be an object (got {json_type(message)})')
        return None
    problems_before = len(checked.problems)
    for key in message:
        if key in TOOL_MESSAGE_KEYS:
            checked.add(
                "unsupported_tool_use",
                f"{_quoted(f'{where}.{key}')}: tool and function calls are not supported",
            )
        elif key not in MESSAGE_KEYS:
            checked.add(
                "unknown_key",
                f"{_quoted(f'{where}.{key}')} is not an allowed key "
                f"(allowed: {', '.join(MESSAGE_KEYS)})",
            )

    role = message.get("role")
    if "role" not in message:
        checked.add("missing_role", f'"{where}.role" is required')
    elif not isinstance(role, str) or role not in ROLES:
        checked.add(
            "invalid_role",
            f'"{where}.role" must be one of {", ".join(ROLES)} (got {shown(role)})',
        )

    content = message.get("content")
    if "content" not in message:
        checked.add("missing_content", f'"{where}.content" is required')
    elif not isinstance(content, str):
        checked.add(
            "invalid_type", f'"{where}.content" must be a string (got {json_type(content)})'
        )
    elif not content.strip():
        checked.add("empty_content", f'"{where}.content" must not be empty')

    weight = message.get("weight")
    if "weight" in message:
        if role != "assistant":
            checked.add(
                "weight_not_allowed", f'"{where}.weight" is only allowed on assistant messages'
            )
        elif isinstance(weight, bool) or weight not in (0, 1):
            checked.add("invalid_weight", f'"{where}.weight" must be 0 or 1 (got {shown(weight)})')

    if "name" in message:
        name = message["name"]
        if not isinstance(name, str) or not name.strip():
            checked.add("invalid_name", f'"{where}.name" must be a non-empty string')
        else:
            checked.dropped_names += 1

    if len(checked.problems) > problems_before:
        return None
    normalized: dict[str, Any] = {"role": role, "content": content}
    if "weight" in message:
        normalized["weight"] = int(weight)
    return normalized


def check_prompt_completion(example: dict[str, Any]) -> CheckedExample:
    checked = CheckedExample()
    for key in example:
        if key not in PROMPT_COMPLETION_KEYS:
            checked.add(
                "unknown_key",
                f"{_quoted(key)} is not an allowed key "
                f"(allowed: {', '.join(PROMPT_COMPLETION_KEYS)})",
            )
    for key in PROMPT_COMPLETION_KEYS:
        value = example.get(key)
        if key not in example:
            checked.add(f"missing_{key}", f'"{key}" is required')
        elif not isinstance(value, str):
            checked.add("invalid_type", f'"{key}" must be a string (got {json_type(value)})')
        elif not value.strip():
            checked.add("empty_content", f'"{key}" must not be empty')
    if not checked.problems:
        checked.normalized = {key: example[key] for key in PROMPT_COMPLETION_KEYS}
    return checked


def check_classification_row(text: str, label: str) -> CheckedExample:
    """One CSV row; the label is stripped, as " positive" and "positive" are one class."""
    checked = CheckedExample()
    label = label.strip()
    if not text.strip():
        checked.add("empty_content", '"text" must not be empty')
    if not label:
        checked.add("empty_content", '"label" must not be empty')
    if not checked.problems:
        checked.normalized = {
            "messages": [
                {"role": "user", "content": text},
                {"role": "assistant", "content": label},
            ]
        }
    return checked
