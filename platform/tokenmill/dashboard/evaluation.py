"""What the job page shows of a job's evaluation report (tokenmill/finetuning/evaluation.py)."""

from tokenmill.dashboard.charts import comparison_bars, epoch_bars
from tokenmill.finetuning.evaluation_metrics import OTHER
from tokenmill.finetuning.models import JobEvaluation


def evaluation_context(evaluation: JobEvaluation | None) -> dict:
    report = (evaluation.report if evaluation else None) or {}
    best = report.get("best_epoch")
    return {
        "evaluation": evaluation,
        "comparison": comparison_bars(report),
        "epochs": epoch_bars(report.get("epochs") or []),
        "best_epoch_title": f"Epoch {best}" if best is not None else "",
        "tables": _classification_tables(report),
    }


def _classification_tables(report: dict) -> dict | None:
    labels = report.get("labels")
    tuned = ((report.get("models") or {}).get("fine_tuned") or {}).get("classification")
    if not labels or not tuned:
        return None
    auc = (tuned.get("roc_auc") or {}).get("per_label") or {}
    return {
        "per_label": [
            {"label": label, **tuned["per_label"][label], "auc": auc.get(label)} for label in labels
        ],
        "columns": [*labels, OTHER],
        "confusion": list(zip(labels, tuned["confusion_matrix"], strict=True)),
    }
