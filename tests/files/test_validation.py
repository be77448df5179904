"""Dataset validation: every rule a tenant can break, with the message they get.

Pure Python; no database. Token counts use a whitespace word count.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tokenmill.files.validation import (
    DatasetFormat,
    ValidationIssue,
    ValidationReport,
    validate_dataset,
)


def words(example: dict[str, Any]) -> int:
    if "messages" in example:
        return sum(len(message["content"].split()) for message in example["messages"])
    return len(example["prompt"].split()) + len(example["completion"].split())


def chat(*messages: tuple[str, str], **extra: Any) -> str:
    return json.dumps(
        {"messages": [{"role": role, "content": content} for role, content in messages], **extra}
    )


GOOD_CHAT = chat(("user", "What is two plus two?"), ("assistant", "Four."))
GOOD_PROMPT = json.dumps({"prompt": "2+2=", "completion": " 4"})


def write(tmp_path: Path, lines: list[str], name: str = "dataset.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def validate(path: Path, **options: Any) -> ValidationReport:
    options.setdefault("count_tokens", words)
    options.setdefault("context_length", 1000)
    options.setdefault("min_examples", 1)
    return validate_dataset(path, **options)


def errors(tmp_path: Path, lines: list[str], **options: Any) -> list[tuple[int | None, str, str]]:
    report = validate(write(tmp_path, lines), **options)
    assert not report.ok
    assert report.error_count == len(report.errors)
    return [(issue.line, issue.code, issue.message) for issue in report.errors]


def only_error(tmp_path: Path, bad_line: str) -> tuple[int | None, str, str]:
    """The one error for ``bad_line``, placed on line 2 after a good example of its format."""
    good = GOOD_PROMPT if '"prompt"' in bad_line or '"completion"' in bad_line else GOOD_CHAT
    [error] = errors(tmp_path, [good, bad_line])
    return error


def message_line(message: dict[str, Any], *others: dict[str, Any]) -> str:
    return json.dumps({"messages": [*others, message]})


USER = {"role": "user", "content": "Hi"}
ASSISTANT = {"role": "assistant", "content": "Hello"}


# --- Chat JSONL ------------------------------------------------------------------------


def test_a_valid_chat_file_passes_with_its_statistics(tmp_path):
    lines = [
        chat(("system", "Be brief."), ("user", "one two three"), ("assistant", "four")),
        chat(("user", "a b"), ("assistant", "c d e f")),
    ]
    report = validate(write(tmp_path, lines))

    assert report.ok
    assert report.format is DatasetFormat.CHAT
    assert report.errors == []
    assert report.error_count == 0
    assert report.warnings == []
    assert report.statistics == {
        "format": "chat",
        "n_examples": 2,
        "n_invalid_examples": 0,
        "total_tokens": 12,
        "tokens_per_example": {"min": 6, "mean": 6.0, "max": 6},
        "context_length": 1000,
        "n_examples_over_context_length": 0,
        "personal_data": {"email_addresses": 0, "phone_numbers": 0},
    }


def test_invalid_json(tmp_path):
    assert only_error(tmp_path, '{"messages": [}') == (
        2,
        "invalid_json",
        "line 2: invalid JSON (Expecting value at column 15)",
    )


def test_nan_is_not_json(tmp_path):
    line = '{"messages": [{"role": "assistant", "content": "x", "weight": NaN}]}'
    assert only_error(tmp_path, line) == (
        2,
        "invalid_json",
        "line 2: invalid JSON (NaN is not allowed)",
    )


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('{"a":' * 5_000, "nested too deeply"),
        ('{"prompt": "x", "completion": ' + "9" * 5_000 + "}", "a number is too long"),
    ],
)
def test_json_that_python_cannot_hold(tmp_path, line, why):
    assert only_error(tmp_path, line) == (2, "invalid_json", f"line 2: invalid JSON ({why})")


def test_a_line_must_be_an_object(tmp_path):
    assert only_error(tmp_path, "[1, 2]") == (
        2,
        "not_an_object",
        "line 2: expected a JSON object, got array",
    )


def test_an_object_of_no_known_format_before_the_format_is_known(tmp_path):
    assert errors(tmp_path, ['{"question": "?"}', GOOD_CHAT]) == [
        (
            1,
            "unrecognized_example",
            'line 1: expected a chat example with "messages" or a prompt/completion example '
            'with "prompt" and "completion"',
        )
    ]


def test_a_prompt_completion_line_in_a_chat_file(tmp_path):
    assert errors(tmp_path, [GOOD_CHAT, GOOD_CHAT, GOOD_PROMPT]) == [
        (
            3,
            "format_mismatch",
            "line 3: this is a prompt/completion example, but the file is in chat format "
            "(detected on line 1)",
        )
    ]


def test_messages_is_required(tmp_path):
    assert errors(tmp_path, [GOOD_CHAT, '{"conversation": []}']) == [
        (2, "unknown_key", 'line 2: "conversation" is not an allowed key (allowed: messages)'),
        (2, "missing_messages", 'line 2: "messages" is required'),
    ]


def test_messages_must_be_an_array(tmp_path):
    assert only_error(tmp_path, '{"messages": "hi"}') == (
        2,
        "invalid_type",
        'line 2: "messages" must be an array (got string)',
    )


def test_messages_must_not_be_empty(tmp_path):
    assert only_error(tmp_path, '{"messages": []}') == (
        2,
        "empty_messages",
        'line 2: "messages" must not be empty',
    )


def test_a_message_must_be_an_object(tmp_path):
    assert only_error(tmp_path, json.dumps({"messages": ["Hi", ASSISTANT]})) == (
        2,
        "invalid_type",
        'line 2: "messages[0]" must be an object (got string)',
    )


def test_role_is_required(tmp_path):
    assert only_error(tmp_path, message_line({"content": "x"}, USER, ASSISTANT)) == (
        2,
        "missing_role",
        'line 2: "messages[2].role" is required',
    )


def test_role_must_be_system_user_or_assistant(tmp_path):
    line = message_line(ASSISTANT, USER, {"role": "tool", "content": "42"})
    assert only_error(tmp_path, line) == (
        2,
        "invalid_role",
        'line 2: "messages[1].role" must be one of system, user, assistant (got "tool")',
    )


def test_a_role_that_is_not_a_string_is_quoted_back(tmp_path):
    assert only_error(tmp_path, message_line({"role": 7, "content": "x"}, USER, ASSISTANT)) == (
        2,
        "invalid_role",
        'line 2: "messages[2].role" must be one of system, user, assistant (got 7)',
    )


def test_content_is_required(tmp_path):
    assert only_error(tmp_path, message_line({"role": "assistant"}, USER)) == (
        2,
        "missing_content",
        'line 2: "messages[1].content" is required',
    )


def test_content_must_be_a_string(tmp_path):
    content_parts = [{"type": "text", "text": "Hi"}]
    line = message_line(ASSISTANT, {"role": "user", "content": content_parts})
    assert only_error(tmp_path, line) == (
        2,
        "invalid_type",
        'line 2: "messages[0].content" must be a string (got array)',
    )


def test_content_must_not_be_empty_or_blank(tmp_path):
    assert only_error(tmp_path, message_line({"role": "assistant", "content": " \n"}, USER)) == (
        2,
        "empty_content",
        'line 2: "messages[1].content" must not be empty',
    )


def test_unknown_message_keys_are_rejected(tmp_path):
    line = message_line({**ASSISTANT, "mood": "happy"}, USER)
    assert only_error(tmp_path, line) == (
        2,
        "unknown_key",
        'line 2: "messages[1].mood" is not an allowed key (allowed: role, content, weight, name)',
    )


def test_tool_calls_are_not_supported(tmp_path):
    line = message_line({**ASSISTANT, "tool_calls": [{"id": "call_1"}]}, USER)
    assert only_error(tmp_path, line) == (
        2,
        "unsupported_tool_use",
        'line 2: "messages[1].tool_calls": tool and function calls are not supported',
    )


def test_tool_definitions_are_not_supported(tmp_path):
    line = json.dumps({"messages": [USER, ASSISTANT], "tools": []})
    assert only_error(tmp_path, line) == (
        2,
        "unsupported_tool_use",
        'line 2: "tools": tool and function calling examples are not supported',
    )


def test_at_least_one_assistant_message(tmp_path):
    assert only_error(tmp_path, message_line(USER)) == (
        2,
        "missing_assistant_message",
        'line 2: at least one message must have role "assistant"',
    )


@pytest.mark.parametrize(("weight", "shown"), [(0.5, "0.5"), (True, "true"), ("1", '"1"')])
def test_weight_must_be_0_or_1(tmp_path, weight, shown):
    line = message_line({**ASSISTANT, "weight": weight}, USER)
    assert only_error(tmp_path, line) == (
        2,
        "invalid_weight",
        f'line 2: "messages[1].weight" must be 0 or 1 (got {shown})',
    )


def test_weight_only_on_assistant_messages(tmp_path):
    line = message_line(ASSISTANT, {**USER, "weight": 1})
    assert only_error(tmp_path, line) == (
        2,
        "weight_not_allowed",
        'line 2: "messages[0].weight" is only allowed on assistant messages',
    )


def test_some_assistant_message_must_have_weight_1(tmp_path):
    line = message_line({**ASSISTANT, "weight": 0}, USER)
    assert only_error(tmp_path, line) == (
        2,
        "all_weights_zero",
        "line 2: every assistant message has weight 0, so there is nothing to train on",
    )


def test_name_must_be_a_non_empty_string(tmp_path):
    line = message_line(ASSISTANT, {**USER, "name": ""})
    assert only_error(tmp_path, line) == (
        2,
        "invalid_name",
        'line 2: "messages[0].name" must be a non-empty string',
    )


def test_names_are_accepted_dropped_and_warned_about(tmp_path):
    lines = [GOOD_CHAT, message_line(ASSISTANT, {**USER, "name": "alice"})]
    out = tmp_path / "normalized.jsonl"
    report = validate(write(tmp_path, lines), normalized_out=out)

    assert report.ok
    [warning] = report.to_dict()["warnings"]
    assert warning == {
        "code": "ignored_message_names",
        "message": '"name" is ignored on 1 message (e.g. line 2); the trainer does not use it',
        "count": 1,
        "lines": [2],
    }
    assert json.loads(out.read_text().splitlines()[1]) == {"messages": [USER, ASSISTANT]}


def test_one_line_can_break_several_rules(tmp_path):
    line = json.dumps({"messages": [{"role": "bot"}, {"role": "user", "content": ""}]})
    assert errors(tmp_path, [GOOD_CHAT, line]) == [
        (
            2,
            "invalid_role",
            'line 2: "messages[0].role" must be one of system, user, assistant (got "bot")',
        ),
        (2, "missing_content", 'line 2: "messages[0].content" is required'),
        (2, "empty_content", 'line 2: "messages[1].content" must not be empty'),
    ]


@pytest.mark.parametrize(
    ("lines", "blank_line"),
    [
        (["", GOOD_CHAT], 1),
        ([GOOD_CHAT, "   ", GOOD_CHAT], 2),
        ([GOOD_CHAT, GOOD_CHAT, ""], 3),
    ],
)
def test_blank_lines_are_errors(tmp_path, lines, blank_line):
    assert errors(tmp_path, lines) == [
        (
            blank_line,
            "blank_line",
            f"line {blank_line}: blank lines are not allowed; put exactly one example on each line",
        )
    ]


def test_windows_line_endings_and_a_byte_order_mark_are_fine(tmp_path):
    path = tmp_path / "dataset.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (GOOD_CHAT + "\r\n").encode() * 2)
    assert validate(path).ok


# --- Prompt/completion JSONL -----------------------------------------------------------


def test_a_valid_prompt_completion_file_is_normalized(tmp_path):
    lines = [GOOD_PROMPT, json.dumps({"prompt": "Capital of France?", "completion": " Paris"})]
    out = tmp_path / "normalized.jsonl"
    report = validate(write(tmp_path, lines), normalized_out=out)

    assert report.ok
    assert report.format is DatasetFormat.PROMPT_COMPLETION
    assert report.statistics["n_examples"] == 2
    assert report.statistics["total_tokens"] == 6
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"prompt": "2+2=", "completion": " 4"},
        {"prompt": "Capital of France?", "completion": " Paris"},
    ]


@pytest.mark.parametrize("key", ["prompt", "completion"])
def test_prompt_and_completion_are_required(tmp_path, key):
    other = "completion" if key == "prompt" else "prompt"
    assert only_error(tmp_path, json.dumps({other: "x"})) == (
        2,
        f"missing_{key}",
        f'line 2: "{key}" is required',
    )


def test_completion_must_be_a_string(tmp_path):
    assert only_error(tmp_path, json.dumps({"prompt": "2+2=", "completion": 4})) == (
        2,
        "invalid_type",
        'line 2: "completion" must be a string (got number)',
    )


def test_prompt_must_not_be_empty(tmp_path):
    assert only_error(tmp_path, json.dumps({"prompt": "", "completion": "x"})) == (
        2,
        "empty_content",
        'line 2: "prompt" must not be empty',
    )


def test_unknown_keys_in_prompt_completion(tmp_path):
    line = json.dumps({"prompt": "a", "completion": "b", "id": 3})
    assert only_error(tmp_path, line) == (
        2,
        "unknown_key",
        'line 2: "id" is not an allowed key (allowed: prompt, completion)',
    )


def test_a_chat_line_in_a_prompt_completion_file(tmp_path):
    assert errors(tmp_path, [GOOD_PROMPT, GOOD_CHAT]) == [
        (
            2,
            "format_mismatch",
            "line 2: this is a chat example, but the file is in prompt/completion format "
            "(detected on line 1)",
        )
    ]


# --- Classification CSV ----------------------------------------------------------------


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dataset.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_classification_csv_is_normalized_to_chat(tmp_path):
    path = write_csv(
        tmp_path,
        'Text,Label\nI loved it,positive\n"Awful, truly",negative\nGreat,  positive \n',
    )
    out = tmp_path / "normalized.jsonl"
    report = validate(path, normalized_out=out)

    assert report.ok
    assert report.format is DatasetFormat.CLASSIFICATION
    assert report.statistics["n_labels"] == 2
    assert report.statistics["label_distribution"] == {"positive": 2, "negative": 1}
    assert report.statistics["total_tokens"] == 9
    assert json.loads(out.read_text().splitlines()[1]) == {
        "messages": [
            {"role": "user", "content": "Awful, truly"},
            {"role": "assistant", "content": "negative"},
        ]
    }


def test_other_columns_are_ignored_with_a_warning(tmp_path):
    report = validate(write_csv(tmp_path, "id,text,label,source\n1,Hi,greeting,web\n"))
    assert report.ok
    assert [(w.code, w.message, w.count, w.lines) for w in report.warnings] == [
        (
            "ignored_columns",
            '2 columns ignored (id, source); only "text" and "label" are used',
            2,
            (1,),
        )
    ]


def test_the_header_must_have_text_and_label(tmp_path):
    assert validate(write_csv(tmp_path, "text,category\nHi,greeting\n")).errors == [
        ValidationIssue(
            1,
            "missing_column",
            'line 1: the CSV header must have a "label" column (found: text, category)',
        )
    ]


def test_the_header_must_not_repeat_text_or_label(tmp_path):
    assert validate(write_csv(tmp_path, "text,label,label\nHi,a,b\n")).errors == [
        ValidationIssue(
            1, "duplicate_column", 'line 1: the CSV header has more than one "label" column'
        )
    ]


def test_text_and_label_must_not_be_empty(tmp_path):
    report = validate(write_csv(tmp_path, "text,label\nHi,greeting\n ,greeting\nBye,\n"))
    assert [(e.line, e.code, e.message) for e in report.errors] == [
        (3, "empty_content", 'line 3: "text" must not be empty'),
        (4, "empty_content", 'line 4: "label" must not be empty'),
    ]


def test_a_row_must_have_as_many_fields_as_the_header(tmp_path):
    report = validate(write_csv(tmp_path, "text,label\nHi,greeting\nHi, there,greeting\n"))
    assert report.errors == [
        ValidationIssue(3, "wrong_field_count", "line 3: expected 2 fields as in the header, got 3")
    ]


def test_an_unclosed_quote_is_pointed_out(tmp_path):
    report = validate(write_csv(tmp_path, 'text,label\n"Hi,greeting\nBye,farewell\n'))
    assert report.errors == [
        ValidationIssue(
            2,
            "wrong_field_count",
            "line 2: expected 2 fields as in the header, got 1 "
            "(the row spans lines 2-3; check for an unclosed quote)",
        )
    ]


def test_quoted_newlines_keep_line_numbers_right(tmp_path):
    path = write_csv(tmp_path, 'text,label\n"line one\nline two",a\nok,\n')
    assert validate(path).errors == [
        ValidationIssue(4, "empty_content", 'line 4: "label" must not be empty')
    ]


@pytest.mark.parametrize("json_line", [GOOD_PROMPT, GOOD_CHAT])
def test_a_json_line_in_a_csv_file(tmp_path, json_line):
    report = validate(write_csv(tmp_path, f"text,label\nHi,greeting\n{json_line}\n"))
    assert report.errors == [
        ValidationIssue(
            3,
            "format_mismatch",
            "line 3: this line looks like a JSON object, but the file is a classification CSV "
            "(detected from the header on line 1)",
        )
    ]


def test_blank_lines_in_a_csv_file(tmp_path):
    report = validate(write_csv(tmp_path, "text,label\nHi,greeting\n\nBye,farewell\n"))
    assert report.errors == [
        ValidationIssue(
            3,
            "blank_line",
            "line 3: blank lines are not allowed; put exactly one example on each line",
        )
    ]


def test_a_csv_field_over_the_csv_module_limit(tmp_path):
    report = validate(write_csv(tmp_path, f'text,label\n"{"x" * 200_000}",long\n'))
    assert report.errors == [
        ValidationIssue(
            2, "invalid_csv", "line 2: invalid CSV (field larger than field limit (131072))"
        )
    ]


# --- Whole-file errors -----------------------------------------------------------------


def test_an_empty_file(tmp_path):
    report = validate(write_csv(tmp_path, ""))
    assert report.errors == [ValidationIssue(None, "empty_file", "the file is empty")]
    assert report.format is None


def test_a_file_of_blank_lines_is_empty(tmp_path):
    assert validate(write_csv(tmp_path, "\n  \n\n")).errors == [
        ValidationIssue(None, "empty_file", "the file is empty (it has only blank lines)")
    ]


def test_binary_content(tmp_path):
    path = tmp_path / "dataset.jsonl"
    path.write_bytes((GOOD_CHAT + "\n").encode() + b"PK\x03\x04\x00\x00")
    assert validate(path).errors == [
        ValidationIssue(
            None,
            "binary_file",
            f"the file contains binary data (a NUL byte on line 2, byte offset {len(GOOD_CHAT) + 5});"
            " upload a UTF-8 text file",
        )
    ]


def test_text_that_is_not_utf8(tmp_path):
    path = tmp_path / "dataset.csv"
    path.write_bytes("text,label\nCafé,food\nNaïve,adjective\n".encode("latin-1"))
    report = validate(path)

    assert report.errors == [
        ValidationIssue(
            None,
            "not_utf8",
            "the file is not valid UTF-8: byte 0xe9 on line 2 (byte offset 14) cannot be "
            "decoded; save the file as UTF-8",
        )
    ]
    assert report.statistics["n_examples"] == 2  # the rest of the file was still checked


def test_utf16_is_named(tmp_path):
    path = tmp_path / "dataset.csv"
    path.write_bytes("text,label\nHi,greeting\n".encode("utf-16"))
    assert validate(path).errors == [
        ValidationIssue(None, "not_utf8", "the file is encoded as UTF-16; save it as UTF-8")
    ]


def test_a_file_over_max_bytes_is_not_read(tmp_path):
    path = write(tmp_path, [GOOD_CHAT] * 20)
    size = path.stat().st_size
    assert validate(path, max_bytes=size - 1).errors == [
        ValidationIssue(
            None,
            "file_too_large",
            f"the file is {size:,} bytes; the limit is {size - 1:,} bytes",
        )
    ]
    assert validate(path, max_bytes=size).ok


def test_a_header_without_rows_has_no_examples(tmp_path):
    assert validate(write_csv(tmp_path, "text,label\n")).errors == [
        ValidationIssue(None, "no_examples", "the file has no examples")
    ]


def test_at_least_ten_examples_by_default(tmp_path):
    report = validate_dataset(
        write(tmp_path, [GOOD_CHAT] * 9), count_tokens=words, context_length=100
    )
    assert report.errors == [
        ValidationIssue(
            None, "too_few_examples", "the file has 9 examples; fine-tuning needs at least 10"
        )
    ]
    assert validate_dataset(
        write(tmp_path, [GOOD_CHAT] * 10), count_tokens=words, context_length=100
    ).ok


def test_plain_text_is_an_unrecognized_format(tmp_path):
    assert validate(write_csv(tmp_path, "Hello there\nGeneral Kenobi\n")).errors == [
        ValidationIssue(
            None,
            "unrecognized_format",
            "unrecognized format: expected JSONL with one JSON object per line (chat or "
            'prompt/completion), or CSV with a header row naming "text" and "label" columns',
        )
    ]


def test_one_huge_line_of_text_is_an_unrecognized_format(tmp_path):
    [error] = validate(write_csv(tmp_path, "word " * 50_000)).errors
    assert error.code == "unrecognized_format"


def test_a_json_array_is_an_unrecognized_format(tmp_path):
    path = write(tmp_path, [f"[{GOOD_CHAT},", f"{GOOD_CHAT}]"])
    assert validate(path).errors == [
        ValidationIssue(
            None,
            "unrecognized_format",
            "the file is a JSON array; upload JSONL instead, with one JSON object per line",
        )
    ]


# --- Error cap, statistics, warnings ---------------------------------------------------


def test_the_first_max_errors_are_listed_and_all_are_counted(tmp_path):
    report = validate(write(tmp_path, [GOOD_CHAT] + ["not json"] * 150))

    assert report.error_count == 150
    assert len(report.errors) == 100
    assert report.errors[0].line == 2
    assert report.errors[-1].line == 101
    assert report.to_dict()["errors_truncated"] is True
    assert report.statistics["n_examples"] == 1
    assert report.statistics["n_invalid_examples"] == 150


def test_whole_file_errors_are_listed_even_past_the_cap(tmp_path):
    lines = [GOOD_CHAT] + ["not json"] * 5
    report = validate(write(tmp_path, lines), max_errors=3, min_examples=10)

    assert report.error_count == 6
    assert [issue.code for issue in report.errors] == [
        "too_few_examples",
        "invalid_json",
        "invalid_json",
    ]


def test_statistics_survive_invalid_lines(tmp_path):
    lines = [
        chat(("user", "a"), ("assistant", "b c")),
        "oops",
        chat(("user", "a b c"), ("assistant", "d")),
    ]
    report = validate(write(tmp_path, lines))

    assert not report.ok
    assert report.statistics["n_examples"] == 2
    assert report.statistics["n_invalid_examples"] == 1
    assert report.statistics["tokens_per_example"] == {"min": 3, "mean": 3.5, "max": 4}


def test_examples_longer_than_the_context_are_a_warning(tmp_path):
    long = chat(("user", "word " * 50), ("assistant", "ok"))
    report = validate(write(tmp_path, [GOOD_CHAT, long, GOOD_CHAT, long]), context_length=10)

    assert report.ok
    assert report.statistics["n_examples_over_context_length"] == 2
    assert [(w.code, w.message, w.count, w.lines) for w in report.warnings] == [
        (
            "exceeds_context_length",
            "2 examples are longer than the context length of 10 tokens and will be truncated "
            "(e.g. lines 2, 4)",
            2,
            (2, 4),
        )
    ]


def test_likely_personal_data_is_counted_but_never_shown(tmp_path):
    lines = [
        chat(("user", "Mail jane.doe@example.com or bob@example.org"), ("assistant", "Noted.")),
        chat(("user", "Call +1 555 123 4567"), ("assistant", "Or (555) 987-6543?")),
        chat(("user", "On 2024-01-15 we sold 1,250,000 units for $3.99"), ("assistant", "Ok")),
        chat(("user", "Server 192.168.100.200, order 123456789012"), ("assistant", "Ok")),
    ]
    report = validate(write(tmp_path, lines))

    assert report.ok
    assert report.statistics["personal_data"] == {"email_addresses": 2, "phone_numbers": 2}
    assert [(w.code, w.message, w.count, w.lines) for w in report.warnings] == [
        (
            "possible_email_addresses",
            "found 2 likely e-mail addresses (e.g. line 1); "
            "remove personal data you do not want the model to learn",
            2,
            (1,),
        ),
        (
            "possible_phone_numbers",
            "found 2 likely phone numbers (e.g. line 2); "
            "remove personal data you do not want the model to learn",
            2,
            (2,),
        ),
    ]
    shown = json.dumps(report.to_dict())
    assert "example.com" not in shown
    assert "4567" not in shown


def test_the_report_is_plain_json(tmp_path):
    report = validate(write(tmp_path, [GOOD_CHAT, "[]"]))
    as_dict = report.to_dict()

    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["format"] == "chat"
    assert as_dict["errors"] == [
        {"line": 2, "code": "not_an_object", "message": "line 2: expected a JSON object, got array"}
    ]
    assert as_dict["errors_truncated"] is False


# --- Normalized output -----------------------------------------------------------------


def test_chat_is_normalized_with_weights_kept(tmp_path):
    line = message_line({**ASSISTANT, "weight": 1}, {"role": "system", "content": "Be kind."}, USER)
    out = tmp_path / "normalized.jsonl"
    assert validate(write(tmp_path, [line]), normalized_out=out).ok
    assert out.read_text(encoding="utf-8") == json.dumps(json.loads(line)) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.jsonl", "normalized.jsonl"]


def test_count_tokens_sees_the_normalized_example(tmp_path):
    seen = []

    def count(example):
        seen.append(example)
        return 1

    validate(write_csv(tmp_path, "text,label,id\nHi,greeting,7\n"), count_tokens=count)
    assert seen == [
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "greeting"},
            ]
        }
    ]


def test_an_invalid_dataset_leaves_no_normalized_file(tmp_path):
    out = tmp_path / "normalized.jsonl"
    out.write_text("left from an earlier upload\n")
    report = validate(write(tmp_path, [GOOD_CHAT, "oops", GOOD_CHAT]), normalized_out=out)

    assert not report.ok
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["dataset.jsonl"]


def test_a_failing_token_counter_leaves_no_partial_file(tmp_path):
    def broken(example):
        raise RuntimeError("tokenizer crashed")

    out = tmp_path / "normalized.jsonl"
    with pytest.raises(RuntimeError, match="tokenizer crashed"):
        validate(write(tmp_path, [GOOD_CHAT]), count_tokens=broken, normalized_out=out)
    assert [p.name for p in tmp_path.iterdir()] == ["dataset.jsonl"]


# --- Large files -----------------------------------------------------------------------


def test_a_20_mb_file_streams_in_little_memory(tmp_path):
    content = "lorem ipsum dolor sit amet " * 3_700  # ~100 KB per line
    line = chat(("user", content), ("assistant", "consectetur adipiscing elit"))
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for _ in range(200):
            f.write(line + "\n")
    assert path.stat().st_size > 20_000_000

    tracemalloc.start()
    try:
        report = validate_dataset(
            path, count_tokens=lambda example: 1, context_length=10, normalized_out=None
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert report.ok
    assert report.statistics["n_examples"] == 200
    assert peak < 5_000_000  # a few lines' worth, not the 20 MB file
