"""Bar charts of usage by day, as the geometry of inline SVGs (the loss chart's way, in
charts.py: the server computes every coordinate, the browser gets the SVG only).

One bar per day of the range, days without usage included (a zero bar), a bar made
of one segment per series (prompt and completion tokens stack). Each bar says its
figures on hover (an SVG title); with few bars they are also printed above the bars,
and the page lists every day's figures in a table, so nothing needs a mouse.
"""

import math
from dataclasses import dataclass
from datetime import date

from tokenmill.dashboard.charts import PlotFrame, round_step

RIGHT, TOP, BOTTOM = 16, 24, 50  # margins around the plot in SVG units; the left one per Size


@dataclass(frozen=True)
class Size:
    """A chart's proportions: the page draws a wide one, and a narrow one for phones."""

    width: int
    height: int
    left: int
    date_labels: int  # at most
    value_labels: int  # bars; with more, the figures stay in the title and the table


WIDE = Size(width=960, height=300, left=72, date_labels=8, value_labels=14)
NARROW = Size(width=400, height=280, left=56, date_labels=4, value_labels=7)


@dataclass(frozen=True)
class Segment:
    key: str  # the series: the CSS class suffix
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    top: float
    segments: tuple[Segment, ...]
    value: str  # the bar's total, short: 12.3K
    title: str  # every figure of the day, in words

    @property
    def middle(self) -> float:
        return round(self.x + self.width / 2, 1)


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class LegendItem:
    key: str
    label: str
    total: int


@dataclass(frozen=True)
class BarChart(PlotFrame):
    title: str
    y_title: str
    bars: tuple[Bar, ...]
    legend: tuple[LegendItem, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    show_values: bool
    width: int
    height: int
    left: int
    top: int = TOP

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def bottom(self) -> int:
        return self.height - BOTTOM

    @property
    def plot_height(self) -> int:
        return self.bottom - self.top

    @property
    def is_empty(self) -> bool:
        return not any(item.total for item in self.legend)


def short_number(value: int) -> str:
    """12,345 -> 12.3K; below ten thousand the whole number: 9,876."""
    if value < 10_000:
        return f"{value:,}"
    for size, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if value >= size:
            return f"{value / size:.1f}".removesuffix(".0") + suffix
    return str(value)  # unreachable: 10,000 and above has a suffix


def day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def daily_chart(
    days: list[date],
    series: list[tuple[str, str, list[int]]],
    *,
    title: str,
    y_title: str,
    unit: str,
    size: Size = WIDE,
) -> BarChart:
    """`series`: (key, label, one value per day); the bars stack them in that order."""
    totals = [sum(values[i] for _, _, values in series) for i in range(len(days))]
    step, y_high = _axis(max(totals, default=0))
    plot_width = size.width - size.left - RIGHT
    plot_height = size.height - TOP - BOTTOM
    slot = plot_width / max(len(days), 1)
    bar_width = max(round(slot * 0.72, 1), 1.0)

    def y(value: float) -> float:
        return round(TOP + plot_height * (1 - value / y_high), 1)

    bars = []
    for i, day in enumerate(days):
        x = round(size.left + i * slot + (slot - bar_width) / 2, 1)
        segments, below = [], 0
        for key, _, values in series:
            if values[i]:
                segments.append(Segment(key, y(below + values[i]), y(below) - y(below + values[i])))
            below += values[i]
        parts = ", ".join(f"{values[i]:,} {label.lower()}" for _, label, values in series)
        title_text = f"{day_label(day)}: {totals[i]:,} {unit}"
        if len(series) > 1:
            title_text += f" ({parts})"
        bars.append(
            Bar(x, bar_width, y(totals[i]), tuple(segments), short_number(totals[i]), title_text)
        )
    every = math.ceil(len(days) / size.date_labels) or 1
    x_ticks = [
        Tick(round(size.left + (i + 0.5) * slot, 1), day_label(day))
        for i, day in enumerate(days)
        if i % every == 0
    ]
    return BarChart(
        title=title,
        y_title=y_title,
        bars=tuple(bars),
        legend=tuple(LegendItem(key, label, sum(values)) for key, label, values in series),
        x_ticks=tuple(x_ticks),
        y_ticks=tuple(Tick(y(v), short_number(v)) for v in range(0, y_high + 1, step)),
        show_values=len(days) <= size.value_labels,
        width=size.width,
        height=size.height,
        left=size.left,
    )


def _axis(highest: int) -> tuple[int, int]:
    """A whole, round tick step and the top of the value axis, at or above `highest`."""
    if highest <= 0:
        return 1, 1
    step = max(1, math.ceil(round_step(highest, 4)))
    return step, math.ceil(highest / step) * step
