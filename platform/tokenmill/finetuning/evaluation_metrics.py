"""The figures of an evaluation report, as pure functions (no Django, no model).

Matches: `exact_match` compares answers with surrounding whitespace trimmed;
`normalized_match` also ignores case, punctuation and runs of whitespace.
Classification: rows of the confusion matrix are the true labels, columns the
predicted ones, with a last column OTHER for answers that are none of the labels.
Precision of a label never predicted is 0 (as scikit-learn's zero_division=0).
ROC AUC is one-vs-rest per label from the label probabilities (ties count half),
macro-averaged over the labels that have both positive and negative examples.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

OTHER = "(other)"


def normalize_answer(text: str) -> str:
    """Lower case, punctuation and symbols dropped, whitespace collapsed."""
    kept = "".join(
        " " if unicodedata.category(char)[0] in "PS" else char for char in text.casefold()
    )
    return " ".join(kept.split())


def exact_match(prediction: str, reference: str) -> bool:
    return prediction.strip() == reference.strip()


def normalized_match(prediction: str, reference: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(reference)


def match_rates(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float | None]:
    pairs = list(zip(predictions, references, strict=True))
    if not pairs:
        return {"exact_match": None, "normalized_match": None}
    return {
        "exact_match": sum(exact_match(p, r) for p, r in pairs) / len(pairs),
        "normalized_match": sum(normalized_match(p, r) for p, r in pairs) / len(pairs),
    }


def predicted_label(answer: str, labels: Sequence[str]) -> str:
    """The label an answer names (compared normalized), else OTHER."""
    wanted = normalize_answer(answer)
    for label in labels:
        if normalize_answer(label) == wanted:
            return label
    return OTHER


def confusion_matrix(
    labels: Sequence[str], truths: Sequence[str], predictions: Sequence[str]
) -> list[list[int]]:
    """counts[i][j]: examples of labels[i] predicted as labels[j]; column len(labels) is OTHER."""
    column = {label: index for index, label in enumerate(labels)}
    counts = [[0] * (len(labels) + 1) for _ in labels]
    for truth, prediction in zip(truths, predictions, strict=True):
        counts[column[truth]][column.get(prediction, len(labels))] += 1
    return counts


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def per_label_scores(
    labels: Sequence[str], truths: Sequence[str], predictions: Sequence[str]
) -> dict[str, dict[str, float | int]]:
    matrix = confusion_matrix(labels, truths, predictions)
    scores = {}
    for index, label in enumerate(labels):
        true_positive = matrix[index][index]
        predicted = sum(row[index] for row in matrix)
        support = sum(matrix[index])
        precision = _ratio(true_positive, predicted)
        recall = _ratio(true_positive, support)
        f1 = _ratio(2 * true_positive, predicted + support)  # = 2PR/(P+R), 0 when both are 0
        scores[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return scores


def macro_f1(per_label: dict[str, dict[str, float | int]]) -> float | None:
    if not per_label:
        return None
    return sum(score["f1"] for score in per_label.values()) / len(per_label)


def accuracy(truths: Sequence[str], predictions: Sequence[str]) -> float | None:
    pairs = list(zip(truths, predictions, strict=True))
    return sum(t == p for t, p in pairs) / len(pairs) if pairs else None


def binary_roc_auc(positives: Sequence[bool], scores: Sequence[float]) -> float | None:
    """The probability that a random positive scores above a random negative (ties: half).
    None when there are no positives or no negatives."""
    pos = [s for is_positive, s in zip(positives, scores, strict=True) if is_positive]
    neg = [s for is_positive, s in zip(positives, scores, strict=True) if not is_positive]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def label_probabilities(log_scores: Sequence[float]) -> list[float]:
    """Softmax of the labels' log-probabilities: how the model splits its belief among them."""
    top = max(log_scores)
    weights = [math.exp(score - top) for score in log_scores]
    total = sum(weights)
    return [weight / total for weight in weights]


def roc_auc(
    labels: Sequence[str], truths: Sequence[str], log_scores: Sequence[Sequence[float]]
) -> dict[str, object]:
    """Per-label one-vs-rest AUC from each example's label log-probabilities, and their mean."""
    probabilities = [label_probabilities(row) for row in log_scores]
    per_label = {
        label: binary_roc_auc(
            [truth == label for truth in truths], [p[index] for p in probabilities]
        )
        for index, label in enumerate(labels)
    }
    defined = [value for value in per_label.values() if value is not None]
    return {"per_label": per_label, "macro": sum(defined) / len(defined) if defined else None}


def classification_metrics(
    labels: Sequence[str],
    truths: Sequence[str],
    answers: Sequence[str],
    log_scores: Sequence[Sequence[float]],
) -> dict[str, object]:
    """Everything a report shows for a classifier: answers are the generated texts."""
    predictions = [predicted_label(answer, labels) for answer in answers]
    per_label = per_label_scores(labels, truths, predictions)
    return {
        "accuracy": accuracy(truths, predictions),
        "per_label": per_label,
        "macro_f1": macro_f1(per_label),
        "confusion_matrix": confusion_matrix(labels, truths, predictions),
        "roc_auc": roc_auc(labels, truths, log_scores),
    }
