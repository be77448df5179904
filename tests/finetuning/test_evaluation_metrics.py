"""The evaluation report's figures against values worked out by hand on small fixed data."""

import math

import pytest

from tokenmill.finetuning import evaluation_metrics as m

LABELS = ["cat", "dog", "fox"]
TRUTHS = ["cat", "cat", "cat", "dog", "dog", "fox", "fox", "fox"]
# What the model wrote: case and punctuation do not matter, an answer that is no label is OTHER.
ANSWERS = ["Cat.", " dog", "CAT", "Dog!", "a wolf", "fox", "cat", "Fox"]
PREDICTED = ["cat", "dog", "cat", "dog", m.OTHER, "fox", "cat", "fox"]


def test_answers_become_labels_when_they_name_one():
    assert [m.predicted_label(answer, LABELS) for answer in ANSWERS] == PREDICTED


def test_the_confusion_matrix_counts_true_rows_and_predicted_columns_with_other_last():
    assert m.confusion_matrix(LABELS, TRUTHS, PREDICTED) == [
        [2, 1, 0, 0],  # cat: 2 right, 1 called dog
        [0, 1, 0, 1],  # dog: 1 right, 1 answered with no label
        [1, 0, 2, 0],  # fox: 2 right, 1 called cat
    ]


def test_precision_recall_and_f1_per_label_and_macro_f1():
    scores = m.per_label_scores(LABELS, TRUTHS, PREDICTED)
    # cat: 2 of 3 predictions right, 2 of 3 cats found.
    assert scores["cat"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    # dog: 1 of 2 predictions right, 1 of 2 dogs found.
    assert scores["dog"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    # fox: both predictions right, 2 of 3 foxes found: F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8.
    assert scores["fox"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert m.macro_f1(scores) == pytest.approx((2 / 3 + 0.5 + 0.8) / 3)
    assert m.accuracy(TRUTHS, PREDICTED) == 5 / 8


def test_a_label_never_predicted_has_precision_zero_not_an_error():
    scores = m.per_label_scores(["a", "b"], ["a", "b"], ["a", "a"])
    assert scores["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["a"]["precision"] == 0.5


def test_binary_roc_auc_counts_ties_as_half():
    # Positives score 0.9, 0.4, 0.8; negatives 0.4, 0.1: 5 of 6 pairs won, one tie.
    positives = [True, True, False, False, True]
    assert m.binary_roc_auc(positives, [0.9, 0.4, 0.4, 0.1, 0.8]) == pytest.approx(5.5 / 6)
    assert m.binary_roc_auc([True, True], [0.1, 0.2]) is None  # no negatives: undefined


def test_roc_auc_from_label_log_probabilities():
    labels = ["no", "yes"]
    truths = ["yes", "yes", "no", "no"]
    p_yes = [0.8, 0.3, 0.4, 0.1]
    # Log-probabilities of each label as a continuation need not sum to one: a constant
    # added to a row changes nothing.
    log_scores = [[math.log(1 - p) - 3, math.log(p) - 3] for p in p_yes]
    auc = m.roc_auc(labels, truths, log_scores)
    # yes: 0.8 beats 0.4 and 0.1, 0.3 beats only 0.1 -> 3/4; no is the mirror image.
    assert auc["per_label"] == pytest.approx({"no": 0.75, "yes": 0.75})
    assert auc["macro"] == pytest.approx(0.75)


def test_label_probabilities_are_a_softmax():
    assert m.label_probabilities([math.log(0.2), math.log(0.6), math.log(0.2)]) == pytest.approx(
        [0.2, 0.6, 0.2]
    )


def test_exact_and_normalized_match():
    assert m.exact_match("Paris ", "Paris")
    assert not m.exact_match("paris", "Paris")
    assert m.normalize_answer("  The Sky, be BLUE! ") == "the sky be blue"
    assert m.normalized_match("  The Sky, be BLUE! ", "the sky be blue")
    assert m.normalized_match("Hello,\n  world", "hello world")
    assert not m.normalized_match("the sky be green", "the sky be blue")
    rates = m.match_rates(
        ["Paris", "paris.", "Lyon", "The  capital"], ["Paris", "Paris", "Paris", "the capital"]
    )
    assert rates == {"exact_match": 0.25, "normalized_match": 0.75}


def test_classification_metrics_put_it_together():
    log_scores = [[0.0, -5.0, -5.0]] * len(TRUTHS)
    figures = m.classification_metrics(LABELS, TRUTHS, ANSWERS, log_scores)
    assert figures["accuracy"] == 5 / 8
    assert figures["confusion_matrix"][1] == [0, 1, 0, 1]
    assert figures["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0.8) / 3)
    # Every example scores "cat" highest: the scores rank nothing, so each AUC is one half.
    assert figures["roc_auc"]["macro"] == pytest.approx(0.5)
