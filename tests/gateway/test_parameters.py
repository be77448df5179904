"""Every parameter error's message, before anything reaches a replica."""

import pytest

from tests.gateway.helpers import chat

CHAT_ERRORS = [
    ({"model": None}, "model", "you must provide a model parameter"),
    ({"model": 5}, "model", "model must be a non-empty string."),
    ({"messages": None}, "messages", "Missing required parameter: 'messages'."),
    ({"messages": []}, "messages", "'messages' must be a non-empty array of message objects."),
    (
        {"messages": [{"role": "robot", "content": "x"}]},
        "messages[0].role",
        "Invalid value for 'messages[0].role': 'robot'. Supported values are: 'system', "
        "'developer', 'user', 'assistant', 'tool'.",
    ),
    (
        {"messages": [{"role": "user", "content": 3}]},
        "messages[0].content",
        "Invalid 'messages[0].content': expected a string or an array of text parts.",
    ),
    (
        {"temperature": 2.5},
        "temperature",
        "Invalid 'temperature': 2.5 is out of range; it must be between 0 and 2.",
    ),
    ({"temperature": "hot"}, "temperature", "temperature must be a number, got 'hot'."),
    ({"top_p": 1.5}, "top_p", "Invalid 'top_p': 1.5 is out of range; it must be between 0 and 1."),
    ({"max_tokens": 0}, "max_tokens", "Invalid 'max_tokens': 0; it must be at least 1."),
    ({"max_tokens": 1.5}, "max_tokens", "max_tokens must be an integer, got 1.5."),
    (
        {"max_completion_tokens": -1},
        "max_completion_tokens",
        "Invalid 'max_completion_tokens': -1; it must be at least 1.",
    ),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "stop may hold at most 4 sequences, got 5."),
    ({"stop": 7}, "stop", "stop must be a string or a list of strings."),
    ({"seed": "x"}, "seed", "seed must be an integer, got 'x'."),
    ({"n": 0}, "n", "Invalid 'n': 0; it must be between 1 and 128."),
    ({"logprobs": "yes"}, "logprobs", "logprobs must be true or false, got 'yes'."),
    (
        {"top_logprobs": 3},
        "top_logprobs",
        "'top_logprobs' is only allowed when 'logprobs' is true.",
    ),
    (
        {"logprobs": True, "top_logprobs": 21},
        "top_logprobs",
        "Invalid 'top_logprobs': 21; it must be between 0 and 20.",
    ),
    (
        {"response_format": {"type": "yaml"}},
        "response_format.type",
        "Invalid value for 'response_format.type': 'yaml'. Supported values are: 'text', "
        "'json_object' and 'json_schema'.",
    ),
    (
        {"response_format": {"type": "json_schema"}},
        "response_format.json_schema",
        "Missing required parameter: 'response_format.json_schema'.",
    ),
    (
        {"tools": [{"type": "function", "function": {}}]},
        "tools[0].function.name",
        "Missing required parameter: 'tools[0].function.name'.",
    ),
    (
        {"tool_choice": "auto"},
        "tool_choice",
        "'tool_choice' is only allowed when 'tools' are specified.",
    ),
    (
        {"stream_options": {"include_usage": True}},
        "stream_options",
        "The 'stream_options' parameter is only allowed when 'stream' is true.",
    ),
    (
        {"stream": True, "stream_options": {"include_usage": "yes"}},
        "include_usage",
        "include_usage must be true or false, got 'yes'.",
    ),
    ({"temprature": 1}, "temprature", "Unrecognized request argument supplied: temprature"),
    (
        {"presence_penalty": 3},
        "presence_penalty",
        "Invalid 'presence_penalty': 3 is out of range; it must be between -2 and 2.",
    ),
]


