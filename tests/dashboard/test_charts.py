"""The loss chart's geometry (pure Python, no database)."""

from tokenmill.dashboard import charts
from tokenmill.dashboard.charts import LossPoint, loss_chart


def test_no_points_is_an_empty_chart():
    assert loss_chart([]).is_empty
    assert loss_chart([LossPoint(step=1, train_loss=float("nan"))]).is_empty


def test_axes_have_round_ticks_and_the_steps_run_to_the_total():
    chart = loss_chart(
        [LossPoint(1, train_loss=2.43), LossPoint(2, train_loss=1.91), LossPoint(3, 1.2, 1.5)],
        total_steps=40,
    )

    assert [tick.label for tick in chart.x_ticks] == ["0", "10", "20", "30", "40"]
    assert chart.x_ticks[0].at == chart.left and chart.x_ticks[-1].at == chart.right
    labels = [tick.label for tick in chart.y_ticks]
    assert labels == ["1.0", "1.5", "2.0", "2.5"]
    # Higher loss is higher up: a smaller y.
    assert chart.y_ticks[0].at == chart.bottom and chart.y_ticks[-1].at == chart.top


def test_each_series_is_a_path_and_validation_points_are_marked():
    chart = loss_chart(
        [LossPoint(s, train_loss=3 - s / 10) for s in range(1, 11)]
        + [LossPoint(5, valid_loss=2.6), LossPoint(10, valid_loss=2.4)]
    )

    train, valid = chart.series
    assert (train.key, valid.key) == ("train", "valid")
    assert train.path.startswith("M") and train.path.count(" L") == 9
    assert len(train.markers) == 1  # only the latest step, to show where the run is
    assert [m.title for m in valid.markers] == [
        "Step 5: validation loss 2.6000",
        "Step 10: validation loss 2.4000",
    ]
    assert (train.last, valid.last) == (2.0, 2.4)


def test_long_runs_are_thinned_keeping_the_last_point():
    points = [LossPoint(s, train_loss=1 / s) for s in range(1, 5001)]

    [train] = loss_chart(points).series

    assert train.path.count(" L") + 1 <= charts.MAX_POINTS + 1
    assert train.last == 1 / 5000


def test_a_single_point_is_a_marker():
    [train] = loss_chart([LossPoint(1, train_loss=0.7)], total_steps=10).series

    assert train.path == ""
    assert len(train.markers) == 1


def test_the_first_steps_outliers_are_clipped_so_the_rest_stays_readable():
    points = [LossPoint(1, train_loss=12.0), LossPoint(2, train_loss=6.0)] + [
        LossPoint(s, train_loss=1.0 + 1 / s) for s in range(3, 41)
    ]

    chart = loss_chart(points, total_steps=40)

    # The axis follows the rest of the run (about 1.0-1.35), not the first steps' 12.
    assert float(chart.y_ticks[-1].label) < 2
    assert chart.clipped == charts.Clipped(count=3, last_step=3, highest=12.0)
    [train] = chart.series
    first_y = float(train.path.split(" L")[0].split()[1])
    assert first_y == chart.top  # drawn at the top edge


def test_a_run_without_outliers_is_not_clipped():
    chart = loss_chart([LossPoint(s, train_loss=2.0 - s / 40) for s in range(1, 41)])

    assert chart.clipped is None
    assert float(chart.y_ticks[-1].label) >= 2.0


def test_a_short_run_is_never_clipped():
    chart = loss_chart([LossPoint(1, train_loss=9.0)] + [LossPoint(s, 1.0) for s in range(2, 6)])

    assert chart.clipped is None


def test_the_evaluation_bars_compare_base_and_fine_tuned_on_their_scales():
    from tokenmill.dashboard.charts import comparison_bars, epoch_bars

    report = {
        "models": {
            "base": {"exact_match": 0.0, "normalized_match": 0.25, "answer_loss": 8.0},
            "fine_tuned": {"exact_match": 0.5, "normalized_match": 0.75, "answer_loss": 2.0},
        }
    }
    groups = {group.title: group for group in comparison_bars(report)}
    assert list(groups) == ["Exact match", "Normalized match", "Loss on the reference answers"]
    assert [(bar.text, bar.percent) for bar in groups["Normalized match"].bars] == [
        ("25.0%", 25.0),
        ("75.0%", 75.0),
    ]
    loss = groups["Loss on the reference answers"]
    assert [(bar.text, bar.percent) for bar in loss.bars] == [("8.000", 100.0), ("2.000", 25.0)]
    assert loss.note == "lower is better"
    assert comparison_bars({}) == []

    epochs = epoch_bars(
        [
            {"epoch": 1, "valid_loss": 2.0, "valid_token_accuracy": 0.5},
            {"epoch": 2, "valid_loss": 1.0, "valid_token_accuracy": None},
        ]
    )
    assert [(group.title, [bar.percent for bar in group.bars]) for group in epochs] == [
        ("Epoch 1", [100.0, 50.0]),
        ("Epoch 2", [50.0]),
    ]
