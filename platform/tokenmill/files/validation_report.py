"""The report of a dataset validation, and the builder that fills it as the file streams."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from tokenmill.files.example_rules import CheckedExample, DatasetFormat
from tokenmill.files.pii import Finding, PersonalDataTally

MAX_LISTED_LABELS = 100
PERSONAL_DATA_ADVICE = "remove personal data you do not want the model to learn"


@dataclass(frozen=True)
class ValidationIssue:
    line: int | None  # 1-based; None when the error is about the whole file
    code: str
    message: str


@dataclass(frozen=True)
class ValidationWarning:
    code: str
    message: str
    count: int
    lines: tuple[int, ...] = ()  # a few example line numbers, never the values


@dataclass
class ValidationReport:
    ok: bool
    format: DatasetFormat | None
    errors: list[ValidationIssue]  # whole-file errors first, then the first line errors
    error_count: int  # every error found, listed or not
    warnings: list[ValidationWarning]
    statistics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, to store in a JSONField and show to the tenant."""
        return {
            "ok": self.ok,
            "format": None if self.format is None else str(self.format),
            "errors": [asdict(issue) for issue in self.errors],
            "error_count": self.error_count,
            "errors_truncated": self.error_count > len(self.errors),
            "warnings": [{**asdict(w), "lines": list(w.lines)} for w in self.warnings],
            "statistics": self.statistics,
        }


class ReportBuilder:
    """What one validation has found so far: errors, examples, statistics.

    Every error is counted; only the first ``max_errors`` are kept, so a file
    with a million bad lines costs no more memory than one with a hundred.
    """

    def __init__(
        self,
        *,
        count_tokens: Callable[[dict[str, Any]], int],
        context_length: int,
        max_errors: int,
        write_normalized: Callable[[dict[str, Any]], None],
    ):
        self.count_tokens = count_tokens
        self.context_length = context_length
        self.max_errors = max_errors
        self.write_normalized = write_normalized
        self.format: DatasetFormat | None = None
        self.error_count = 0
        self.n_examples = 0
        self.n_invalid_examples = 0
        self._file_errors: list[ValidationIssue] = []
        self._line_errors: list[ValidationIssue] = []
        self._warnings: list[ValidationWarning] = []
        self._total_tokens = 0
        self._min_tokens: int | None = None
        self._max_tokens: int | None = None
        self._over_context = Finding()
        self._dropped_names = Finding()
        self._personal_data = PersonalDataTally()
        self._labels: Counter[str] = Counter()

    def file_error(self, code: str, message: str) -> None:
        self.error_count += 1
        self._file_errors.append(ValidationIssue(None, code, message))

    def line_error(self, line: int, code: str, message: str) -> None:
        self.error_count += 1
        if len(self._line_errors) < self.max_errors:
            self._line_errors.append(ValidationIssue(line, code, f"line {line}: {message}"))

    def invalid_example(self, line: int, code: str, message: str) -> None:
        self.line_error(line, code, message)
        self.n_invalid_examples += 1

    def warn(self, warning: ValidationWarning) -> None:
        self._warnings.append(warning)

    def example(self, line: int, checked: CheckedExample) -> None:
        for problem in checked.problems:
            self.line_error(line, problem.code, problem.message)
        normalized = checked.normalized
        if normalized is None:
            self.n_invalid_examples += 1
            return
        self.n_examples += 1
        # count_tokens may stop counting past the context (any larger number says "longer");
        # the statistics count what trains, which is truncated to the context anyway.
        counted = self.count_tokens(normalized)
        tokens = min(counted, self.context_length)
        self._total_tokens += tokens
        self._min_tokens = tokens if self._min_tokens is None else min(self._min_tokens, tokens)
        self._max_tokens = tokens if self._max_tokens is None else max(self._max_tokens, tokens)
        if counted > self.context_length:
            self._over_context.add(1, line)
        self._dropped_names.add(checked.dropped_names, line)
        for text in _texts(normalized):
            self._personal_data.scan(text, line=line)
        if self.format is DatasetFormat.CLASSIFICATION:
            self._labels[normalized["messages"][-1]["content"]] += 1
        if self.error_count == 0:  # after the first error the normalized file is thrown away
            self.write_normalized(normalized)

    def report(self) -> ValidationReport:
        listed_line_errors = max(self.max_errors - len(self._file_errors), 0)
        return ValidationReport(
            ok=self.error_count == 0,
            format=self.format,
            errors=self._file_errors + self._line_errors[:listed_line_errors],
            error_count=self.error_count,
            warnings=self._warnings + self._finding_warnings(),
            statistics=self._statistics(),
        )

    def _finding_warnings(self) -> list[ValidationWarning]:
        over = self._over_context.count
        candidates = [
            (
                "exceeds_context_length",
                self._over_context,
                f"{plural(over, 'example')} {'is' if over == 1 else 'are'} longer than the "
                f"context length of {self.context_length:,} tokens and will be truncated",
                "",
            ),
            (
                "possible_email_addresses",
                self._personal_data.email_addresses,
                "found "
                + plural(
                    self._personal_data.email_addresses.count,
                    "likely e-mail address",
                    "likely e-mail addresses",
                ),
                f"; {PERSONAL_DATA_ADVICE}",
            ),
            (
                "possible_phone_numbers",
                self._personal_data.phone_numbers,
                f"found {plural(self._personal_data.phone_numbers.count, 'likely phone number')}",
                f"; {PERSONAL_DATA_ADVICE}",
            ),
            (
                "ignored_message_names",
                self._dropped_names,
                f'"name" is ignored on {plural(self._dropped_names.count, "message")}',
                "; the trainer does not use it",
            ),
        ]
        return [
            ValidationWarning(
                code,
                f"{what} (e.g. {_lines(found.lines)}){advice}",
                found.count,
                tuple(found.lines),
            )
            for code, found, what, advice in candidates
            if found.count
        ]

    def _statistics(self) -> dict[str, Any]:
        n = self.n_examples
        statistics: dict[str, Any] = {
            "format": None if self.format is None else str(self.format),
            "n_examples": n,
            "n_invalid_examples": self.n_invalid_examples,
            "total_tokens": self._total_tokens,
            "tokens_per_example": {
                "min": self._min_tokens,
                "mean": round(self._total_tokens / n, 1) if n else None,
                "max": self._max_tokens,
            },
            "context_length": self.context_length,
            "n_examples_over_context_length": self._over_context.count,
            "personal_data": {
                "email_addresses": self._personal_data.email_addresses.count,
                "phone_numbers": self._personal_data.phone_numbers.count,
            },
        }
        if self.format is DatasetFormat.CLASSIFICATION:
            statistics["n_labels"] = len(self._labels)
            statistics["label_distribution"] = dict(self._labels.most_common(MAX_LISTED_LABELS))
        return statistics


def _texts(normalized: dict[str, Any]) -> Iterator[str]:
    if "messages" in normalized:
        for message in normalized["messages"]:
            yield message["content"]
    else:
        yield normalized["prompt"]
        yield normalized["completion"]


def _lines(lines: list[int]) -> str:
    return ("line " if len(lines) == 1 else "lines ") + ", ".join(map(str, lines))


def plural(count: int, one: str, many: str | None = None) -> str:
    """``plural(3, "example")`` -> "3 examples"."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"
