"""The frozen base's arithmetic (workers/ml/precision.py): measured, chosen, recorded, and never
allowed to change what the saved model computes. Tiny images: emulated bfloat16 is slow on CPUs
without it."""

import json

import keras
import numpy as np
import pytest
from conftest import tiny_config

from workers.ml import features, precision
from workers.ml.backbones import build_base, build_preprocess
from workers.ml.fit import head_steps_per_execution
from workers.ml.predict import load_verified_model, model_inputs
from workers.ml.train import train

SIZE = (32, 32)


def extractor():
    return keras.Sequential([keras.Input((*SIZE, 3)), build_preprocess("vgg16"), build_base("vgg16", SIZE, None, 3)])


def test_a_bfloat16_copy_computes_the_same_features_within_the_tolerance():
    exact = extractor()
    low = precision.low_precision_copy(exact, extractor, "bfloat16")
    assert low.layers[-1].get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in low.weights)  # mixed precision: variables stay float32
    images = np.random.default_rng(0).integers(0, 256, (4, *SIZE, 3)).astype(np.float32)
    a = np.asarray(exact(images), np.float32)
    b = np.asarray(low(images), np.float32)
    error = np.linalg.norm(b - a) / np.linalg.norm(a)
    assert 0 < error < 0.02  # rounded (not the float32 network), yet within 2% of the features


def test_measuring_times_both_precisions_and_weighs_the_rounding_against_the_spread():
    exact = extractor()
    speeds, error = precision.measure(
        {"float32": exact, "bfloat16": precision.low_precision_copy(exact, extractor, "bfloat16")}, SIZE
    )
    assert set(speeds) == {"float32", "bfloat16"} and min(speeds.values()) > 0
    # Random weights: features barely vary between images, so bfloat16's rounding (under 2% of the
    # features themselves) is large against what tells images apart, and auto keeps float32.
    assert error > precision.TOLERANCE
    assert precision.decide({"float32": 1.0, "bfloat16": 100.0}, error) == "float32"


@pytest.mark.parametrize(
    ("speeds", "error", "expected"),
    [
        ({"float32": 30.0, "bfloat16": 57.0}, 2e-2, "bfloat16"),  # faster and close: taken
        ({"float32": 129.0, "bfloat16": 111.0}, 2e-2, "float32"),  # close but slower
        ({"float32": 30.0, "bfloat16": 57.0}, 7e-2, "float32"),  # faster but too far off
        ({"float32": 30.0, "bfloat16": 30.0}, 1e-3, "float32"),  # a tie keeps float32
        ({"float32": 30.0, "bfloat16": 57.0}, float("nan"), "float32"),
    ],
)
def test_it_takes_the_fastest_precision_within_the_tolerance(speeds, error, expected):
    assert precision.decide(speeds, error) == expected


def test_stored_choices_survive_other_keys_and_a_damaged_file(tmp_path):
    cache = tmp_path / "precision.json"
    assert precision.stored(cache, "k") is None
    precision.store(
        cache, "k", precision.Choice("auto", "bfloat16", "measured", {"float32": 1.0, "bfloat16": 2.0}, 0.01)
    )
    precision.store(cache, "other", precision.Choice("auto", "float32", "measured", {}, None))
    again = precision.stored(cache, "k")
    assert (again.used, again.source, again.images_per_s["bfloat16"]) == ("bfloat16", "measured earlier", 2.0)
    cache.write_text("{not json")
    assert precision.stored(cache, "k") is None


def test_the_cache_key_names_the_precision_and_keeps_float32_keys_as_they_were():
    common = {"dataset_hash": "d", "backbone": "vgg16", "weights_identity": "w", "image_size": SIZE}
    keys = {p: features.cache_key(**common, precision=p) for p in ("float32", "bfloat16")}
    assert keys["float32"] == features.cache_key(**common) and keys["float32"] != keys["bfloat16"]


def run(config, dataset_dir, tmp_path, cache_dir, name, **kwargs):
    return train(
        config=config,
        dataset_dir=dataset_dir,
        output_dir=tmp_path / name,
        cache_dir=cache_dir,
        dataset_hash="three-precision",
        **kwargs,
    )


def test_bfloat16_training_features_leave_validation_and_the_saved_model_float32(three_class_dir, tmp_path):
    cache = tmp_path / "features"
    exact = run(tiny_config("bottleneck", precision="float32"), three_class_dir, tmp_path, cache, "f32")
    low = run(tiny_config("bottleneck", precision="bfloat16"), three_class_dir, tmp_path, cache, "bf16")
    assert (exact.timings["precision"]["used"], low.timings["precision"]["used"]) == ("float32", "bfloat16")
    assert low.timings["precision"]["requested"] == "bfloat16"
    assert low.timings["precision"]["source"] == "asked" and low.timings["cache_hit"] is False
    common = {"dataset_hash": "three-precision", "backbone": "vgg16", "weights_identity": "none-seed7"}
    f32, bf16 = (cache / features.cache_key(**common, image_size=SIZE, precision=p) for p in ("float32", "bfloat16"))
    assert sorted(p.name for p in cache.iterdir()) == sorted([f32.name, bf16.name])  # one entry per precision
    # Validation features, which choose the epoch and are evaluated, are float32's exactly.
    np.testing.assert_array_equal(np.load(bf16 / "validation.npy"), np.load(f32 / "validation.npy"))
    train32, train16 = np.load(f32 / "train.npy"), np.load(bf16 / "train.npy")
    error = np.linalg.norm(train16 - train32) / np.linalg.norm(train32)
    assert 0 < error < 0.02  # within 2% of the features themselves
    # The saved base is float32 and answers as evaluated.
    model = load_verified_model(low.model_dir, low.sha256)
    assert {v.dtype for v in model.weights} == {"float32"}
    assert model.get_layer("vgg16").get_layer("block1_conv1").compute_dtype == "float32"
    files = sorted((three_class_dir / "validation").glob("*/*.jpg"))
    probs = np.asarray(model(model_inputs([f.read_bytes() for f in files], SIZE).astype(np.float32)))
    predicted = probs.argmax(axis=1)
    truth = [low.class_names.index(f.parent.name) for f in files]
    assert np.array_equal(np.bincount(np.array(truth) * 3 + predicted, minlength=9).reshape(3, 3),
                          np.array(low.evaluation["confusion_matrix"]))  # fmt: skip


