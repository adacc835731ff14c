import numpy as np
import pytest

from workers.ml.calibration import (
    T_MAX,
    T_MIN,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def well_specified(rng, n, k=5, spread=2.0):
    """Logits and labels drawn from softmax(logits): softmax(logits) is calibrated by construction."""
    logits = rng.normal(0.0, spread, (n, k))
    labels = (rng.random(n)[:, None] > np.cumsum(softmax(logits), axis=1)).sum(axis=1)
    return logits, np.minimum(labels, k - 1)


@pytest.fixture(scope="module")
def held_out():
    """A validation set to fit on and a test set to judge on, from one well-specified model."""
    rng = np.random.default_rng(0)
    return well_specified(rng, 5000), well_specified(rng, 5000)


def scaled_probs(logits, scale):
    # float32, as the engine's models output them
    return softmax(scale * logits).astype(np.float32)


def test_it_tames_an_over_confident_model_without_changing_its_answers(held_out):
    (val_logits, val_labels), (test_logits, test_labels) = held_out
    val, test = scaled_probs(val_logits, 3.0), scaled_probs(test_logits, 3.0)
    temperature = fit_temperature(val, val_labels)
    calibrated = apply_temperature(test, temperature)
    before = expected_calibration_error(test, test_labels)
    after = expected_calibration_error(calibrated, test_labels)
    assert 2.5 <= temperature <= 3.5
    assert after < 0.5 * before
    assert np.array_equal(calibrated.argmax(axis=1), test.argmax(axis=1))
    assert np.allclose(calibrated.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("scale, low, high", [(1.0, 0.9, 1.1), (0.5, 0.4, 0.6)])
def test_it_leaves_a_calibrated_model_alone_and_sharpens_a_timid_one(held_out, scale, low, high):
    (val_logits, val_labels), _ = held_out
    assert low <= fit_temperature(scaled_probs(val_logits, scale), val_labels) <= high


def test_it_fits_the_same_temperature_from_logits_as_from_probabilities(held_out):
    (val_logits, val_labels), _ = held_out
    from_logits = fit_temperature(3.0 * val_logits, val_labels)
    # Only the clipping of float32 probabilities below 1e-7 separates the two.
    assert fit_temperature(scaled_probs(val_logits, 3.0), val_labels) == pytest.approx(from_logits, rel=0.02)
    assert 2.5 <= from_logits <= 3.5


def test_it_treats_a_sigmoid_column_as_two_columns(held_out):
    (logits, _), _ = held_out
    margin = 3.0 * (logits[:, 1] - logits[:, 0])
    labels = (np.random.default_rng(1).random(len(margin)) < 1 / (1 + np.exp(-margin / 3.0))).astype(np.int64)
    p = (1 / (1 + np.exp(-margin)))[:, None]
    two = np.concatenate([1 - p, p], axis=1)
    temperature = fit_temperature(p, labels)
    assert temperature == pytest.approx(fit_temperature(two, labels))
    assert 2.5 <= temperature <= 3.5
    column = apply_temperature(p, temperature)
    assert column.shape == p.shape
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    expected = 1 / (1 + np.exp(-np.log(clipped / (1 - clipped)) / temperature))
    assert np.allclose(column, expected)
    assert np.allclose(column[:, 0], apply_temperature(two, temperature)[:, 1])


def test_it_clamps_the_temperature_when_the_data_cannot_pin_it_down():
    # No mistakes: the sharper the better, so the fit runs to the bound.
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    assert fit_temperature(probs, np.array([0, 1, 0])) == pytest.approx(T_MIN)
    # All wrong: the flatter the better.
    assert fit_temperature(probs, np.array([1, 0, 1])) == pytest.approx(T_MAX)
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(probs, 0.0)


def test_it_measures_calibration_error_by_hand():
    # 100 images, all 95% sure, half right: 45 points over-confident.
    probs = np.tile([0.95, 0.05], (100, 1))
    labels = np.array([0, 1] * 50)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.45)
    bins = reliability_diagram(probs, labels)
    assert len(bins) == 15 and bins[0]["lo"] == 0.0 and bins[-1]["hi"] == 1.0
    assert bins[-1] == {"lo": 14 / 15, "hi": 1.0, "count": 100, "confidence": pytest.approx(0.95), "accuracy": 0.5}
    assert bins[3] == {"lo": 3 / 15, "hi": 4 / 15, "count": 0, "confidence": None, "accuracy": None}


def test_it_draws_a_reliability_diagram_on_the_diagonal_for_a_calibrated_model(held_out):
    _, (logits, labels) = held_out
    probs = scaled_probs(logits, 1.0)
    bins = reliability_diagram(probs, labels, n_bins=10)
    assert sum(b["count"] for b in bins) == len(labels)
    for b in bins:
        if b["count"] >= 200:
            assert b["lo"] <= b["confidence"] <= b["hi"]
            assert abs(b["accuracy"] - b["confidence"]) < 0.05
    assert expected_calibration_error(probs, labels) < 0.03


def test_it_refuses_empty_or_mismatched_input():
    with pytest.raises(ValueError, match="non-empty"):
        fit_temperature(np.zeros((0, 3)), np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="non-empty"):
        expected_calibration_error(np.zeros((0, 3)), np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="labels"):
        expected_calibration_error(np.full((2, 3), 1 / 3), np.array([0, 3]))
