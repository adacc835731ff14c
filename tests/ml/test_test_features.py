"""The test split's base features, kept beside a bottleneck cache entry (docs/decisions.md, "Test
features beside the entry"): a cache hit runs no image through the base, and the evaluation they give
is what the saved model computes."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from workers.ml import features
from workers.ml import train as train_module
from workers.ml.errors import Cancelled
from workers.ml.predict import LoadedModel, model_inputs


def run(config, dataset_dir, tmp_path, cache_dir, name, **kwargs):
    return train_module.train(
        config=config,
        dataset_dir=dataset_dir,
        output_dir=tmp_path / name,
        cache_dir=cache_dir,
        dataset_hash="with-test",
        **kwargs,
    )


def count_extractions(monkeypatch):
    """One entry per pass of a network over a split's images (train, validation or test)."""
    calls = []
    real = features.outputs_by_batch

    def counting(*args, **kwargs):
        calls.append(1)
        yield from real(*args, **kwargs)

    monkeypatch.setattr(features, "outputs_by_batch", counting)
    return calls


def decoded_files(monkeypatch):
    """Every stored image file the data pipeline decodes, whichever network it then goes through."""
    from workers.ml import data

    decoded = []
    real = data.decode_file

    def recording(path, *args, **kwargs):
        decoded.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data, "decode_file", recording)
    return decoded


def scored_probabilities(monkeypatch):
    """The calibrated probabilities each run's headline evaluation is computed from, unrounded."""
    seen = []
    real = train_module._evaluation

    def keeping(probs, split, run_, **kwargs):
        if split is run_.scored:
            seen.append(np.array(probs))
        return real(probs, split, run_, **kwargs)

    monkeypatch.setattr(train_module, "_evaluation", keeping)
    return seen


def base_outputs(loaded, files):
    """What the saved model's preprocessing and base compute for ``files``, in float32."""
    model = loaded.keras_model
    base = keras.Sequential(
        [keras.Input((*loaded.image_size, 3)), model.get_layer("preprocess"), model.get_layer("vgg16")]
    )
    images = model_inputs([f.read_bytes() for f in files], loaded.image_size).astype(np.float32)
    return np.asarray(base(images, training=False))


def confusion(truth, predicted, n):
    matrix = np.zeros((n, n), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        matrix[t, p] += 1
    return matrix.tolist()


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_test_evaluation_from_stored_features_is_what_the_saved_model_computes(
    with_test_split, tmp_path, monkeypatch, precision
):
    seen = scored_probabilities(monkeypatch)
    cache = tmp_path / "features"
    config = tiny_config("bottleneck", precision=precision)
    reports = []
    first = run(config, with_test_split, tmp_path, cache, "first", on_progress=reports.append)
    assert first.timings["precision"]["used"] == precision
    assert first.timings["extracted_images"] == 2 * (24 + 8) and first.timings["extracted_test_images"] == 12
    assert first.evaluation["split"] == "test" and first.scored["split"] == "test"
    # One progress bar over train (2 batches), validation (1) and test (1).
    extracting = [(r.batch, r.batches) for r in reports if r.phase == "extracting"]
    assert extracting == [(1, 4), (2, 4), (3, 4), (4, 4)]
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions)

    # The saved model, loaded back as serving loads it, on the test files. With bfloat16 training
    # features the test features must still be the float32 base's, or this would be far from 1e-5.
    loaded = LoadedModel.load(first.model_dir)
    files = [with_test_split / path for path in first.scored["paths"]]
    served = loaded.predict([f.read_bytes() for f in files])
    np.testing.assert_allclose(seen[0], served, atol=1e-5, rtol=0)
    assert first.evaluation["confusion_matrix"] == confusion(first.scored["truth"], served.argmax(axis=1), 2)
    assert first.scored["predicted"] == served.argmax(axis=1).tolist()
    # The probabilities here are nearly 0 and 1, where bfloat16's rounding would hide: the stored
    # features themselves are the loaded model's float32 base outputs (bfloat16 moves them ~1 %).
    (entry,) = cache.iterdir()
    stored = np.load(features.test_features_path(entry, first.class_names, first.scored["paths"]))
    np.testing.assert_allclose(stored, base_outputs(loaded, files), rtol=1e-5, atol=1e-6)

    # A second run on the same data: a cache hit, and no image through the base, test included.
    calls, decoded = count_extractions(monkeypatch), decoded_files(monkeypatch)
    reports.clear()
    second = run(config, with_test_split, tmp_path, cache, "second", on_progress=reports.append)
    assert calls == [] and decoded == []
    assert second.timings["cache_hit"] is True
    assert (second.timings["extracted_images"], second.timings["extracted_test_images"]) == (0, 0)
    assert second.timings["test_extraction_s"] == 0.0
    assert not [r for r in reports if r.phase == "extracting"]
    assert second.evaluation["confusion_matrix"] == first.evaluation["confusion_matrix"]
    assert second.evaluation["accuracy"] == first.evaluation["accuracy"]
    assert second.scored["predicted"] == first.scored["predicted"]
    np.testing.assert_allclose(seen[1], seen[0], atol=1e-5, rtol=0)


