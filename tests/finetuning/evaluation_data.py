"""A stored evaluation report in the shape evaluation.build_report writes, for API and page tests."""

from tokenmill.finetuning.models import FineTuningJob, JobCheckpoint, JobEvaluation


def classification_side(model: str, accuracy: float, answer_loss: float) -> dict:
    return {
        "model": model,
        "exact_match": accuracy,
        "normalized_match": accuracy,
        "answer_loss": answer_loss,
        "answer_tokens": 20,
        "classification": {
            "accuracy": accuracy,
            "per_label": {
                "bad": {"precision": 0.8, "recall": 1.0, "f1": 0.888889, "support": 4},
                "good": {"precision": 1.0, "recall": 0.833333, "f1": 0.909091, "support": 6},
            },
            "macro_f1": 0.89899,
            "confusion_matrix": [[4, 0, 0], [1, 5, 0]],
            "roc_auc": {"per_label": {"bad": 0.958333, "good": 0.958333}, "macro": 0.958333},
        },
    }


def stored_evaluation(job: FineTuningJob) -> JobEvaluation:
    checkpoints = [
        JobCheckpoint.objects.create(
            tenant=job.tenant,
            job=job,
            step_number=5 * epoch,
            epoch=epoch,
            metrics={"valid_loss": loss, "valid_token_accuracy": accuracy},
            fine_tuned_model_checkpoint=f"{job.fine_tuned_model}:ckpt-step-{5 * epoch}",
            artifact_key=f"jobs/{job.public_id}/attempt-1/checkpoints/epoch-{epoch}",
        )
        for epoch, loss, accuracy in ((1, 1.9, 0.41), (2, 0.7, 0.83))
    ]
    report = {
        "source": {
            "kind": "holdout",
            "file": job.training_file.public_id,
            "holdout": {"count": 10, "seed": 77},
            "examples": 10,
            "skipped": 0,
        },
        "epochs": [
            {
                "epoch": c.epoch,
                "step": c.step_number,
                "checkpoint": c.public_id,
                "model": c.fine_tuned_model_checkpoint,
                "train_loss": None,
                "train_token_accuracy": None,
                "valid_loss": c.metrics["valid_loss"],
                "valid_token_accuracy": c.metrics["valid_token_accuracy"],
            }
            for c in checkpoints
        ],
        "best_epoch": 2,
        "labels": ["bad", "good"],
        "models": {
            "base": {
                **classification_side("tiny-chat", 0.0, 6.5),
                "classification": {
                    **classification_side("tiny-chat", 0.0, 6.5)["classification"],
                    "confusion_matrix": [[0, 0, 4], [0, 0, 6]],
                },
            },
            "fine_tuned": classification_side(job.fine_tuned_model, 0.9, 0.2),
        },
        "verdict": {
            "metric": "accuracy",
            "metric_label": "accuracy",
            "higher_is_better": True,
            "base": 0.0,
            "fine_tuned": 0.9,
            "improved": True,
        },
        "samples": [
            {
                "question": "Anna feels proud today.",
                "reference": "good",
                "base": "Anna is a girl who likes to read.",
                "fine_tuned": "good",
            }
        ],
    }
    return JobEvaluation.objects.create(
        tenant=job.tenant,
        job=job,
        model_id=job.fine_tuned_model,
        status="succeeded",
        report=report,
    )
