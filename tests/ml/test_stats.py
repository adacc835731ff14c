import json

import numpy as np
import pytest

from workers.ml.evaluate import evaluate
from workers.ml.stats import (
    balanced_accuracy,
    bootstrap_interval,
    describe_difference,
    evaluation_summary,
    macro_f1,
    paired_bootstrap_difference,
    per_class_recall,
    wilson_interval,
)

PRIORS = np.array([0.5, 0.3, 0.2])
# P(predicted | true) of a simulated 3-class classifier, rows = true class.
CONFUSION = np.array([[0.85, 0.10, 0.05], [0.15, 0.75, 0.10], [0.10, 0.20, 0.70]])


def simulate(rng, n, priors=PRIORS, confusion=CONFUSION):
    """Labels drawn from ``priors`` and predictions from ``confusion``."""
    labels = rng.choice(len(priors), n, p=priors)
    predicted = (rng.random(n)[:, None] > np.cumsum(confusion[labels], axis=1)).sum(axis=1)
    return labels, np.minimum(predicted, len(priors) - 1)


def population_macro_f1(priors=PRIORS, confusion=CONFUSION):
    joint = priors[:, None] * confusion
    precision, recall = np.diag(joint) / joint.sum(axis=0), np.diag(confusion)
    return float(np.mean(2 * precision * recall / (precision + recall)))


def with_accuracy(rng, labels, accuracy, k):
    """Predictions right on each image with probability ``accuracy``, else another class."""
    wrong = (labels + rng.integers(1, k, len(labels))) % k
    return np.where(rng.random(len(labels)) < accuracy, labels, wrong)


# Wilson at p=0.9 is conservative for small n: summing the binomial distribution gives an exact
# coverage of 0.970 at n=50 and 0.956 at n=500, hence a top of 0.98 rather than 0.97.
@pytest.mark.parametrize("n", [50, 500])
def test_it_covers_the_true_accuracy_in_about_95_percent_of_trials(n):
    rng = np.random.default_rng(0)
    intervals = [wilson_interval(int(c), n) for c in rng.binomial(n, 0.9, size=2000)]
    coverage = np.mean([lo <= 0.9 <= hi for lo, hi in intervals])
    assert 0.93 <= coverage <= 0.98


def test_it_narrows_the_accuracy_interval_with_more_images():
    lo_small, hi_small = wilson_interval(45, 50)
    lo_big, hi_big = wilson_interval(4500, 5000)
    assert hi_big - lo_big < (hi_small - lo_small) / 5
    assert lo_small < lo_big < 0.9 < hi_big < hi_small


def test_it_gives_a_perfect_classifier_an_upper_bound_of_one_and_a_lower_bound_below():
    lo, hi = wilson_interval(50, 50)
    assert hi == 1.0
    assert 0.9 < lo < 1.0
    assert wilson_interval(0, 50)[0] == 0.0


def test_it_refuses_to_evaluate_no_images():
    empty = np.array([], dtype=np.int64)
    with pytest.raises(ValueError, match="n=0"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="n=0"):
        bootstrap_interval("macro_f1", empty, empty, n_classes=3)
    with pytest.raises(ValueError, match="n=0"):
        macro_f1(empty, empty, 3)
    with pytest.raises(ValueError, match="n=0"):
        evaluation_summary(np.zeros((0, 3)), empty, ["a", "b", "c"], split="validation")


def test_it_refuses_class_indices_out_of_range():
    with pytest.raises(ValueError, match="0..2"):
        macro_f1([0, 1, 3], [0, 1, 2], 3)


