"""The light backbone end to end: bottleneck features, a head, a saved model that serves.

Randomly initialised MobileNetV2 features vanish (about 1e-12: every BatchNorm layer keeps its
initial statistics), so with weights "none" nothing can be learnt from them; this test shows the
wiring, and learning is shown with VGG16. With ImageNet weights the features are informative."""

import json

import numpy as np
import pytest

from tests.ml.conftest import tiny_config
from workers.ml.predict import LoadedModel, load_verified_model
from workers.ml.train import train


@pytest.fixture(scope="module")
def mobilenet_bottleneck(two_class_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("mobilenet")
    return train(
        config=tiny_config("bottleneck", backbone="mobilenet_v2", epochs=2, head={"units": 32}),
        dataset_dir=two_class_dir,
        output_dir=root / "model",
        cache_dir=root / "cache",
        dataset_hash="two-v1",
    )


def test_it_trains_a_mobilenet_v2_bottleneck_model_that_serves(mobilenet_bottleneck, two_class_dir):
    result = mobilenet_bottleneck
    info = json.loads((result.model_dir / "model.json").read_text())
    assert info["backbone"] == "mobilenet_v2" and info["class_names"] == ["circle", "square"]
    assert len(result.history) == 2
    # The evaluation counted every validation image once, its accuracy is the confusion matrix's
    # diagonal over those images, and the saved model served what was evaluated.
    matrix = result.evaluation["confusion_matrix"]
    assert sum(map(sum, matrix)) == result.evaluation["n"] == 20
    assert result.evaluation["accuracy"] == sum(matrix[i][i] for i in range(len(matrix))) / 20
    assert result.round_trip["max_abs_diff"] <= 1e-5
    loaded = LoadedModel.load(result.model_dir, expected_sha256=result.sha256)
    files = sorted((two_class_dir / "validation" / "circle").iterdir())[:3]
    probabilities = loaded.predict([f.read_bytes() for f in files])
    assert probabilities.shape == (3, 2)
    assert abs(float(probabilities.sum(axis=1).mean()) - 1.0) < 1e-5


def test_it_fine_tunes_mobilenet_v2_with_the_forms_default_unfreeze(mobilenet_bottleneck, two_class_dir, tmp_path):
    # The form sends an empty unfreeze (tests/experiments/test_presets.py); it means the last block.
    augmentation = {"shear_range": 11.4592, "zoom_range": 0.2, "horizontal_flip": True}
    config = tiny_config("finetune", backbone="mobilenet_v2", epochs=1, augmentation=augmentation)
    assert config.unfreeze == ("top",)
    base = mobilenet_bottleneck
    result = train(
        config=config,
        dataset_dir=two_class_dir,
        output_dir=tmp_path / "finetune",
        cache_dir=tmp_path / "cache",
        dataset_hash="two-v1",
        base_model_dir=base.model_dir,
    )
    assert result.round_trip["max_abs_diff"] <= 1e-5
    assert result.base_evaluation["n"] == result.evaluation["n"] == 20
    assert result.base_evaluation["confusion_matrix"] == base.evaluation["confusion_matrix"]
    # Only the top block trained: every other layer of the backbone kept its base's weights.
    before = load_verified_model(base.model_dir, base.sha256).get_layer("mobilenet_v2")
    after = load_verified_model(result.model_dir, result.sha256).get_layer("mobilenet_v2")
    changed = {
        layer.name
        for layer, tuned in zip(before.layers, after.layers, strict=True)
        if any(not np.array_equal(a, b) for a, b in zip(layer.get_weights(), tuned.get_weights(), strict=True))
    }
    assert changed and all(name.startswith(("Conv_1", "out_relu")) for name in changed)
