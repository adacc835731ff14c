"""The light backbone end to end: bottleneck features, a head, a saved model that serves.

Randomly initialised MobileNetV2 features vanish (about 1e-12: every BatchNorm layer keeps its
initial statistics), so with weights "none" nothing can be learnt from them; this test shows the
wiring, and learning is shown with VGG16. With ImageNet weights the features are informative."""

import json

from tests.ml.conftest import tiny_config
from workers.ml.predict import LoadedModel
from workers.ml.train import train


def test_it_trains_a_mobilenet_v2_bottleneck_model_that_serves(two_class_dir, tmp_path):
    result = train(
        config=tiny_config("bottleneck", backbone="mobilenet_v2", epochs=2, head={"units": 32}),
        dataset_dir=two_class_dir,
        output_dir=tmp_path / "model",
        cache_dir=tmp_path / "cache",
        dataset_hash="two-v1",
    )
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
