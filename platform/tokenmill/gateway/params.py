"""Request bodies of /v1/chat/completions, /v1/completions and /v1/embeddings, checked
with OpenAI's rules and words before anything reaches a model server.

A bad parameter is a 400 naming it in `param`. Parameters vLLM understands beyond
OpenAI's (top_k, min_p, ignore_eos, ...) pass through; anything else is refused the way
OpenAI refuses it, so a typo never silently changes nothing.
"""

import math
from dataclasses import dataclass
from typing import Any

from tokenmill.gateway.errors import invalid

CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"

# vLLM sampling extras a caller may send (vllm.entrypoints.openai protocol).
VLLM_EXTRAS = {
    "top_k",
    "min_p",
    "repetition_penalty",
    "min_tokens",
    "ignore_eos",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "stop_token_ids",
    "include_stop_str_in_output",
    "length_penalty",
    "truncate_prompt_tokens",
    "add_special_tokens",
}

_COMMON = {"model", "user", "stream", "stream_options", "n", "seed", "stop", "temperature"}
_SAMPLING = _COMMON | {
    "top_p",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
}
KNOWN = {
    CHAT: _SAMPLING
    | {
        "messages",
        "max_completion_tokens",
        "logprobs",
        "top_logprobs",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "metadata",
        "store",
    }
    | VLLM_EXTRAS,
    COMPLETIONS: _SAMPLING | {"prompt", "logprobs", "echo", "best_of", "suffix"} | VLLM_EXTRAS,
    EMBEDDINGS: {
        "model",
        "input",
        "encoding_format",
        "dimensions",
        "user",
        "truncate_prompt_tokens",
    },
}

CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass
class Prepared:
    """A checked request: what to forward, and what the caller asked to see."""

    endpoint: str
    model: str
    body: dict[str, Any]
    stream: bool = False
    include_usage: bool = False
    continuous_usage: bool = False
    max_tokens: int | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(body: dict, name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not _is_number(value):
        raise invalid(name, f"{name} must be a number, got {value!r}.", code="invalid_type")
    if not low <= value <= high:
        raise invalid(
            name,
            f"Invalid '{name}': {value} is out of range; it must be between {low:g} and {high:g}.",
        )


def _integer(body: dict, name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value):
        raise invalid(name, f"{name} must be an integer, got {value!r}.", code="invalid_type")
    if value < low or (high is not None and value > high):
        limit = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise invalid(name, f"Invalid '{name}': {value}; it must be {limit}.")
    return value


def _boolean(body: dict, name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(name, f"{name} must be true or false, got {value!r}.", code="invalid_type")
    return value


def _stop(body: dict) -> None:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise invalid("stop", "stop must be a string or a list of strings.", code="invalid_type")
    if len(stop) > 4:
        raise invalid("stop", f"stop may hold at most 4 sequences, got {len(stop)}.")


def _logit_bias(body: dict) -> None:
    bias = body.get("logit_bias")
    if bias is None:
        return
    if not isinstance(bias, dict):
        raise invalid("logit_bias", "logit_bias must be an object of token id to bias.")
    for token, value in bias.items():
        if not str(token).isdigit() or not _is_number(value) or not -100 <= value <= 100:
            raise invalid(
                "logit_bias",
                f"Invalid logit_bias entry {token!r}: keys are token ids and values numbers between -100 and 100.",
            )


def _stream(body: dict, prepared: Prepared) -> None:
    prepared.stream = _boolean(body, "stream")
    options = body.get("stream_options")
    if options is None:
        return
    if not prepared.stream:
        raise invalid(
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is true.",
        )
    if not isinstance(options, dict):
        raise invalid("stream_options", "stream_options must be an object.", code="invalid_type")
    unknown = set(options) - {"include_usage", "continuous_usage_stats"}
    if unknown:
        raise invalid(
            "stream_options", f"Unrecognized stream_options field: {sorted(unknown)[0]!r}."
        )
    prepared.include_usage = _boolean(options, "include_usage")
    prepared.continuous_usage = _boolean(options, "continuous_usage_stats")


def _unknown(body: dict, endpoint: str) -> None:
    for name in body:
        if name not in KNOWN[endpoint]:
            raise invalid(
                name, f"Unrecognized request argument supplied: {name}", code="unknown_parameter"
            )


def _model(body: dict) -> str:
    model = body.get("model")
    if model is None:
        raise invalid(
            "model", "you must provide a model parameter", code="missing_required_parameter"
        )
    if not isinstance(model, str) or not model:
        raise invalid("model", "model must be a non-empty string.", code="invalid_type")
    return model


def _sampling(body: dict, prepared: Prepared) -> None:
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    _integer(body, "n", 1, 128)
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise invalid("seed", f"seed must be an integer, got {seed!r}.", code="invalid_type")
    _stop(body)
    _logit_bias(body)
    _stream(body, prepared)
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise invalid("user", "user must be a string.", code="invalid_type")


def chat_request(body: dict) -> Prepared:
    model = _model(body)
    _unknown(body, CHAT)
    prepared = Prepared(endpoint=CHAT, model=model, body=body)
    _messages(body.get("messages"))
    _sampling(body, prepared)
    max_tokens = _integer(body, "max_tokens", 1)
    max_completion_tokens = _integer(body, "max_completion_tokens", 1)
    prepared.max_tokens = max_completion_tokens if max_completion_tokens is not None else max_tokens
    logprobs = _boolean(body, "logprobs")
    top_logprobs = _integer(body, "top_logprobs", 0, 20)
    if top_logprobs is not None and not logprobs:
        raise invalid("top_logprobs", "'top_logprobs' is only allowed when 'logprobs' is true.")
    _response_format(body.get("response_format"))
    _tools(body)
    return prepared


def _messages(messages: Any) -> None:
    if messages is None:
        raise invalid(
            "messages",
            "Missing required parameter: 'messages'.",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "'messages' must be a non-empty array of message objects.")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid(where, f"Invalid '{where}': expected an object.", code="invalid_type")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise invalid(
                f"{where}.role",
                f"Invalid value for '{where}.role': {role!r}. Supported values are: "
                + ", ".join(repr(r) for r in CHAT_ROLES)
                + ".",
            )
        content = message.get("content")
        if content is None and role == "assistant" and message.get("tool_calls"):
            continue
        if isinstance(content, str):
            continue
        if isinstance(content, list) and all(
            isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
            for part in content
        ):
            continue
        raise invalid(
            f"{where}.content",
            f"Invalid '{where}.content': expected a string or an array of text parts.",
            code="invalid_type",
        )


def _response_format(value: Any) -> None:
    if value is None:
        return
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise invalid(
            "response_format.type" if isinstance(value, dict) else "response_format",
            f"Invalid value for 'response_format.type': {kind!r}. Supported values are: 'text', 'json_object' and 'json_schema'.",
        )
    if kind == "json_schema" and not isinstance(value.get("json_schema"), dict):
        raise invalid(
            "response_format.json_schema",
            "Missing required parameter: 'response_format.json_schema'.",
            code="missing_required_parameter",
        )


def _tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is None:
        if body.get("tool_choice") not in (None, "none"):
            raise invalid(
                "tool_choice", "'tool_choice' is only allowed when 'tools' are specified."
            )
        return
    if not isinstance(tools, list):
        raise invalid("tools", "tools must be an array of tool objects.", code="invalid_type")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
        ):
            raise invalid(
                f"tools[{index}]",
                f"Invalid 'tools[{index}]': expected {{'type': 'function', 'function': {{...}}}}.",
            )
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise invalid(
                f"tools[{index}].function.name",
                f"Missing required parameter: 'tools[{index}].function.name'.",
                code="missing_required_parameter",
            )


def completion_request(body: dict) -> Prepared:
    model = _model(body)
    _unknown(body, COMPLETIONS)
    prepared = Prepared(endpoint=COMPLETIONS, model=model, body=body)
    prompt = body.get("prompt")
    if prompt is None:
        raise invalid(
            "prompt", "Missing required parameter: 'prompt'.", code="missing_required_parameter"
        )
    if not (
        isinstance(prompt, str)
        or (isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt))
        or (isinstance(prompt, list) and prompt and all(_is_int(p) for p in prompt))
    ):
        raise invalid(
            "prompt",
            "prompt must be a string, an array of strings or an array of token ids.",
            code="invalid_type",
        )
    _sampling(body, prepared)
    prepared.max_tokens = _integer(body, "max_tokens", 1)
    if prepared.max_tokens is None:
        prepared.max_tokens = 16  # OpenAI's default for completions
        body["max_tokens"] = 16
    _integer(body, "logprobs", 0, 5)
    _boolean(body, "echo")
    best_of = _integer(body, "best_of", 1, 20)
    if best_of is not None and best_of < (body.get("n") or 1):
        raise invalid("best_of", "best_of must be greater than or equal to n.")
    if body.get("suffix") is not None:
        raise invalid(
            "suffix", "suffix is not supported by this model.", code="unsupported_parameter"
        )
    return prepared


def embedding_request(body: dict) -> Prepared:
    model = _model(body)
    _unknown(body, EMBEDDINGS)
    value = body.get("input")
    if value is None:
        raise invalid(
            "input", "Missing required parameter: 'input'.", code="missing_required_parameter"
        )
    texts_ok = isinstance(value, str) or (
        isinstance(value, list) and value and all(isinstance(item, str) for item in value)
    )
    tokens_ok = (
        isinstance(value, list)
        and value
        and (
            all(_is_int(item) for item in value)
            or all(
                isinstance(item, list) and item and all(_is_int(t) for t in item) for item in value
            )
        )
    )
    if not (texts_ok or tokens_ok):
        raise invalid(
            "input",
            "'input' must be a string, an array of strings, or an array of token arrays.",
            code="invalid_type",
        )
    if isinstance(value, list) and len(value) > 2048:
        raise invalid("input", f"'input' may hold at most 2048 items, got {len(value)}.")
    if (isinstance(value, str) and not value) or (isinstance(value, list) and "" in value):
        raise invalid("input", "'input' cannot contain an empty string.")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise invalid(
            "encoding_format",
            f"Invalid value for 'encoding_format': {encoding!r}. Supported values are: 'float' and 'base64'.",
        )
    _integer(body, "dimensions", 1)
    return Prepared(endpoint=EMBEDDINGS, model=model, body=body)


PREPARERS = {CHAT: chat_request, COMPLETIONS: completion_request, EMBEDDINGS: embedding_request}
