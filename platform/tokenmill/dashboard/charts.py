"""The loss chart of a fine-tuning job, as the geometry of an inline SVG.

No chart library and nothing sent to the browser but the SVG itself: the job page
renders it, and the status endpoint sends it again when new metrics arrive. Long
runs are thinned to at most MAX_POINTS points a series, always keeping the last.

The first steps of a run often have a loss several times the rest: left in, they
would squash the curve that matters into a flat line at the bottom. When they stand
out (above CLIP_FACTOR times the highest loss after the first CLIP_SHARE of the
steps), the value axis stops at the rest's range, the early points are drawn at its
top edge, and `clipped` says how many there are and how high they went.

static/dashboard/finetuning.js draws the same chart again as new metrics arrive:
change both together.
"""

import math
from dataclasses import dataclass

WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 48  # margins around the plot, in SVG units
MAX_POINTS = 400
CLIP_SHARE = 0.1  # the share of the first steps that may lie above the axis
CLIP_FACTOR = 1.5  # how far above the rest they must reach to be clipped
CLIP_MIN_POINTS = 10


@dataclass(frozen=True)
class LossPoint:
    step: int
    train_loss: float | None = None
    valid_loss: float | None = None
    full_valid_loss: float | None = None


@dataclass(frozen=True)
class Tick:
    at: float  # the SVG coordinate
    label: str


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Series:
    key: str  # train, valid, full-valid: the CSS class suffix
    label: str
    path: str  # SVG path data; "" when the series has a single point
    markers: tuple[Marker, ...]
    last: float


@dataclass(frozen=True)
class Clipped:
    count: int  # points above the value axis, drawn at its top
    last_step: int  # the last step with such a point
    highest: float


class PlotFrame:
    """The middle of a chart's plot area, for its axis titles; a chart has `left`,
    `right`, `top` and `bottom` (the plot's edges, in SVG units)."""

    @property
    def x_middle(self) -> float:
        return (self.left + self.right) / 2

    @property
    def y_middle(self) -> float:
        return (self.top + self.bottom) / 2


@dataclass(frozen=True)
class LossChart(PlotFrame):
    series: tuple[Series, ...]
    clipped: Clipped | None = None
    x_ticks: tuple[Tick, ...] = ()
    y_ticks: tuple[Tick, ...] = ()
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM

    @property
    def is_empty(self) -> bool:
        return not self.series


SERIES = (
    ("train", "Training loss", "train_loss"),
    ("valid", "Validation loss", "valid_loss"),
    ("full-valid", "Full validation loss", "full_valid_loss"),
)


def loss_chart(points: list[LossPoint], *, total_steps: int | None = None) -> LossChart:
    """The chart of `points` (any order); the step axis runs to `total_steps` when known."""
    columns = {
        key: sorted((p.step, value) for p in points if _finite(value := getattr(p, attr)))
        for key, _, attr in SERIES
    }
    values = [loss for column in columns.values() for _, loss in column]
    if not values:
        return LossChart(series=())
    last_step = max(step for column in columns.values() for step, _ in column)
    # The axis ends where training ends, so the line's length shows the progress.
    x_high = max(last_step, total_steps or 0, 1)
    x_ticks = _step_ticks(x_high)
    low, high = min(values), _clip_high(columns, last_step) or max(values)
    pad = (high - low) * 0.04 or max(abs(high) * 0.1, 0.05)
    y_ticks, y_low, y_high = _nice_range(max(low - pad, 0.0) if low >= 0 else low - pad, high + pad)

    def x(step: float) -> float:
        return round(LEFT + (WIDTH - LEFT - RIGHT) * step / x_high, 1)

    def y(loss: float) -> float:
        span = (y_high - y_low) or 1.0
        return round(TOP + (HEIGHT - TOP - BOTTOM) * (y_high - min(loss, y_high)) / span, 1)

    series = []
    for key, label, _ in SERIES:
        column = _thin(columns[key])
        if not column:
            continue
        coordinates = [(x(step), y(loss)) for step, loss in column]
        path = (
            "M" + " L".join(f"{_number(cx)} {_number(cy)}" for cx, cy in coordinates)
            if len(column) > 1
            else ""
        )
        # Training loss comes every step: a line is enough. Validation comes per epoch:
        # each point is marked, with its value on hover.
        marked = column if key != "train" or len(column) == 1 else column[-1:]
        markers = tuple(
            Marker(x(step), y(loss), f"Step {step:,}: {label.lower()} {loss:.4f}")
            for step, loss in marked
        )
        series.append(Series(key, label, path, markers, column[-1][1]))
    above = [(step, loss) for column in columns.values() for step, loss in column if loss > y_high]
    clipped = None
    if above:
        clipped = Clipped(
            count=len(above),
            last_step=max(step for step, _ in above),
            highest=max(loss for _, loss in above),
        )
    return LossChart(
        series=tuple(series),
        clipped=clipped,
        x_ticks=tuple(Tick(x(value), f"{int(value):,}") for value in x_ticks),
        y_ticks=tuple(Tick(y(value), _label(value, y_ticks)) for value in y_ticks),
    )


