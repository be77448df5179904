"""Validating an uploaded fine-tuning dataset, and writing the normalized file the trainer reads.

``validate_dataset`` streams the file once, line by line, so a file of hundreds
of megabytes costs no more memory than its longest line. The format is told by
content, from the first non-blank line:

- a JSON object with ``messages``: chat JSONL (OpenAI's fine-tuning format);
- a JSON object with ``prompt`` or ``completion``: prompt/completion JSONL;
- a CSV header with ``text`` and ``label`` columns: classification CSV (other
  columns are ignored, with a warning).

Errors about a line read ``line 7: "messages[2].role" must be one of ...`` and
carry a stable ``code``; errors about the whole file have no line. Blank lines
are errors in every format, as OpenAI treats them. Pure standard library (no
Django), so it is tested without a database.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from tokenmill.api.json_text import unencodable_path
from tokenmill.files.dataset_io import MAX_LINE_BYTES, NormalizedWriter, TextLines
from tokenmill.files.example_rules import (
    DatasetFormat,
    check_chat,
    check_classification_row,
    check_prompt_completion,
    example_kind,
    json_type,
)
from tokenmill.files.validation_report import (
    ReportBuilder,
    ValidationIssue,
    ValidationReport,
    ValidationWarning,
    plural,
)

__all__ = [
    "DatasetFormat",
    "ValidationIssue",
    "ValidationReport",
    "ValidationWarning",
    "validate_dataset",
]

MIN_EXAMPLES = 10  # OpenAI refuses fine-tuning files with fewer examples
CLASSIFICATION_COLUMNS = ("text", "label")
BLANK_LINE = "blank lines are not allowed; put exactly one example on each line"


def validate_dataset(
    path: Path,
    *,
    count_tokens: Callable[[dict[str, Any]], int],
    context_length: int,
    max_errors: int = 100,
    max_bytes: int | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    min_examples: int = MIN_EXAMPLES,
    normalized_out: Path | None = None,
) -> ValidationReport:
    """Check the dataset at ``path``; when it is valid and ``normalized_out`` is given, write there.

    ``count_tokens`` receives each normalized example. The normalized file
    appears whole or not at all: it is written beside its target and renamed
    into place only when the dataset is valid; when it is not, ``normalized_out``
    does not exist afterwards. A line longer than ``max_line_bytes`` is an error
    and is never read whole, so memory stays bounded by that limit.
    """
    size = path.stat().st_size
    with NormalizedWriter(normalized_out) as writer:
        builder = ReportBuilder(
            count_tokens=count_tokens,
            context_length=context_length,
            max_errors=max_errors,
            write_normalized=writer.write,
        )
        if max_bytes is not None and size > max_bytes:
            builder.file_error(
                "file_too_large", f"the file is {size:,} bytes; the limit is {max_bytes:,} bytes"
            )
        elif size == 0:
            builder.file_error("empty_file", "the file is empty")
        else:
            with path.open("rb") as raw:
                _validate_stream(
                    builder, raw, min_examples=min_examples, max_line_bytes=max_line_bytes
                )
        report = builder.report()
        writer.finish(keep=report.ok)
    return report


def _validate_stream(
    builder: ReportBuilder, raw: IO[bytes], *, min_examples: int, max_line_bytes: int
) -> None:
    # Blank lines before any content are errors only once the file proves not to be all blank;
    # until then they are lines 1..leading_blanks. A skipped long line is content.
    content_seen = False
    leading_blanks = 0

    def content_found() -> None:
        nonlocal content_seen
        if not content_seen:
            content_seen = True
            for blank in range(1, leading_blanks + 1):
                builder.line_error(blank, "blank_line", BLANK_LINE)

    def long_line(line_no: int) -> None:
        content_found()
        builder.invalid_example(
            line_no,
            "line_too_long",
            f"longer than {max_line_bytes} bytes, the most one line may hold",
        )

    lines = TextLines(
        raw,
        on_file_error=builder.file_error,
        on_long_line=long_line,
        max_line_bytes=max_line_bytes,
    )
    texts = iter(lines)
    first: str | None = None
    for text in texts:
        if text.strip():
            first = text
            break
        if content_seen:
            builder.line_error(lines.line_no, "blank_line", BLANK_LINE)
        else:
            leading_blanks += 1
    if first is None:
        if not content_seen and not lines.stopped:
            builder.file_error("empty_file", "the file is empty (it has only blank lines)")
        if content_seen and not lines.stopped:  # nothing but lines too long to read
            _check_example_count(builder, min_examples=min_examples)
        return
    content_found()
    first_line = lines.line_no

    head = first.lstrip()
    if head.startswith("{"):
        _validate_jsonl(builder, _numbered(first_line, first, texts, lines))
    elif head.startswith("["):
        builder.file_error(
            "unrecognized_format",
            "the file is a JSON array; upload JSONL instead, with one JSON object per line",
        )
        return
    elif not _validate_classification(builder, first_line, first, texts, lines):
        return

    if not lines.stopped:
        _check_example_count(builder, min_examples=min_examples)


def _check_example_count(builder: ReportBuilder, *, min_examples: int) -> None:
    examples = builder.n_examples + builder.n_invalid_examples
    if examples == 0:
        builder.file_error("no_examples", "the file has no examples")
    elif examples < min_examples:
        builder.file_error(
            "too_few_examples",
            f"the file has {plural(examples, 'example')}; "
            f"fine-tuning needs at least {min_examples}",
        )


def _numbered(
    first_line: int, first: str, texts: Iterator[str], lines: TextLines
) -> Iterator[tuple[int, str]]:
    yield first_line, first
    for text in texts:
        yield lines.line_no, text


def _validate_jsonl(builder: ReportBuilder, lines: Iterator[tuple[int, str]]) -> None:
    """Chat or prompt/completion: the first line that is clearly one of them decides."""
    detected_on: int | None = None
    for line_no, text in lines:
        if not text.strip():
            builder.line_error(line_no, "blank_line", BLANK_LINE)
            continue
        example = _parse_json_object(builder, line_no, text)
        if example is None:
            continue
        kind = example_kind(example)
        if builder.format is None and kind is None:
            builder.invalid_example(
                line_no,
                "unrecognized_example",
                'expected a chat example with "messages" or a prompt/completion example '
                'with "prompt" and "completion"',
            )
        elif builder.format is not None and kind is not None and kind != builder.format:
            builder.invalid_example(
                line_no,
                "format_mismatch",
                f"this is a {kind.label} example, but the file is in {builder.format.label} "
                f"format (detected on line {detected_on})",
            )
        else:
            if builder.format is None:
                builder.format, detected_on = kind, line_no
            if builder.format is DatasetFormat.CHAT:
                builder.example(line_no, check_chat(example))
            else:
                builder.example(line_no, check_prompt_completion(example))


def _parse_json_object(builder: ReportBuilder, line_no: int, text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        builder.invalid_example(
            line_no, "invalid_json", f"invalid JSON ({error.msg} at column {error.colno})"
        )
        return None
    except _UnsupportedConstant as error:
        builder.invalid_example(line_no, "invalid_json", f"invalid JSON ({error})")
        return None
    except ValueError:  # Python's limit on the digits of an integer
        builder.invalid_example(line_no, "invalid_json", "invalid JSON (a number is too long)")
        return None
    except RecursionError:
        builder.invalid_example(line_no, "invalid_json", "invalid JSON (nested too deeply)")
        return None
    if not isinstance(value, dict):
        builder.invalid_example(
            line_no, "not_an_object", f"expected a JSON object, got {json_type(value)}"
        )
        return None
    # json.loads is already past any depth a real example has; only the text is checked here.
    bad_text = unencodable_path(value, max_depth=sys.getrecursionlimit())
    if bad_text is not None:
        where = bad_text if len(bad_text) <= 60 else bad_text[:57] + "..."
        builder.invalid_example(
            line_no,
            "invalid_unicode",
            f'"{where}" holds a lone surrogate (an escape such as \\udfff without its pair), '
            "which is not valid Unicode text",
        )
        return None
    return value


class _UnsupportedConstant(ValueError):
    pass


def _reject_constant(name: str) -> None:
    raise _UnsupportedConstant(f"{name} is not allowed")


def _validate_classification(
    builder: ReportBuilder, first_line: int, first: str, texts: Iterator[str], lines: TextLines
) -> bool:
    """A CSV file; False when its header is unusable and there is nothing more to check."""
    try:
        header = [name.strip().lower() for name in next(csv.reader([first]))]
    except csv.Error:  # e.g. one huge line of plain text
        header = []
    if not any(name in CLASSIFICATION_COLUMNS for name in header):
        builder.file_error(
            "unrecognized_format",
            "unrecognized format: expected JSONL with one JSON object per line (chat or "
            'prompt/completion), or CSV with a header row naming "text" and "label" columns',
        )
        return False
    builder.format = DatasetFormat.CLASSIFICATION
    header_ok = True
    for name in CLASSIFICATION_COLUMNS:
        if name not in header:
            header_ok = False
            builder.line_error(
                first_line,
                "missing_column",
                f'the CSV header must have a "{name}" column (found: {", ".join(header)})',
            )
        elif header.count(name) > 1:
            header_ok = False
            builder.line_error(
                first_line, "duplicate_column", f'the CSV header has more than one "{name}" column'
            )
    if not header_ok:
        return False
    ignored = [name for name in header if name not in CLASSIFICATION_COLUMNS]
    if ignored:
        builder.warn(
            ValidationWarning(
                "ignored_columns",
                f"{plural(len(ignored), 'column')} ignored ({', '.join(ignored)}); "
                'only "text" and "label" are used',
                len(ignored),
                (first_line,),
            )
        )
    _validate_rows(
        builder,
        texts,
        lines,
        header_line=first_line,
        width=len(header),
        text_at=header.index("text"),
        label_at=header.index("label"),
    )
    return True


def _validate_rows(
    builder: ReportBuilder,
    texts: Iterator[str],
    lines: TextLines,
    *,
    header_line: int,
    width: int,
    text_at: int,
    label_at: int,
) -> None:
    row_text: list[str] = []  # the lines of the row being read, to recognize a JSON line
    row_lines: list[int] = []  # their numbers (a skipped long line leaves a gap)

    def recorded() -> Iterator[str]:
        for text in texts:
            row_text.append(text)
            row_lines.append(lines.line_no)
            yield text

    rows = csv.reader(recorded())
    lines_read = header_line
    while True:
        row_text.clear()
        row_lines.clear()
        try:
            row = next(rows, None)
        except csv.Error as error:
            # The csv module cannot resume after a parse error, so this ends the file.
            start = row_lines[0] if row_lines else lines_read + 1
            builder.invalid_example(start, "invalid_csv", f"invalid CSV ({error})")
            return
        if row is None:
            return
        # A quoted field may carry a row over several lines.
        start, lines_read = row_lines[0], row_lines[-1]
        if not row or (len(row) == 1 and not row[0].strip()):
            builder.line_error(start, "blank_line", BLANK_LINE)
        elif _is_json_object("".join(row_text)):
            builder.invalid_example(
                start,
                "format_mismatch",
                "this line looks like a JSON object, but the file is a classification CSV "
                f"(detected from the header on line {header_line})",
            )
        elif len(row) != width:
            spans = (
                f" (the row spans lines {start}-{lines_read}; check for an unclosed quote)"
                if lines_read > start
                else ""
            )
            builder.invalid_example(
                start,
                "wrong_field_count",
                f"expected {width} fields as in the header, got {len(row)}{spans}",
            )
        else:
            builder.example(start, check_classification_row(row[text_at], row[label_at]))


def _is_json_object(text: str) -> bool:
    if not text.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
