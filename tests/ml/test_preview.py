import numpy as np
import pytest
from PIL import Image

from workers.ml.errors import ConfigError
from workers.ml.preview import augmentation_preview


def _marker_image(path, size=32):
    image = np.zeros((size, size, 3), np.uint8)
    image[2:10, 2:10] = 255  # a white square in the top-left corner
    Image.fromarray(image).save(path, format="PNG")
    return path


def test_it_shows_the_original_then_augmented_copies(tmp_path):
    paths = [_marker_image(tmp_path / "a.png"), _marker_image(tmp_path / "b.png")]
    rows = augmentation_preview(
        image_paths=paths, augmentation={"horizontal_flip": True, "rotation_range": 30}, image_size=(32, 32), copies=4
    )
    assert len(rows) == 2 and all(len(row) == 5 for row in rows)
    original = rows[0][0]
    assert original.dtype == np.uint8 and original.shape == (32, 32, 3)
    assert original[5, 5].tolist() == [255, 255, 255]
    assert any(not np.array_equal(copy, original) for copy in rows[0][1:])


def test_it_leaves_images_unchanged_without_random_options_and_ignores_standardisation(tmp_path):
    path = _marker_image(tmp_path / "a.png")
    rows = augmentation_preview(
        image_paths=[path], augmentation={"rescale": 1 / 255, "samplewise_center": True}, image_size=(32, 32)
    )
    for copy in rows[0][1:]:
        np.testing.assert_array_equal(copy, rows[0][0])


def test_it_rejects_bad_options_naming_the_key(tmp_path):
    path = _marker_image(tmp_path / "a.png")
    with pytest.raises(ConfigError, match="augmentation.rotation_range"):
        augmentation_preview(image_paths=[path], augmentation={"rotation_range": 999}, image_size=(32, 32))