def test_auto_measures_once_per_host_then_reuses_the_choice_and_the_features(three_class_dir, tmp_path):
    choices = tmp_path / "precision.json"
    first = run(tiny_config("bottleneck", epochs=1), three_class_dir, tmp_path, tmp_path / "a", "m1",
                precision_cache=choices)  # fmt: skip
    made = first.timings["precision"]
    assert made["requested"] == "auto" and made["source"] == "measured"
    assert set(made["images_per_s"]) == {"float32", "bfloat16"} and made["relative_error"] > 0
    # The choice is the measurement's: random weights keep float32 (see the test above).
    assert made["used"] == precision.decide(made["images_per_s"], made["relative_error"]) == "float32"
    stored = json.loads(choices.read_text())
    assert [entry["used"] for entry in stored.values()] == [made["used"]]
    # Another dataset cache on the same host: no new measurement.
    second = run(tiny_config("bottleneck", epochs=1), three_class_dir, tmp_path, tmp_path / "b", "m2",
                 precision_cache=choices)  # fmt: skip
    assert second.timings["precision"]["source"] == "measured earlier"
    assert second.timings["precision"]["used"] == made["used"] and second.timings["cache_hit"] is False
    # Same cache again: its stored features, whatever precision they are in.
    third = run(tiny_config("bottleneck", epochs=1), three_class_dir, tmp_path, tmp_path / "b", "m3",
                precision_cache=choices)  # fmt: skip
    assert third.timings["cache_hit"] is True and third.timings["precision"]["source"] == "cached features"
    assert third.timings["precision"]["used"] == made["used"]


def test_a_named_precision_does_not_take_features_of_the_other(three_class_dir, tmp_path):
    cache = tmp_path / "features"
    run(tiny_config("bottleneck", epochs=1, precision="bfloat16"), three_class_dir, tmp_path, cache, "a")
    again = run(tiny_config("bottleneck", epochs=1, precision="float32"), three_class_dir, tmp_path, cache, "b")
    assert again.timings["cache_hit"] is False and again.timings["precision"]["used"] == "float32"


def test_features_are_memory_mapped_and_streamed(three_class_dir, tmp_path):
    result = run(tiny_config("bottleneck", epochs=1, precision="float32"), three_class_dir, tmp_path,
                 tmp_path / "features", "m")  # fmt: skip
    entry = next((tmp_path / "features").iterdir())
    meta = json.loads((entry / "meta.json").read_text())
    found = features.read_entry(entry, meta)
    assert isinstance(found.train, np.memmap) and found.train.shape == (90, 1, 1, 512)
    assert isinstance(found.validation, np.memmap) and not found.train.flags.writeable
    assert result.timings["extracted_images"] == 120
    assert features.read_entry(entry, {**meta, "class_names": ["other"]}) is None
    (entry / "train.npy").write_bytes(b"damaged")
    assert features.read_entry(entry, meta) is None  # extracted again rather than read wrong


def test_streaming_refuses_a_count_that_does_not_match(tmp_path):
    import tensorflow as tf

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    data = tf.data.Dataset.from_tensor_slices(np.ones((5, 2), np.float32)).batch(2)
    with pytest.raises(ValueError, match="expected 6"):
        features.extract_to_file(model, data, tmp_path / "x.npy", 6)
    with pytest.raises(ValueError, match="more images than the 4"):
        features.extract_to_file(model, data, tmp_path / "y.npy", 4)
    features.extract_to_file(model, data, tmp_path / "z.npy", 5)
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), np.asarray(model(np.ones((5, 2)))), rtol=1e-6)


@pytest.mark.parametrize(("units", "batches"), [(256, 6), (256, 7), (8192, 96), (16, 120)])
def test_head_calls_divide_the_epoch_and_stay_short(units, batches):
    head = keras.Sequential([keras.Input((8192,)), keras.layers.Dense(units), keras.layers.Dense(3)])
    steps = head_steps_per_execution(head, 16, batches)
    assert batches % steps == 0  # a call never reads into the next epoch's batches
    estimated_s = steps * 6 * 16 * head.count_params() / 10e9
    assert steps == 1 or estimated_s <= 0.25


def test_head_statistics_read_a_memory_mapped_array_in_blocks_and_match_numpy(tmp_path):
    from workers.ml.models import column_statistics

    values = np.random.default_rng(3).normal(5.0, 2.0, (50, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", values)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    mean, std = column_statistics(mapped, rows=7)  # blocks that do not divide the rows
    np.testing.assert_allclose(mean, values.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, values.astype(np.float64).std(axis=0), rtol=1e-10)
