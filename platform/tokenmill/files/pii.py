"""Spotting likely personal data (e-mail addresses, phone numbers) in training text.

A heuristic, reported as a warning: it errs towards missing an unusual phone
format rather than flagging dates, amounts, IP addresses or ids. Only counts and
line numbers leave this module, never the values found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EXAMPLE_LINES = 5

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE_CANDIDATE = re.compile(r"(?<![\w+.-])\+?\(?\d[\d ().-]{6,22}\d(?![\w])")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
DIGIT_GROUP = re.compile(r"\d+")


def looks_like_phone_number(candidate: str) -> bool:
    groups = DIGIT_GROUP.findall(candidate)
    digits = sum(len(group) for group in groups)
    if not 9 <= digits <= 15 or ISO_DATE.match(candidate):
        return False
    if candidate.startswith("+"):
        return True
    if len(groups) == 1:
        return False  # a bare run of digits is more often an id or an amount
    if any(len(group) < 2 for group in groups[1:]):
        return False  # "1 2 3 4 5 6 7 8 9" is a list, not a number
    if all(len(group) == 3 for group in groups[1:]):
        return False  # thousands grouping: "100 000 000"
    separators = set(re.sub(r"\d", "", candidate))
    if separators == {"."}:
        return all(len(group) <= 4 for group in groups) and any(len(g) == 4 for g in groups)
    return True


def count_email_addresses(text: str) -> int:
    return len(EMAIL.findall(text))


def count_phone_numbers(text: str) -> int:
    if "@" in text:
        text = EMAIL.sub(" ", text)  # the digits of "jo.555.1234@example.com" are no phone
    return sum(1 for match in PHONE_CANDIDATE.finditer(text) if looks_like_phone_number(match[0]))


@dataclass
class Finding:
    count: int = 0
    lines: list[int] = field(default_factory=list)

    def add(self, count: int, line: int) -> None:
        if not count:
            return
        self.count += count
        if len(self.lines) < EXAMPLE_LINES and line not in self.lines:
            self.lines.append(line)


@dataclass
class PersonalDataTally:
    email_addresses: Finding = field(default_factory=Finding)
    phone_numbers: Finding = field(default_factory=Finding)

    def scan(self, text: str, *, line: int) -> None:
        if "@" in text:
            self.email_addresses.add(count_email_addresses(text), line)
        self.phone_numbers.add(count_phone_numbers(text), line)
