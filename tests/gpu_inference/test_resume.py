"""Resuming training from a checkpoint: the position, the optimizer state and the data
order come back, so an interrupted run continues as if it had never stopped."""

import json
from pathlib import Path

import pytest

from gpu_inference import protocol
from gpu_inference.training import TrainingHandedBack, run_training
from tests.gpu_inference.helpers import RecordingReporter
from tests.gpu_inference.test_training import make_spec


class DrainingReporter(RecordingReporter):
    """Asks the trainer to hand the job back once `after_steps` steps are reported."""

    def __init__(self, after_steps: int) -> None:
        super().__init__()
        self.after_steps = after_steps

    def should_hand_back(self) -> bool:
        return len(self.step_metrics) >= self.after_steps


def losses(reporter: RecordingReporter) -> dict[int, float]:
    return {m["step"]: m["train_loss"] for m in reporter.step_metrics}


def resumed_spec(spec: dict, checkpoint: Path, output_dir: Path) -> dict:
    state = checkpoint.parent.parent / "training-state" / checkpoint.name
    return {
        **spec,
        "output_dir": str(output_dir),
        "resume_from": str(checkpoint),
        "resume_state": str(state),
    }


@pytest.fixture
def uninterrupted(quick_model, pirate_file, tmp_path):
    reporter = RecordingReporter()
    result = run_training(make_spec(quick_model, pirate_file, tmp_path / "whole"), reporter)
    return reporter, result


def test_a_drained_run_saves_where_it_stands_and_resumes_from_there(
    quick_model, pirate_file, tmp_path, uninterrupted
):
    whole, whole_result = uninterrupted
    spec = make_spec(quick_model, pirate_file, tmp_path / "first")
    first = DrainingReporter(after_steps=7)  # in epoch 2 of 3 (5 steps per epoch)
    with pytest.raises(TrainingHandedBack) as handed_back:
        run_training(spec, first)
    assert handed_back.value.step == 7
    checkpoint = handed_back.value.checkpoint
    assert checkpoint == tmp_path / "first" / "checkpoints" / "step-7"
    assert (checkpoint / "adapter_config.json").is_file()
    state_dir = tmp_path / "first" / protocol.training_state_key("checkpoints/step-7")
    assert json.loads((state_dir / "state.json").read_text())["batches_done"] == 2
    assert [c["step"] for c in first.checkpoints] == [5, 7]
    assert first.events[-1][1] == (
        "The worker is stopping: saved a checkpoint at step 7/15 to resume from"
    )

    second = RecordingReporter()
    result = run_training(resumed_spec(spec, checkpoint, tmp_path / "second"), second)
    assert [m["step"] for m in second.step_metrics] == list(range(8, 16))
    assert "Resumed from the checkpoint at step 7 (epoch 2, 8 steps left)" in [
        message for _, message, _ in second.events
    ]
    assert [c["epoch"] for c in second.checkpoints] == [2, 3]
    # The same data order and the optimizer's moments: the losses an uninterrupted run had.
    assert losses(second) == pytest.approx({s: losses(whole)[s] for s in range(8, 16)}, rel=1e-4)
    assert second.epoch_metrics[0]["train_loss_mean"] == pytest.approx(
        whole.epoch_metrics[1]["train_loss_mean"], rel=1e-4
    )
    assert result["trained_tokens"] == whole_result["trained_tokens"]


def test_a_run_resumes_from_an_epoch_checkpoint(quick_model, pirate_file, tmp_path, uninterrupted):
    whole, _ = uninterrupted
    spec = make_spec(quick_model, pirate_file, tmp_path / "first")
    with pytest.raises(TrainingHandedBack) as handed_back:
        run_training(spec, DrainingReporter(after_steps=5))  # at the end of epoch 1
    checkpoint = handed_back.value.checkpoint
    assert checkpoint == tmp_path / "first" / "checkpoints" / "epoch-1"  # no extra save
    second = RecordingReporter()
    run_training(resumed_spec(spec, checkpoint, tmp_path / "second"), second)
    assert [m["step"] for m in second.step_metrics] == list(range(6, 16))
    assert losses(second) == pytest.approx({s: losses(whole)[s] for s in range(6, 16)}, rel=1e-4)


def test_only_the_latest_optimizer_states_are_kept_and_none_once_finished(
    quick_model, pirate_file, tmp_path, uninterrupted
):
    assert not (tmp_path / "whole" / "training-state").exists()
    with pytest.raises(TrainingHandedBack):
        run_training(
            make_spec(quick_model, pirate_file, tmp_path / "first"),
            DrainingReporter(after_steps=12),
        )
    states = sorted(path.name for path in (tmp_path / "first" / "training-state").iterdir())
    assert states == ["epoch-2", "step-12"]  # epoch-1's went when step-12's was saved


def test_a_hand_back_before_any_new_step_saves_nothing(quick_model, pirate_file, tmp_path):
    with pytest.raises(TrainingHandedBack) as handed_back:
        run_training(make_spec(quick_model, pirate_file, tmp_path / "out"), DrainingReporter(0))
    assert handed_back.value.step == 0 and handed_back.value.checkpoint is None


def test_a_checkpoint_without_its_state_starts_over_saying_why(
    quick_model, pirate_file, tmp_path, uninterrupted
):
    spec = make_spec(quick_model, pirate_file, tmp_path / "whole")
    checkpoint = tmp_path / "whole" / "checkpoints" / "epoch-1"
    resumed = resumed_spec(spec, checkpoint, tmp_path / "second")
    resumed["resume_state"] = str(tmp_path / "nowhere")
    reporter = RecordingReporter()
    run_training(resumed, reporter)
    assert reporter.step_metrics[0]["step"] == 1
    assert (
        "warning",
        "Cannot resume from the checkpoint (its saved state is missing); starting from step 0",
        None,
    ) in reporter.events
