import keras
import numpy as np
import pytest

from workers.ml.augment import build_augmentation
from workers.ml.config import parse_augmentation


def augment(options, images, training=True, train_images=None, default_rescale=None):
    aug = build_augmentation(
        parse_augmentation(options, "scratch"), train_images, seed=3, default_rescale=default_rescale
    )
    return np.asarray(aug(images, training=training))


def marker_batch(n=16, size=16):
    """n copies of a flat grey image with one bright pixel up and left of centre."""
    images = np.full((n, size, size, 3), 100.0, np.float32)
    images[:, 3, 4, :] = 250.0
    return images


def square_batch(n=8, size=16, side=4):
    images = np.full((n, size, size, 3), 100.0, np.float32)
    lo = (size - side) // 2
    images[:, lo : lo + side, lo : lo + side, :] = 250.0
    return images


def test_it_mirrors_with_horizontal_flip():
    images = marker_batch()
    out = augment({"horizontal_flip": True}, images)
    mirrored = [np.array_equal(o, images[0][:, ::-1]) for o in out]
    same = [np.array_equal(o, images[0]) for o in out]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert any(mirrored) and any(same)


def test_it_flips_upside_down_with_vertical_flip():
    images = marker_batch()
    out = augment({"vertical_flip": True}, images)
    assert any(np.array_equal(o, images[0][::-1]) for o in out)
    assert not any(np.array_equal(o, images[0][:, ::-1]) for o in out)


def test_it_moves_a_marker_pixel_with_rotation():
    images = marker_batch()
    out = augment({"rotation_range": 90}, images)
    assert sum(o[3, 4, 0] < 200 for o in out) >= len(out) // 2


def test_it_scales_pixels_with_rescale_in_training_and_inference():
    images = marker_batch(2)
    np.testing.assert_allclose(augment({"rescale": 0.5}, images), images * 0.5)
    np.testing.assert_allclose(augment({"rescale": 0.5}, images, training=False), images * 0.5)


def test_it_zooms_in_below_one_and_out_above_one_like_imagedatagenerator():
    images = square_batch()
    bright = (images[..., 0] > 200).sum(axis=(1, 2))
    zoomed_in = (augment({"zoom_range": [0.5, 0.5]}, images)[..., 0] > 200).sum(axis=(1, 2))
    zoomed_out = (augment({"zoom_range": [2.0, 2.0]}, images)[..., 0] > 200).sum(axis=(1, 2))
    assert (zoomed_in > bright).all()
    assert (zoomed_out < bright).all()


@pytest.mark.parametrize("option", ["width_shift_range", "height_shift_range"])
def test_it_shifts_and_fills_with_cval_in_constant_mode(option):
    images = square_batch()
    out = augment({option: 0.4, "fill_mode": "constant", "cval": 7.0}, images)
    assert not np.allclose(out, images)
    assert (out == 7.0).any()


def test_it_fills_with_nearest_pixels_by_default():
    images = square_batch()
    out = augment({"width_shift_range": 0.4, "cval": 7.0}, images)
    assert not np.allclose(out, images)
    assert out.min() >= 100.0 - 1e-3


def test_it_shears_the_image():
    images = square_batch()
    out = augment({"shear_range": 45, "fill_mode": "constant"}, images)
    assert not np.allclose(out, images)


def test_it_shifts_all_channels_together_within_the_image_range():
    rng = np.random.default_rng(0)
    images = rng.uniform(50, 200, (8, 8, 8, 3)).astype(np.float32)
    out = augment({"channel_shift_range": 100}, images)
    assert not np.allclose(out, images)
    for o, i in zip(out, images, strict=True):
        assert o.min() >= i.min() - 1e-3 and o.max() <= i.max() + 1e-3
        inside = (o > i.min() + 1e-3) & (o < i.max() - 1e-3)
        delta = (o - i)[inside.all(axis=-1)]
        if len(delta):
            np.testing.assert_allclose(delta, delta[0:1].repeat(len(delta), 0), atol=1e-3)


def test_it_centres_and_normalises_each_sample_in_training_and_inference():
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    for training in (True, False):
        out = augment({"samplewise_center": True, "samplewise_std_normalization": True}, images, training=training)
        np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-4)
        np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-3)


def test_it_fits_featurewise_statistics_on_training_images_and_saves_them(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.normal([10, 100, 200], [1, 5, 20], (32, 8, 8, 3)).astype(np.float32)
    options = {"featurewise_center": True, "featurewise_std_normalization": True}
    aug = build_augmentation(parse_augmentation(options, "scratch"), [images[:16], images[16:]])
    out = np.asarray(aug(images, training=False))
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-3)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-3)
    inputs = keras.Input((8, 8, 3))
    keras.Model(inputs, aug(inputs)).save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(reloaded(images)), out, atol=1e-4)


def test_it_augments_only_in_training():
    images = marker_batch()
    options = {
        "rotation_range": 90,
        "width_shift_range": 0.3,
        "height_shift_range": 0.3,
        "shear_range": 30,
        "zoom_range": 0.3,
        "channel_shift_range": 50,
        "horizontal_flip": True,
        "vertical_flip": True,
    }
    np.testing.assert_array_equal(augment(options, images, training=False), images)
    assert not np.allclose(augment(options, images, training=True), images)


@pytest.mark.parametrize(
    "option",
    [
        {"rotation_range": 30},
        {"width_shift_range": 0.2},
        {"height_shift_range": 0.2},
        {"shear_range": 11.46},
        {"zoom_range": 0.3},
        {"zoom_range": [0.8, 1.1]},
        {"channel_shift_range": 20},
        {"horizontal_flip": True},
        {"vertical_flip": True},
        {"rotation_range": 10, "fill_mode": "constant", "cval": 40},
        {"rotation_range": 10, "fill_mode": "wrap"},
        {"rotation_range": 10, "fill_mode": "reflect"},
        {"rescale": 0.5},
        {"samplewise_center": True, "samplewise_std_normalization": True},
        {"featurewise_center": True, "featurewise_std_normalization": True},
    ],
)
def test_every_option_saves_loads_and_predicts_the_same(option, tmp_path):
    from workers.ml.augment import build_random_augmentation, build_standardization
    from workers.ml.models import build_scratch_model, with_augmentation

    cfg = parse_augmentation(option, "scratch")
    images = np.random.default_rng(1).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model = build_scratch_model((32, 32), 3, build_standardization(cfg, [images], default_rescale=1 / 255))
    random = build_random_augmentation(cfg, seed=3)
    training = with_augmentation(model, random)
    # The random layers wrap the saved model; they are not in it.
    assert (training is model) if random is None else (training.layers[-1] is model)
    training(images, training=True)  # the random transforms run
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(
        np.asarray(loaded(images, training=False)), np.asarray(model(images, training=False)), rtol=0, atol=1e-6
    )
