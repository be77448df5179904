"""Validation memory is bounded: a huge line is never held whole, nor tokenized past the context.

Each case runs in a child process that measures its own peak resident memory
(`resource.getrusage`) before and after validating, with the real tokenizer of the
demo model, counting as the validation worker does.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.files.test_validation import GOOD_CHAT, errors

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024
BOUND_MB = 150

CHILD = r"""
import json, resource, sys
from pathlib import Path
import django
django.setup()
from django.conf import settings
from tokenmill.catalog.models import BaseModel
from tokenmill.files.tokenizer import context_counter
from tokenmill.files.validation import validate_dataset

model = BaseModel(model_id="tiny-chat", path=sys.argv[1], context_length=256)
count = context_counter(model)

def run(path):
    return validate_dataset(
        Path(path), count_tokens=count, context_length=256,
        max_line_bytes=settings.DATASET_MAX_LINE_BYTES, normalized_out=None, min_examples=1,
    )

run(sys.argv[3])  # warm up: imports, tokenizer, chat template
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = run(sys.argv[2])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (after - before) / 1024, "report": report.to_dict()}))
"""


def measure(dataset: Path, warm_up: Path, demo_model_path, tmp_path: Path) -> dict:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": f"{ROOT / 'platform'}{os.pathsep}{ROOT}",
        "DJANGO_SETTINGS_MODULE": "tokenmill.settings",
        "DEBUG": "true",
        "TOKENMILL_VAR_DIR": str(tmp_path / "var"),
    }
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(demo_model_path), str(dataset), str(warm_up)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def chat_line(content: str) -> str:
    return json.dumps(
        {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "ok"}]}
    )


@pytest.fixture
def warm_up(tmp_path) -> Path:
    path = tmp_path / "small.jsonl"
    path.write_text(GOOD_CHAT + "\n")
    return path


def test_a_30_mb_line_is_a_line_error_in_bounded_memory(tmp_path, demo_model_path, warm_up):
    dataset = tmp_path / "huge.jsonl"
    with dataset.open("w") as out:
        out.write(GOOD_CHAT + "\n")
        out.write(chat_line("lorem ipsum dolor " * (30 * MB // 18)) + "\n")
        out.write(GOOD_CHAT + "\n")
    assert dataset.stat().st_size > 30 * MB

    measured = measure(dataset, warm_up, demo_model_path, tmp_path)

    print("peak RSS growth, 30 MB line:", measured["growth_mb"], "MB")
    assert measured["growth_mb"] < BOUND_MB, measured["growth_mb"]
    report = measured["report"]
    assert report["errors"] == [
        {
            "line": 2,
            "code": "line_too_long",
            "message": "line 2: longer than 1048576 bytes, the most one line may hold",
        }
    ]
    assert report["statistics"]["n_examples"] == 2  # the lines around it are still checked


def test_a_line_under_the_cap_is_not_tokenized_past_the_context(tmp_path, demo_model_path, warm_up):
    # ~1 MB of text: tokenizing it whole costs ~200 MB; only what the context holds is needed.
    dataset = tmp_path / "long.jsonl"
    dataset.write_text(chat_line("hello world " * 85_000) + "\n")
    assert 0.9 * MB < dataset.stat().st_size < MB

    measured = measure(dataset, warm_up, demo_model_path, tmp_path)

    print("peak RSS growth, 1 MB line:", measured["growth_mb"], "MB")
    assert measured["growth_mb"] < BOUND_MB / 3, measured["growth_mb"]
    report = measured["report"]
    assert report["ok"] is True
    statistics = report["statistics"]
    assert statistics["n_examples_over_context_length"] == 1
    assert statistics["total_tokens"] == 256  # what trains: the example cut to the context


def test_the_line_limit_is_a_setting_and_counts_bytes_without_the_newline(tmp_path):
    exact = chat_line("x" * 100)
    over = chat_line("x" * 101)
    assert errors(tmp_path, [exact, over, exact], max_line_bytes=len(exact.encode())) == [
        (
            2,
            "line_too_long",
            f"line 2: longer than {len(exact)} bytes, the most one line may hold",
        )
    ]


def test_a_long_line_in_a_csv_keeps_the_line_numbers_right(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text,label\n" + "good,a\n" + "x" * 5000 + ",b\n" + "bad\n" + "fine,c\n")
    from tests.files.test_validation import validate

    report = validate(path, max_line_bytes=1024)
    assert [(issue.line, issue.code) for issue in report.errors] == [
        (3, "line_too_long"),
        (4, "wrong_field_count"),
    ]


def test_the_counter_is_exact_within_the_context_and_cheap_beyond(demo_model_path, encoder):
    from tokenmill.catalog.models import BaseModel
    from tokenmill.files.tokenizer import context_counter

    count = context_counter(
        BaseModel(model_id="tiny-chat", path=str(demo_model_path), context_length=256)
    )
    short = json.loads(chat_line("What is the code word?"))
    assert count(short) == encoder.count_tokens(short) < 256

    # Just past the context by tokens, but under the character budget: counted exactly.
    near = json.loads(chat_line("hello world " * 200))
    assert count(near) == encoder.count_tokens(near) > 256

    many = {
        "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 200
    }
    assert count(many) == 257  # more messages than the context holds: not rendered at all