def test_it_computes_metrics_by_hand():
    labels, predicted = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    # F1: class 0 = 2/4, class 1 = 4/5, class 2 = 2/3.
    assert macro_f1(labels, predicted, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert per_class_recall(labels, predicted, 3).tolist() == [0.5, 1.0, 0.5]
    assert balanced_accuracy(labels, predicted, 3) == pytest.approx(2 / 3)


def test_it_agrees_with_the_engines_evaluation():
    labels, predicted = simulate(np.random.default_rng(1), 500)
    report = evaluate(np.eye(3)[predicted], labels, ["a", "b", "c"], [""] * 500)
    per_class = report["per_class"].values()
    assert macro_f1(labels, predicted, 3) == pytest.approx(np.mean([c["f1"] for c in per_class]))
    assert balanced_accuracy(labels, predicted, 3) == pytest.approx(np.mean([c["recall"] for c in per_class]))


def test_it_leaves_a_class_nobody_saw_out_of_macro_f1_and_recall():
    labels, predicted = [0, 0, 1], [0, 1, 1]
    assert macro_f1(labels, predicted, 3) == pytest.approx(macro_f1(labels, predicted, 2))
    assert np.isnan(per_class_recall(labels, predicted, 3)[2])
    assert balanced_accuracy(labels, predicted, 3) == pytest.approx(0.75)


def test_it_covers_the_population_macro_f1_in_about_95_percent_of_trials():
    rng, truth = np.random.default_rng(0), population_macro_f1()
    hits = 0
    for trial in range(300):
        labels, predicted = simulate(rng, 300)
        lo, hi = bootstrap_interval("macro_f1", labels, predicted, n_classes=3, n_boot=1000, seed=trial)
        hits += lo <= truth <= hi
    assert 0.90 <= hits / 300 <= 0.99


def test_it_is_reproducible_with_a_seed():
    labels, predicted = simulate(np.random.default_rng(2), 200)
    first = bootstrap_interval("macro_f1", labels, predicted, seed=5)
    assert first == bootstrap_interval("macro_f1", labels, predicted, seed=5)
    assert first != bootstrap_interval("macro_f1", labels, predicted, seed=6)


def test_it_bootstraps_recall_per_class_and_survives_a_class_missing_from_resamples():
    labels = np.array([0] * 100 + [1] * 100 + [2])  # class 2: one image, absent from ~37% of resamples
    predicted = labels.copy()
    predicted[:20] = 1
    lo, hi = bootstrap_interval("per_class_recall", labels, predicted, n_classes=4)
    assert lo[0] < 0.8 < hi[0]
    assert (lo[1], hi[1]) == (1.0, 1.0)  # why evaluation_summary gives recall a Wilson interval
    assert (lo[2], hi[2]) == (1.0, 1.0)
    assert np.isnan(lo[3]) and np.isnan(hi[3])  # no images at all: no interval, and no warning


def test_it_sees_a_clear_difference_of_5_points_on_2000_images():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 2000)
    a, b = with_accuracy(rng, labels, 0.80, 3), with_accuracy(rng, labels, 0.85, 3)
    result = paired_bootstrap_difference(labels, a, b, n_boot=2000, seed=0)
    assert result["clear"]
    assert 0.02 < result["lo"] < result["difference"] < result["hi"]
    assert result["difference"] == pytest.approx((b == labels).mean() - (a == labels).mean())


def test_it_sees_no_clear_difference_between_equally_accurate_models():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 2000)
    a, b = with_accuracy(rng, labels, 0.85, 3), with_accuracy(rng, labels, 0.85, 3)
    result = paired_bootstrap_difference(labels, a, b, n_boot=2000, seed=0)
    assert not result["clear"]
    assert result["lo"] < 0 < result["hi"]
    assert not paired_bootstrap_difference(labels, a, a)["clear"]


def test_it_sees_a_small_difference_on_the_same_images_that_separate_intervals_miss():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 2000)
    a = with_accuracy(rng, labels, 0.85, 3)
    b = a.copy()
    fixed = rng.choice(np.flatnonzero(a != labels), 30, replace=False)
    b[fixed] = labels[fixed]  # B = A, plus 30 of A's mistakes put right: 1.5 points
    result = paired_bootstrap_difference(labels, a, b, metric="macro_f1")
    assert result["clear"]
    lo_b, _ = wilson_interval(int((b == labels).sum()), 2000)
    _, hi_a = wilson_interval(int((a == labels).sum()), 2000)
    assert lo_b < hi_a  # separate accuracy intervals overlap


