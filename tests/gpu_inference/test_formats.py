import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_inference.formats import (
    IGNORE_INDEX,
    ExampleEncoder,
    InvalidExample,
    read_examples,
    validate_example,
)

ROOT = Path(__file__).resolve().parents[2]

CHAT = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "And of Japan?"},
        {"role": "assistant", "content": "The capital of Japan is Tokyo."},
    ]
}


def trained_text(encoder_model: Path, ids: list[int], labels: list[int]) -> str:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(encoder_model / "tokenizer.json"))
    return tokenizer.decode(
        [i for i, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX],
        skip_special_tokens=False,
    )


def test_chat_labels_cover_only_assistant_turns_and_their_end_token(quick_model):
    ids, labels = ExampleEncoder(quick_model).encode(CHAT)
    assert len(ids) == len(labels)
    assert trained_text(quick_model, ids, labels) == (
        "The capital of France is Paris.<|end|>The capital of Japan is Tokyo.<|end|>"
    )
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(ids, labels, strict=True))


def test_chat_encoding_matches_transformers_apply_chat_template(quick_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(quick_model))
    for example in (
        CHAT,
        {
            "messages": [
                {"role": "user", "content": " odd  spacing\n"},
                {"role": "assistant", "content": "\nok "},
            ]
        },
    ):
        ids, labels = ExampleEncoder(quick_model).encode(example)
        expected = tokenizer.apply_chat_template(
            example["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        assert ids == list(expected["input_ids"])
        assert [int(label != IGNORE_INDEX) for label in labels] == list(expected["assistant_masks"])


def test_weight_zero_turns_are_not_trained(quick_model):
    example = json.loads(json.dumps(CHAT))
    example["messages"][2]["weight"] = 0
    ids, labels = ExampleEncoder(quick_model).encode(example)
    assert trained_text(quick_model, ids, labels) == "The capital of Japan is Tokyo.<|end|>"
    assert ids == ExampleEncoder(quick_model).encode(CHAT)[0]


def test_prompt_completion_trains_the_completion_and_the_end_token(quick_model):
    encoder = ExampleEncoder(quick_model)
    ids, labels = encoder.encode({"prompt": "Capital of France:", "completion": " Paris"})
    assert trained_text(quick_model, ids, labels) == " Paris<|endoftext|>"
    assert ids[-1] == encoder.eos_token_id
    assert labels[0] == IGNORE_INDEX


def test_long_examples_are_truncated_but_counted_whole(quick_model):
    long_chat = {
        "messages": [
            {"role": "user", "content": "word " * 300},
            {"role": "assistant", "content": "ok"},
        ]
    }
    encoder = ExampleEncoder(quick_model)
    ids, labels = encoder.encode(long_chat)
    assert encoder.context_length == 256
    assert len(ids) == len(labels) == 256
    assert encoder.count_tokens(long_chat) > 300
    assert all(label == IGNORE_INDEX for label in labels)  # the answer was cut off

    short = ExampleEncoder(quick_model, context_length=8)
    assert len(short.encode(CHAT)[0]) == 8


def test_count_tokens_agrees_with_encode(quick_model):
    encoder = ExampleEncoder(quick_model)
    for example in (CHAT, {"prompt": "a", "completion": "b"}):
        assert encoder.count_tokens(example) == len(encoder.encode(example)[0])


def test_counting_tokens_loads_no_torch(quick_model):
    code = (
        "import sys\n"
        "from gpu_inference.formats import ExampleEncoder\n"
        f"encoder = ExampleEncoder({str(quick_model)!r})\n"
        f"print(encoder.count_tokens({CHAT!r}))\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    count, heavy = result.stdout.splitlines()
    assert int(count) == ExampleEncoder(quick_model).count_tokens(CHAT)
    assert heavy == "[]"


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ([], "must be a JSON object"),
        ({"messages": [], "prompt": "x"}, "only the key 'messages'"),
        ({"messages": []}, "non-empty list"),
        ({"messages": ["hi"]}, r"messages\[0\] must be an object"),
        ({"messages": [{"role": "bot", "content": "x"}]}, r"messages\[0\].role must be one of"),
        ({"messages": [{"role": "user", "content": 3}]}, r"messages\[0\].content must be a string"),
        (
            {"messages": [{"role": "user", "content": "x", "weight": 1}]},
            "only allowed on assistant",
        ),
        ({"messages": [{"role": "assistant", "content": "x", "weight": 2}]}, "must be 0 or 1"),
        ({"messages": [{"role": "assistant", "content": "x", "weight": True}]}, "must be 0 or 1"),
        ({"messages": [{"role": "assistant", "content": "x", "name": "n"}]}, "unknown keys: name"),
        ({"messages": [{"role": "user", "content": "x"}]}, "at least one assistant message"),
        (
            {"messages": [{"role": "assistant", "content": "x", "weight": 0}]},
            "at least one assistant message",
        ),
        ({"prompt": "x"}, "exactly the keys 'prompt' and 'completion'"),
        ({"prompt": "x", "completion": None}, "must be strings"),
        ({"text": "x"}, "needs 'messages', or 'prompt' and 'completion'"),
    ],
)
def test_invalid_examples_say_what_is_wrong(example, message):
    with pytest.raises(InvalidExample, match=message):
        validate_example(example)


def test_read_examples_names_the_bad_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(CHAT) + "\n\n" + "{not json\n", encoding="utf-8")
    with pytest.raises(InvalidExample, match="line 3: invalid JSON"):
        list(read_examples(path))
    path.write_text(
        json.dumps(CHAT) + "\n" + json.dumps({"prompt": 1, "completion": "x"}) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidExample, match="line 2: 'prompt' and 'completion' must be strings"):
        list(read_examples(path))


def test_a_folder_without_tokenizer_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        ExampleEncoder(tmp_path)


def _without_generation_markers(model: Path, target: Path, template: str | None = None) -> Path:
    """A copy of the model's tokenizer whose chat template, like most published
    models', has no {% generation %} markers."""
    target.mkdir()
    (target / "tokenizer.json").write_bytes((model / "tokenizer.json").read_bytes())
    config = json.loads((model / "tokenizer_config.json").read_text())
    plain = (
        config["chat_template"].replace("{% generation %}", "").replace("{% endgeneration %}", "")
    )
    config["chat_template"] = template or plain
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    (target / "config.json").write_bytes((model / "config.json").read_bytes())
    return target


def test_templates_without_generation_markers_find_assistant_turns_by_prefix(quick_model, tmp_path):
    plain = ExampleEncoder(_without_generation_markers(quick_model, tmp_path / "plain"))
    marked = ExampleEncoder(quick_model)
    example = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "Hi!", "weight": 0},
            {"role": "user", "content": "What colour is grass?"},
            {"role": "assistant", "content": "Green."},
        ]
    }
    assert plain.encode(example) == marked.encode(example)
    ids, labels = plain.encode(example)
    trained = [token for token, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    assert trained and len(trained) < len(ids)


def test_a_template_that_is_not_prefix_stable_is_refused_clearly(quick_model, tmp_path):
    # Renders the conversation newest-first: no turn is a prefix of the next.
    reversed_template = "{% for message in messages|reverse %}{{ message['content'] }}{% endfor %}"
    encoder = ExampleEncoder(
        _without_generation_markers(quick_model, tmp_path / "odd", reversed_template)
    )
    example = {
        "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    }
    with pytest.raises(InvalidExample, match="cannot be found; add \\{% generation %\\} markers"):
        encoder.encode(example)