def _clip_high(columns: dict[str, list[tuple[int, float]]], last_step: int) -> float | None:
    """The top of the value axis without the first steps' outliers, or None to keep them."""
    train = columns["train"]
    if len(train) < CLIP_MIN_POINTS:
        return None
    first_steps = train[0][0] + CLIP_SHARE * (last_step - train[0][0])
    rest = [loss for column in columns.values() for step, loss in column if step > first_steps]
    if not rest:
        return None
    high = max(rest)
    early = max(loss for column in columns.values() for _, loss in column)
    return high if early > CLIP_FACTOR * high else None


def _number(value: float) -> str:
    """84.0 -> 84, as the page's script writes numbers, so both draw the same path."""
    return str(int(value)) if value == int(value) else str(value)


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _thin(column: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(column) <= MAX_POINTS:
        return column
    stride = math.ceil(len(column) / MAX_POINTS)
    thinned = column[::stride]
    return thinned if thinned[-1] == column[-1] else [*thinned, column[-1]]


def round_step(span: float, count: int) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `count` intervals."""
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _step_ticks(last: int) -> list[int]:
    """Round step numbers from 0 to `last`, and `last` itself unless a tick is close to it."""
    size = max(1, round(round_step(last, 5)))
    ticks = list(range(0, last + 1, size))
    if last - ticks[-1] > size / 2:
        ticks.append(last)
    elif ticks[-1] != last:
        ticks[-1] = last
    return ticks


def _nice_range(low: float, high: float) -> tuple[list[float], float, float]:
    step = round_step(high - low, 4)
    bottom, top = math.floor(low / step) * step, math.ceil(high / step) * step
    ticks = [bottom + i * step for i in range(round((top - bottom) / step) + 1)]
    return ticks, bottom, top


def _label(value: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


# The evaluation report's charts: horizontal bars drawn by CSS widths, one group per
# figure (base model next to the fine-tuned model) and one row per epoch.


@dataclass(frozen=True)
class Bar:
    side: str  # base, tuned, loss, accuracy: the CSS class suffix
    label: str
    text: str
    percent: float  # of the bar track's width


@dataclass(frozen=True)
class BarGroup:
    title: str
    bars: tuple[Bar, ...]
    note: str = ""


# (title, how to read the figure from one side of the report, higher is better)
COMPARED = (
    ("Accuracy", lambda side: (side.get("classification") or {}).get("accuracy"), True),
    ("Macro-F1", lambda side: (side.get("classification") or {}).get("macro_f1"), True),
    (
        "ROC AUC",
        lambda side: ((side.get("classification") or {}).get("roc_auc") or {}).get("macro"),
        True,
    ),
    ("Exact match", lambda side: side.get("exact_match"), True),
    ("Normalized match", lambda side: side.get("normalized_match"), True),
    ("Loss on the reference answers", lambda side: side.get("answer_loss"), False),
)


def comparison_bars(report: dict) -> list[BarGroup]:
    """Base vs fine-tuned, one group per figure the report has; rates on a 0-1 scale,
    the loss on the scale of the larger of the two."""
    models = report.get("models") or {}
    base, tuned = models.get("base"), models.get("fine_tuned")
    if not base or not tuned:
        return []
    groups = []
    for title, read, higher in COMPARED:
        values = (read(base), read(tuned))
        if not all(_finite(value) for value in values):
            continue
        scale = 1.0 if higher else (max(values) or 1.0)
        bars = tuple(
            Bar(
                side,
                label,
                f"{value:.1%}" if higher else f"{value:.3f}",
                round(100 * min(max(value / scale, 0.0), 1.0), 1),
            )
            for side, label, value in (
                ("base", "Base model", values[0]),
                ("tuned", "Fine-tuned", values[1]),
            )
        )
        groups.append(BarGroup(title, bars, "" if higher else "lower is better"))
    return groups


def epoch_bars(epochs: list[dict]) -> list[BarGroup]:
    """Validation loss (on the scale of the highest) and token accuracy per epoch."""
    losses = [row["valid_loss"] for row in epochs if _finite(row.get("valid_loss"))]
    top = max(losses, default=0.0) or 1.0
    groups = []
    for row in epochs:
        bars = []
        if _finite(row.get("valid_loss")):
            bars.append(
                Bar(
                    "loss",
                    "Validation loss",
                    f"{row['valid_loss']:.4f}",
                    round(100 * row["valid_loss"] / top, 1),
                )
            )
        if _finite(row.get("valid_token_accuracy")):
            bars.append(
                Bar(
                    "accuracy",
                    "Token accuracy",
                    f"{row['valid_token_accuracy']:.1%}",
                    round(100 * row["valid_token_accuracy"], 1),
                )
            )
        if bars:
            groups.append(BarGroup(f"Epoch {row['epoch']}", tuple(bars)))
    return groups
