"""Grad-CAM points where the class is decided: a small convnet trained on a coloured patch placed at
random looks at the patch; the last convolutional layer is found in each backbone."""

import io

import keras
import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

from workers.ml.gradcam import GradCam, overlay_png
from workers.ml.predict import LoadedModel

pytestmark = pytest.mark.slow

SIZE, PATCH = 64, 12  # 64 px: the convnet's last maps are 12x12, fine enough to localise
COLOURS = {"red": (230, 30, 30), "blue": (30, 60, 230)}


def patch_image(colour: str, rng) -> tuple[np.ndarray, tuple[int, int]]:
    """Grey noise with one coloured square at a random place: only the square tells the class."""
    image = rng.integers(70, 150, (SIZE, SIZE, 3)).astype(np.uint8)
    y, x = (int(v) for v in rng.integers(0, SIZE - PATCH, 2))
    image[y : y + PATCH, x : x + PATCH] = COLOURS[colour]
    return image, (y, x)


@pytest.fixture(scope="module")
def patch_model(tmp_path_factory):
    from workers.ml.train import train

    rng = np.random.default_rng(5)
    root = tmp_path_factory.mktemp("patches")
    for split, count in (("train", 40), ("validation", 10)):
        for colour in COLOURS:
            folder = root / split / colour
            folder.mkdir(parents=True)
            for i in range(count):
                buffer = io.BytesIO()
                Image.fromarray(patch_image(colour, rng)[0]).save(buffer, format="PNG")
                (folder / f"{i}.png").write_bytes(buffer.getvalue())
    out = tmp_path_factory.mktemp("patch-model") / "model"
    train(config=tiny_config("scratch", epochs=8, batch_size=8, image_size=[SIZE, SIZE]), dataset_dir=root, output_dir=out,
          cache_dir=tmp_path_factory.mktemp("patch-cache"), dataset_hash="patches")  # fmt: skip
    return LoadedModel.load(out)


def test_the_heatmap_points_at_the_patch_that_decides_the_class(patch_model):
    explainer = GradCam(patch_model._model)
    assert explainer.layer == "conv3"
    rng = np.random.default_rng(99)
    hits, n = 0, 20
    for i in range(n):
        colour = ("red", "blue")[i % 2]
        image, (y, x) = patch_image(colour, rng)
        probabilities = patch_model.run(image[None])[0]
        assert patch_model.class_names[int(np.argmax(probabilities))] == colour
        (explanation,) = explainer.explain(image[None])
        heat = explanation.heatmap
        assert heat.shape == (SIZE, SIZE) and heat.max() == pytest.approx(1.0) and heat.min() == 0
        inside = np.zeros_like(heat, bool)
        # The last maps are 12x12, one cell per ~5 px: the patch counts with a 4 px margin.
        inside[max(0, y - 4) : y + PATCH + 4, max(0, x - 4) : x + PATCH + 4] = True
        assert heat[inside].mean() > 3 * heat[~inside].mean()
        hits += bool(inside[np.unravel_index(np.argmax(heat), heat.shape)])
    # Measured here: the peak on the patch in 38 of 40 images, the patch at least 3.4x as hot as the rest.
    assert hits >= 17, f"the heatmap's peak was on the patch in {hits} of {n} images"


def test_an_explanation_for_another_class_and_the_overlay(patch_model):
    image, _ = patch_image("red", np.random.default_rng(3))
    explainer = GradCam(patch_model._model)
    blue = patch_model.class_names.index("blue")
    (explanation,) = explainer.explain(image[None], class_indices=[blue])
    assert explanation.class_index == blue and np.isfinite(explanation.heatmap).all()
    png = overlay_png(image, explanation.heatmap)
    assert Image.open(io.BytesIO(png)).size == (SIZE, SIZE)


def test_it_finds_the_last_convolution_of_each_backbone(bottleneck_run):
    result, _ = bottleneck_run
    vgg = GradCam(LoadedModel.load(result.model_dir)._model)
    assert vgg.layer == "block5_conv3"
    explanation = vgg.explain(np.full((1, 32, 32, 3), 128, np.uint8))[0]
    assert explanation.heatmap.shape == (32, 32) and np.isfinite(explanation.heatmap).all()

    inputs = keras.Input((32, 32, 3))
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(base(inputs)))
    mobilenet = GradCam(keras.Model(inputs, outputs))
    assert mobilenet.layer == "out_relu"
    assert mobilenet.explain(np.zeros((2, 32, 32, 3), np.uint8))[1].heatmap.shape == (32, 32)