@pytest.mark.parametrize(("change", "param", "message"), CHAT_ERRORS)
def test_chat_parameter_errors(backend, call, alice_key, change, param, message):
    body = {**chat(), **change}
    body = {key: value for key, value in body.items() if value is not None}
    response = call(alice_key, "/v1/chat/completions", body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["message"], error["type"]) == (
        param,
        message,
        "invalid_request_error",
    )
    assert backend.state.served == 0


def test_a_body_that_is_not_json_is_a_400(backend, gateway, alice_key):
    import httpx

    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=b"{not json",
        headers={"authorization": f"Bearer {alice_key}", "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(
        "We could not parse the JSON body of your request."
    )


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "tiny-chat"}, "prompt", "Missing required parameter: 'prompt'."),
        (
            {"model": "tiny-chat", "prompt": {"a": 1}},
            "prompt",
            "prompt must be a string, an array of strings or an array of token ids.",
        ),
        (
            {"model": "tiny-chat", "prompt": "x", "logprobs": 6},
            "logprobs",
            "Invalid 'logprobs': 6; it must be between 0 and 5.",
        ),
        (
            {"model": "tiny-chat", "prompt": "x", "suffix": "y"},
            "suffix",
            "suffix is not supported by this model.",
        ),
    ],
)
def test_completion_parameter_errors(backend, call, alice_key, body, param, message):
    response = call(alice_key, "/v1/completions", body)
    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["message"]) == (
        param,
        message,
    )


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "all-MiniLM-L6-v2"}, "input", "Missing required parameter: 'input'."),
        (
            {"model": "all-MiniLM-L6-v2", "input": ""},
            "input",
            "'input' cannot contain an empty string.",
        ),
        (
            {"model": "all-MiniLM-L6-v2", "input": "x", "encoding_format": "hex"},
            "encoding_format",
            "Invalid value for 'encoding_format': 'hex'. Supported values are: 'float' and 'base64'.",
        ),
        (
            {"model": "all-MiniLM-L6-v2", "input": [1.5]},
            "input",
            "'input' must be a string, an array of strings, or an array of token arrays.",
        ),
    ],
)
def test_embedding_parameter_errors(backend, call, alice_key, body, param, message):
    response = call(alice_key, "/v1/embeddings", body)
    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["message"]) == (
        param,
        message,
    )


def test_vllm_sampling_extras_pass_through(backend, call, alice_key):
    response = call(alice_key, "/v1/chat/completions", chat(top_k=5, ignore_eos=True))
    assert response.status_code == 200
    assert backend.state.requests[-1]["body"]["top_k"] == 5


def test_a_prompt_longer_than_the_context_is_a_400_before_the_replica(backend, call, alice_key):
    long_text = " ".join(["word"] * 400)
    response = call(alice_key, "/v1/chat/completions", chat(long_text))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "messages"
    assert error["message"].startswith(
        "This model's maximum context length is 256 tokens. However, you requested "
    )
    assert "in the messages, leaving no room for a completion" in error["message"]
    assert backend.state.served == 0


def test_prompt_plus_max_tokens_over_the_context_is_a_400_saying_both(backend, call, alice_key):
    response = call(alice_key, "/v1/chat/completions", chat("hello there", max_tokens=300))
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "in the messages, 300 in the completion)" in message
    assert message.endswith("Please reduce the length of the messages or completion.")
    fits = call(alice_key, "/v1/chat/completions", chat("hello there", max_tokens=100))
    assert fits.status_code == 200


def test_the_count_matches_the_models_chat_template(transactional_db):
    from tokenmill.gateway import params, routes, tokens

    table = routes._routes_snapshot()
    prepared = params.chat_request(chat("hello there"))
    counted = tokens.prompt_tokens(prepared, table["tiny-chat"])
    from django.conf import settings
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(settings.MODEL_ROOT / "tiny-chat" / "tokenizer.json"))
    rendered = "<|user|>\nhello there<|end|><|assistant|>\n"
    assert counted == len(tokenizer.encode(rendered, add_special_tokens=False).ids)
