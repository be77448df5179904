"""The date range of a usage page (the dashboard's and the console's): UTC days, both
included, at most MAX_DAYS, with the presets people ask for most."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django import forms

MAX_DAYS = 366
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class DayRange:
    start: date
    end: date  # included

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    @property
    def start_time(self) -> datetime:
        return datetime.combine(self.start, time.min, UTC)

    @property
    def end_time(self) -> datetime:
        """The first instant after the range: the selectors' end is exclusive."""
        return datetime.combine(self.end + timedelta(days=1), time.min, UTC)


def today() -> date:
    return datetime.now(UTC).date()


def presets(on: date) -> list[tuple[str, DayRange]]:
    return [
        ("Today", DayRange(on, on)),
        ("Last 7 days", DayRange(on - timedelta(days=6), on)),
        ("Last 30 days", DayRange(on - timedelta(days=DEFAULT_DAYS - 1), on)),
        ("This month", DayRange(on.replace(day=1), on)),
    ]


def _day_field(label: str) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": "Enter a date such as 2026-12-01."},
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )


class UsageRangeForm(forms.Form):
    """GET parameters `start` and `end`; a missing one falls back as /api/v1/usage does:
    the end to today, the start to 30 days before the end."""

    start = _day_field("From")
    end = _day_field("To")

    def __init__(self, data=None, **kwargs):
        # An unbound form (no parameters at all) still validates: it is the default range.
        super().__init__(data if data is not None else {}, **kwargs)

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        end = cleaned.get("end") or today()
        start = cleaned.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            self.add_error("start", "The start date must not be after the end date.")
        elif (end - start).days >= MAX_DAYS:
            self.add_error("start", f"The range may span at most {MAX_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned

    @property
    def range(self) -> DayRange:
        """The valid range asked for (call after is_valid())."""
        return DayRange(self.cleaned_data["start"], self.cleaned_data["end"])
