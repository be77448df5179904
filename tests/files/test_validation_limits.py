"""Dataset validation on hostile files: text that is not Unicode, lines too long to hold.

Pure Python, no database; token counts are a whitespace word count.
"""

from __future__ import annotations

import json

from tests.files.test_validation import GOOD_CHAT, errors, validate, write


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