def test_an_entry_written_before_test_features_were_kept_gets_them_on_its_next_hit(
    with_test_split, tmp_path, monkeypatch
):
    cache = tmp_path / "features"
    config = tiny_config("bottleneck", epochs=1, precision="float32")
    first = run(config, with_test_split, tmp_path, cache, "first")
    (entry,) = cache.iterdir()
    # What makes an entry match is what it was before test features were kept.
    assert set(json.loads((entry / "meta.json").read_text())) == {"class_names", "train", "validation"}
    (stored,) = entry.glob("test-*.npy")
    assert stored == features.test_features_path(entry, first.class_names, first.scored["paths"])
    expected = np.load(stored)
    assert expected.dtype == np.float32 and expected.shape[0] == 12
    stored.unlink()  # now as an entry written before this change

    calls = count_extractions(monkeypatch)
    reports = []
    again = run(config, with_test_split, tmp_path, cache, "again", on_progress=reports.append)
    assert calls == [1]  # the test images, and only them
    assert again.timings["cache_hit"] is True and again.timings["extracted_images"] == 0
    assert again.timings["extracted_test_images"] == 12
    assert [(r.batch, r.batches, r.fraction) for r in reports if r.phase == "extracting"] == [(1, 1, 0.5)]
    np.testing.assert_allclose(np.load(stored), expected, rtol=1e-6)
    assert again.evaluation["confusion_matrix"] == first.evaluation["confusion_matrix"]
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json", stored.name, "train.npy", "validation.npy"]


def test_a_cancel_during_test_extraction_keeps_the_entry_and_leaves_no_test_file(with_test_split, tmp_path):
    cache = tmp_path / "features"
    config = tiny_config("bottleneck", epochs=1, precision="float32")

    def stored():  # asked before every batch: true once train and validation are stored
        return any(cache.glob("*/meta.json"))

    with pytest.raises(Cancelled):
        run(config, with_test_split, tmp_path, cache, "cancelled", should_stop=stored)
    assert not (tmp_path / "cancelled").exists()
    (entry,) = cache.iterdir()  # no hidden temporary beside it
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json", "train.npy", "validation.npy"]
    after = run(config, with_test_split, tmp_path, cache, "after")
    assert after.timings["cache_hit"] is True and after.timings["extracted_test_images"] == 12


def base_and_images(n):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    images = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    return model, images, tf.data.Dataset.from_tensor_slices(images).batch(2)


def test_test_features_are_named_by_the_test_files_and_classes(tmp_path):
    entry = tmp_path / "key"
    path = features.test_features_path(entry, ["a", "b"], ["test/a/1.jpg", "test/b/2.jpg"])
    assert path.parent == entry and path.name.startswith("test-") and len(path.name) == len("test-.npy") + 16
    assert features.test_features_path(entry, ["a", "b"], ["test/a/1.jpg", "test/b/2.jpg"]) == path
    assert features.test_features_path(entry, ["a", "b"], ["test/a/1.jpg"]) != path
    assert features.test_features_path(entry, ["b", "a"], ["test/a/1.jpg", "test/b/2.jpg"]) != path


def test_test_features_are_written_whole_and_read_memory_mapped(tmp_path):
    model, images, data = base_and_images(5)
    entry = tmp_path / "key"
    entry.mkdir()
    path = features.test_features_path(entry, ["a", "b"], [f"test/a/{i}.jpg" for i in range(5)])
    assert features.read_test_features(path, 5) is None  # absent
    found = features.extract_test_features(path, model, data, 5)
    assert isinstance(found, np.memmap) and not found.flags.writeable
    np.testing.assert_allclose(found, np.asarray(model(images)), rtol=1e-6)
    assert features.read_test_features(path, 4) is None  # another split's count
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"] and list(entry.iterdir()) == [path]
    path.write_bytes(b"damaged")
    assert features.read_test_features(path, 5) is None


@pytest.mark.parametrize("failure", ["cancelled", "fewer images than announced"])
def test_a_test_extraction_that_fails_leaves_no_file(tmp_path, failure):
    model, _, data = base_and_images(5)
    entry = tmp_path / "key"
    entry.mkdir()
    path = features.test_features_path(entry, ["a", "b"], ["test/a/1.jpg"])
    polls = []

    def should_stop():
        polls.append(1)
        return failure == "cancelled" and len(polls) > 2

    with pytest.raises(Cancelled if failure == "cancelled" else ValueError):
        features.extract_test_features(path, model, data, 5 if failure == "cancelled" else 6, should_stop=should_stop)
    assert len(polls) == 3  # two batches written, the third refused
    assert list(entry.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["key"]
