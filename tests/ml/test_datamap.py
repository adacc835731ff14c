"""The data map and what the galleries read: every scored image's file and probabilities, each
dataset image's features and probabilities in one pass, a seeded 2-D layout, and Grad-CAM
through a loaded model."""

import numpy as np
import pytest

from workers.ml.datamap import features_and_probabilities, layout, map_dataset
from workers.ml.errors import MLError
from workers.ml.predict import LoadedModel, model_inputs

pytestmark = pytest.mark.slow


def test_the_scored_record_names_each_image_and_its_calibrated_probabilities(bottleneck_run):
    result, _ = bottleneck_run
    scored = result.scored
    assert len(scored["paths"]) == len(scored["probabilities"]) == len(scored["truth"]) == 30
    assert all(p.startswith("validation/") for p in scored["paths"])
    probs = np.array(scored["probabilities"])
    assert probs.shape == (30, 3) and np.allclose(probs.sum(axis=1), 1, atol=2e-3)
    assert probs.argmax(axis=1).tolist() == scored["predicted"]
    # The evaluation's mistakes are the scored rows whose prediction is wrong, with the same confidence.
    for mistake in result.evaluation["confident_mistakes"]:
        row = scored["paths"].index(mistake["path"])
        assert scored["truth"][row] != scored["predicted"][row]
        assert probs[row].max() == pytest.approx(mistake["confidence"], abs=1e-4)


def test_the_map_places_every_dataset_image_and_repeats_with_its_seed(bottleneck_run, three_class_dir):
    result, _ = bottleneck_run
    data_map = map_dataset(model_dir=result.model_dir, sha256=result.sha256, dataset_dir=three_class_dir, seed=3)
    assert data_map.coordinates.shape == (120, 2) and np.isfinite(data_map.coordinates).all()
    assert len(data_map.paths) == len(data_map.labels) == 120 and data_map.probabilities.shape == (120, 3)
    assert data_map.class_names == ["circle", "square", "triangle"]
    # The validation rows are the probabilities evaluation scored the same files with.
    scored = dict(zip(result.scored["paths"], result.scored["probabilities"], strict=True))
    for path, row in zip(data_map.paths, data_map.probabilities, strict=True):
        if path in scored:
            assert np.allclose(row, scored[path], atol=1e-3)
    loaded = LoadedModel.load(result.model_dir)
    files = [three_class_dir / p for p in data_map.paths]
    batch = model_inputs([f.read_bytes() for f in files[:40]], loaded.image_size)
    features, _ = features_and_probabilities(loaded.keras_model, [batch])
    assert features.shape == (40, 512)  # VGG16's last block, averaged over space
    assert np.array_equal(layout(features, seed=3), layout(features, seed=3))


def test_the_map_of_a_small_convnet_and_too_few_images():
    from workers.ml.models import build_scratch_model

    model = build_scratch_model((32, 32), 3)
    batch = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3)).astype(np.uint8)
    features, probs = features_and_probabilities(model, [batch])
    assert features.shape == (5, 64) and probs.shape == (5, 3)  # conv3's 64 maps
    with pytest.raises(MLError, match="at least 3 images"):
        layout(features[:2], seed=0)


def test_a_loaded_model_explains_its_answers(bottleneck_run, three_class_dir):
    result, _ = bottleneck_run
    loaded = LoadedModel.load(result.model_dir)
    files = sorted((three_class_dir / "validation").glob("*/*.jpg"))[:2]
    batch = model_inputs([f.read_bytes() for f in files], loaded.image_size)
    explanations = loaded.explain(batch)
    assert [e.layer for e in explanations] == ["block5_conv3"] * 2
    assert all(e.heatmap.shape == (32, 32) and 0 <= e.heatmap.min() <= e.heatmap.max() <= 1 for e in explanations)
    assert [e.class_index for e in explanations] == loaded.run(batch).argmax(axis=1).tolist()
