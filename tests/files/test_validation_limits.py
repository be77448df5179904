"""Dataset validation on hostile files: text that is not Unicode, lines too long to hold.

Pure Python, no database; token counts are a whitespace word count.
"""

from __future__ import annotations

import json

from tests.files.test_validation import GOOD_CHAT, errors, validate, write
from tokenmill.files.validation import BLANK_LINE


def test_a_lone_surrogate_in_a_jsonl_line_is_a_line_error(tmp_path):
    bad = '{"messages": [{"role": "user", "content": "Hi \\udfff"}, {"role": "assistant", "content": "Hello"}]}'
    assert errors(tmp_path, [GOOD_CHAT, bad, GOOD_CHAT]) == [
        (
            2,
            "invalid_unicode",
            'line 2: "messages[0].content" holds a lone surrogate (an escape such as \\udfff '
            "without its pair), which is not valid Unicode text",
        )
    ]


def test_a_lone_surrogate_in_a_key_is_named_by_its_escape(tmp_path):
    bad = '{"prompt": "2+2=", "completion": " 4", "\\ud800x": 1}'
    [(line, code, message)] = errors(
        tmp_path, [json.dumps({"prompt": "a", "completion": "b"}), bad]
    )
    assert (line, code) == (2, "invalid_unicode")
    assert message.startswith('line 2: "\\ud800x" holds a lone surrogate')


def test_a_surrogate_pair_is_ordinary_text(tmp_path):
    smile = '{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}, {"role": "assistant", "content": "ok"}]}'
    out = tmp_path / "normalized.jsonl"
    report = validate(write(tmp_path, [smile]), normalized_out=out)
    assert report.ok, report.errors
    assert json.loads(out.read_text())["messages"][0]["content"] == "\U0001f600"


def too_long(line: int, limit: int) -> tuple[int, str, str]:
    return (
        line,
        "line_too_long",
        f"line {line}: longer than {limit} bytes, the most one line may hold",
    )


def blank(line: int) -> tuple[int, str, str]:
    return (line, "blank_line", f"line {line}: {BLANK_LINE}")


def test_a_first_line_too_long_is_not_also_a_blank_line(tmp_path):
    long_line = json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]})
    assert errors(tmp_path, [long_line, GOOD_CHAT, GOOD_CHAT], max_line_bytes=1024) == [
        too_long(1, 1024)
    ]


def test_a_file_of_one_long_line_is_not_called_blank(tmp_path):
    long_line = json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]})
    assert errors(tmp_path, [long_line], max_line_bytes=1024) == [too_long(1, 1024)]
    # Blank lines around it are still blank lines, and the example count still applies.
    assert errors(tmp_path, ["", long_line, ""], max_line_bytes=1024, min_examples=10) == [
        (None, "too_few_examples", "the file has 1 example; fine-tuning needs at least 10"),
        blank(1),
        too_long(2, 1024),
        blank(3),
    ]


def test_blank_lines_after_a_long_first_line_are_still_blank_lines(tmp_path):
    long_line = "x" * 5000
    assert errors(tmp_path, ["", long_line, "", GOOD_CHAT], max_line_bytes=1024) == [
        blank(1),
        too_long(2, 1024),
        blank(3),
    ]