def test_it_describes_a_difference_in_signed_points():
    unclear = {"difference": 0.012, "lo": -0.008, "hi": 0.031, "clear": False}
    assert describe_difference(unclear) == "B \u2212 A: +1.2 points [\u22120.8, +3.1]: not a clear difference"
    clear = {"difference": -0.05, "lo": -0.072, "hi": -0.0004, "clear": True}
    text = describe_difference(clear, a="MobileNet", b="EfficientNet")
    assert text == "EfficientNet \u2212 MobileNet: \u22125.0 points [\u22127.2, \u22120.0]: clear difference"
    assert describe_difference({"difference": 0.0, "lo": 0.0, "hi": 0.0, "clear": False}).startswith("B − A: 0.0 ")


def test_it_summarises_an_evaluation_as_json_with_the_worst_class_first():
    rng = np.random.default_rng(3)
    labels, predicted = simulate(rng, 400)
    probs = np.eye(3)[predicted] * 0.8 + 0.2 / 3
    summary = evaluation_summary(probs, labels, ["cat", "dog", "fox"], split="validation")
    json.dumps(summary, allow_nan=False)
    assert summary["split"] == "validation" and summary["n"] == 400
    assert summary["accuracy"] == pytest.approx((predicted == labels).mean())
    assert summary["accuracy_ci95"][0] < summary["accuracy"] < summary["accuracy_ci95"][1]
    assert summary["macro_f1_ci95"][0] < summary["macro_f1"] < summary["macro_f1_ci95"][1]
    assert summary["balanced_accuracy"] == pytest.approx(balanced_accuracy(labels, predicted, 3))
    recalls = [r["recall"] for r in summary["per_class_recall"]]
    assert recalls == sorted(recalls)
    worst_first = np.argsort(per_class_recall(labels, predicted, 3), kind="stable")
    assert [r["class"] for r in summary["per_class_recall"]] == [["cat", "dog", "fox"][i] for i in worst_first]
    for row in summary["per_class_recall"]:
        assert row["ci95"][0] < row["recall"] < row["ci95"][1]
    assert sum(r["support"] for r in summary["per_class_recall"]) == 400


def test_it_puts_a_class_without_images_last_in_the_summary():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]])
    summary = evaluation_summary(probs, np.array([0, 1, 1]), ["a", "b", "c"], split="test")
    json.dumps(summary, allow_nan=False)
    assert [r["class"] for r in summary["per_class_recall"]] == ["b", "a", "c"]
    assert summary["per_class_recall"][-1] == {"class": "c", "recall": None, "ci95": None, "support": 0}
    assert summary["per_class_recall"][1]["ci95"][1] == 1.0  # "a": 1 of 1 right


def test_a_threshold_trades_coverage_for_precision():
    from workers.ml.stats import at_threshold, threshold_curve, threshold_for_precision

    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 0, 1])  # the 0.6 and the 0.55 answers are wrong
    curve = threshold_curve(probs, labels)
    assert curve == [[0.95, 1.0], [0.9, 1.0], [0.8, 1.0], [0.6, 0.0], [0.55, 0.0]]
    assert at_threshold(curve, 0.0) == {
        "threshold": 0.0,
        "accepted": 5,
        "coverage": 1.0,
        "precision": 0.6,
        "recall": 0.6,
    }
    assert at_threshold(curve, 0.7)["precision"] == 1.0 and at_threshold(curve, 0.7)["coverage"] == 0.6
    assert at_threshold(curve, 0.99)["precision"] is None
    chosen = threshold_for_precision(curve, 0.75)
    assert chosen["threshold"] == 0.6 and chosen["precision"] == 0.75 and chosen["coverage"] == 0.8
    assert threshold_for_precision(curve, 1.0)["threshold"] == 0.8
    assert threshold_for_precision([[0.9, 0.0]], 0.5) is None
