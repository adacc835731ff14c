import contextlib
import json

import numpy as np
import pytest
from conftest import tiny_config

from workers.ml import features
from workers.ml.errors import Cancelled, MLError
from workers.ml.predict import load_verified_model, model_inputs
from workers.ml.train import train


def run(config, dataset_dir, tmp_path, cache_dir=None, name="model", **kwargs):
    kwargs.setdefault("dataset_hash", "h")
    return train(
        config=config,
        dataset_dir=dataset_dir,
        output_dir=tmp_path / name,
        cache_dir=cache_dir or tmp_path / "cache",
        **kwargs,
    )


def count_extractions(monkeypatch, scale=1.0):
    calls = []
    real = features.outputs_by_batch

    def counting(*args, **kwargs):
        calls.append(1)
        for batch in real(*args, **kwargs):
            yield batch * scale

    monkeypatch.setattr(features, "outputs_by_batch", counting)
    return calls


def test_it_learns_in_bottleneck_mode_and_saves_a_full_model(bottleneck_run):
    result, reports = bottleneck_run
    assert result.evaluation["accuracy"] > 0.6  # chance is 1/3
    assert result.class_names == ["circle", "square", "triangle"]
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert set(result.history[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}
    assert result.timings["cache_hit"] is False and result.timings["feature_extraction_s"] > 0
    # What duration estimates are measured from: every image extracted once, then 4 epochs over them all.
    assert result.timings["images_per_epoch"] == 3 * (30 + 10)  # three_class_dir's train and validation images
    assert result.timings["extracted_images"] == 3 * (30 + 10) and result.timings["epochs_trained"] == 4
    info = json.loads((result.model_dir / "model.json").read_text())
    assert info["image_size"] == [32, 32] and info["backbone"] == "vgg16"
    assert info["sha256"] == result.sha256 and info["output"] == "softmax"
    assert "bilinear" in info["preprocessing"]["resize"]
    matrix = np.array(result.evaluation["confusion_matrix"])
    assert matrix.sum() == 30 and result.evaluation["labels"] == result.class_names
    assert set(result.evaluation["per_class"]["circle"]) == {"precision", "recall", "f1", "support"}
    model = load_verified_model(result.model_dir, result.sha256)
    assert model.input_shape == (None, 32, 32, 3)  # raw images in, not features


def test_it_reports_progress_through_every_phase(bottleneck_run):
    _, reports = bottleneck_run
    assert [r.phase for r in reports][0] == "extracting"
    assert {"extracting", "training", "evaluating"} <= {r.phase for r in reports}
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    epoch_ends = [r for r in reports if r.logs]
    assert [r.epoch for r in epoch_ends] == [1, 2, 3, 4]


def test_it_reuses_cached_features_without_running_the_base(
    bottleneck_run, three_class_dir, feature_cache, tmp_path, monkeypatch
):
    calls = count_extractions(monkeypatch)
    result = run(
        tiny_config("bottleneck", head={"pooling": "avg"}),
        three_class_dir,
        tmp_path,
        feature_cache,
        dataset_hash="three-v1",
    )
    assert calls == []
    assert result.timings["cache_hit"] is True
    assert result.evaluation["accuracy"] > 0.6


def test_it_misses_the_cache_when_the_seed_changes_random_weights(
    bottleneck_run, three_class_dir, feature_cache, tmp_path, monkeypatch
):
    calls = count_extractions(monkeypatch)
    run(tiny_config("bottleneck", seed=8, epochs=1), three_class_dir, tmp_path, feature_cache, dataset_hash="three-v1")
    assert calls == [1, 1]  # train and validation


def test_it_repeats_a_run_with_the_same_seed(bottleneck_run, three_class_dir, feature_cache, tmp_path):
    first, _ = bottleneck_run
    again = run(tiny_config("bottleneck"), three_class_dir, tmp_path, feature_cache, dataset_hash="three-v1")
    for a, b in zip(first.history, again.history, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)


def test_it_keeps_the_best_epoch_with_early_stopping(bottleneck_run, three_class_dir, feature_cache, tmp_path):
    result = run(
        tiny_config("bottleneck", epochs=30, early_stopping={"patience": 2}),
        three_class_dir,
        tmp_path,
        feature_cache,
        dataset_hash="three-v1",
    )
    losses = [h["val_loss"] for h in result.history]
    assert len(losses) < 30
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert len(losses) == result.best_epoch + 2


def test_the_head_learns_on_features_scaled_a_hundredfold(two_class_dir, tmp_path, monkeypatch):
    count_extractions(monkeypatch, scale=100.0)
    result = run(tiny_config("bottleneck"), two_class_dir, tmp_path, dataset_hash="two-x100")
    assert result.evaluation["accuracy"] > 0.75  # chance is 1/2
    assert json.loads((result.model_dir / "model.json").read_text())["output"] == "sigmoid"


def test_it_fine_tunes_only_the_unfrozen_blocks(bottleneck_run, three_class_dir, tmp_path):
    base_result, _ = bottleneck_run
    config = tiny_config("finetune", epochs=2, learning_rate=1e-5, augmentation={"horizontal_flip": True})
    result = run(config, three_class_dir, tmp_path, base_model_dir=base_result.model_dir)
    assert result.evaluation["accuracy"] > 0.6
    before = load_verified_model(base_result.model_dir, None).get_layer("vgg16")
    after = load_verified_model(result.model_dir, None).get_layer("vgg16")
    for name, changed in (("block4_conv3", False), ("block5_conv3", True)):
        same = np.array_equal(before.get_layer(name).get_weights()[0], after.get_layer(name).get_weights()[0])
        assert same is not changed, name
    # The model's summary says the same: which blocks trained (workers/ml/summary.py).
    rows = {row["name"]: row for row in result.model_info["summary"]["layers"]}
    assert rows["block4_conv3"]["state"] == "frozen" and rows["block5_conv3"]["state"] == "trainable"
    assert rows["vgg16"]["state"] == "partly frozen"


def test_it_refuses_to_fine_tune_without_a_trained_bottleneck(three_class_dir, tmp_path):
    with pytest.raises(MLError, match="fine-tuning needs a trained bottleneck head"):
        run(tiny_config("finetune"), three_class_dir, tmp_path, base_model_dir=None)
    assert not (tmp_path / "model").exists()


def test_it_learns_from_scratch(three_class_dir, tmp_path):
    config = tiny_config("scratch", epochs=5, augmentation={"horizontal_flip": True})
    result = run(config, three_class_dir, tmp_path)
    assert result.evaluation["accuracy"] > 0.6
    info = json.loads((result.model_dir / "model.json").read_text())
    assert info["mode"] == "scratch" and info["backbone"] is None


def stop_after(n):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > n

    return should_stop, calls


def test_it_cancels_training_within_a_batch_and_leaves_nothing(two_class_dir, tmp_path):
    should_stop, calls = stop_after(3)
    batches = []
    with pytest.raises(Cancelled):
        run(
            tiny_config("scratch", epochs=50),
            two_class_dir,
            tmp_path,
            should_stop=should_stop,
            on_progress=lambda p: batches.append(p) if p.phase == "training" and not p.logs else None,
        )
    assert len(batches) == 3  # the batch asked to stop before never ran
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_it_cancels_feature_extraction_between_batches(two_class_dir, tmp_path):
    should_stop, calls = stop_after(1)
    with pytest.raises(Cancelled):
        run(tiny_config("bottleneck"), two_class_dir, tmp_path, dataset_hash="cancel", should_stop=should_stop)
    assert len(calls) == 2
    assert not (tmp_path / "model").exists()
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_the_frozen_prefix_cut_computes_what_the_whole_base_computes(bottleneck_run):
    import keras

    from workers.ml.backbones import set_trainable_blocks
    from workers.ml.modes import finetune as finetune_mode

    base_result, _ = bottleneck_run
    loaded = load_verified_model(base_result.model_dir, None)
    base, preprocess, head = loaded.get_layer("vgg16"), loaded.get_layer("preprocess"), loaded.get_layer("head")
    set_trainable_blocks(base, "vgg16", ("block5",))
    run_ = type("R", (), {"cfg": tiny_config("finetune"), "train": [0] * 30, "val": [0] * 10})()
    split = finetune_mode.split_frozen_prefix(run_, preprocess, base, head)
    assert split is not None and split.prefix.output.shape[1:] == base.get_layer("block4_pool").output.shape[1:]
    assert [w.name for w in split.net.trainable_weights if "block" in w.path] != []
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    # The saved model ends in its calibration; the cut is of the network before it.
    uncalibrated = keras.Model(loaded.inputs[0], loaded.get_layer("calibration").input)
    whole = np.asarray(uncalibrated(images, training=False))
    cut = np.asarray(split.net(split.prefix(images, training=False), training=False))
    np.testing.assert_allclose(cut, whole, rtol=1e-5, atol=1e-6)
    assert isinstance(split.prefix, keras.Model)


def test_it_fine_tunes_without_augmentation_on_prefix_outputs_computed_once(
    bottleneck_run, three_class_dir, tmp_path, monkeypatch
):
    base_result, _ = bottleneck_run
    calls = count_extractions(monkeypatch)
    config = tiny_config("finetune", epochs=3, learning_rate=1e-5)
    result = run(config, three_class_dir, tmp_path, base_model_dir=base_result.model_dir)
    assert calls == [1, 1]  # validation and training prefixes, once each for 3 epochs
    assert result.timings["frozen_prefix_s"] > 0 and len(result.history) == 3
    assert result.evaluation["accuracy"] > 0.6
    before = load_verified_model(base_result.model_dir, None).get_layer("vgg16")
    after = load_verified_model(result.model_dir, None).get_layer("vgg16")
    for name, changed in (("block4_conv3", False), ("block5_conv3", True)):
        same = np.array_equal(before.get_layer(name).get_weights()[0], after.get_layer(name).get_weights()[0])
        assert same is not changed, name


def test_head_training_stops_within_one_compiled_call(two_class_dir, tmp_path):
    reports = []
    should_stop, calls = stop_after(3)  # extraction polls once per batch: 1 train + 1 val
    with pytest.raises(Cancelled):
        run(
            tiny_config("bottleneck", epochs=50),
            two_class_dir,
            tmp_path,
            dataset_hash="c2",
            should_stop=should_stop,
            on_progress=reports.append,
        )
    assert not (tmp_path / "model").exists()
    trained = [r for r in reports if r.phase == "training" and not r.logs]
    assert len(trained) <= 1  # the stop came after the first compiled call: no second one ran


RANDOM_LAYERS = ("RandomRotation", "RandomTranslation", "RandomShear", "RandomZoom", "RandomFlip", "ChannelShift")
EVERY_RANDOM_OPTION = {
    "rotation_range": 20,
    "width_shift_range": 0.1,
    "height_shift_range": 0.1,
    "shear_range": 11.46,
    "zoom_range": 0.2,
    "channel_shift_range": 10,
    "horizontal_flip": True,
    "vertical_flip": True,
    "fill_mode": "constant",
    "cval": 12,
}


def _layer_classes(model) -> set[str]:
    classes = set()
    for layer in model.layers:
        classes.add(type(layer).__name__)
        if hasattr(layer, "layers"):
            classes |= _layer_classes(layer)
    return classes


def test_a_saved_model_loads_back_in_a_fresh_process_before_success(bottleneck_run):
    result, reports = bottleneck_run
    assert result.round_trip["n"] == 8 and result.round_trip["max_abs_diff"] <= 1e-5
    assert "verifying" in {r.phase for r in reports}


def test_scratch_with_every_augmentation_option_serves_without_its_random_layers(three_class_dir, tmp_path):
    augmentation = {**EVERY_RANDOM_OPTION, "rescale": 1 / 255, "samplewise_center": True, "featurewise_center": True}
    augmentation["featurewise_std_normalization"] = True
    result = run(tiny_config("scratch", epochs=1, augmentation=augmentation), three_class_dir, tmp_path)
    assert result.round_trip["max_abs_diff"] <= 1e-5
    saved = load_verified_model(result.model_dir, result.sha256)
    classes = _layer_classes(saved)
    assert not classes & set(RANDOM_LAYERS)
    assert {"Rescaling", "SamplewiseStandardize", "FeaturewiseStandardize"} <= classes  # always-on steps stay


def test_a_fine_tune_with_shear_serves_and_is_measured_against_its_base(bottleneck_run, three_class_dir, tmp_path):
    base_result, _ = bottleneck_run
    config = tiny_config("finetune", epochs=1, learning_rate=1e-5, augmentation=EVERY_RANDOM_OPTION)
    result = run(config, three_class_dir, tmp_path, base_model_dir=base_result.model_dir)
    assert result.round_trip["max_abs_diff"] <= 1e-5
    assert not _layer_classes(load_verified_model(result.model_dir, result.sha256)) & set(RANDOM_LAYERS)
    # The base, measured by the fine-tune on the same images, scores what its own run reported.
    assert result.base_evaluation["accuracy"] == pytest.approx(base_result.evaluation["accuracy"])
    assert result.base_evaluation["confusion_matrix"] == base_result.evaluation["confusion_matrix"]
    info = json.loads((result.model_dir / "model.json").read_text())
    assert info["metrics"]["base_accuracy"] == result.base_evaluation["accuracy"]
    assert info["weights"] == "none"  # the base's weights, not the config default


def _loader(ahead: bool):
    """Where the saved model is loaded back: a process started ahead (as train() does) or a new one."""
    from workers.ml.roundtrip import Verifier

    return Verifier() if ahead else contextlib.nullcontext()


@pytest.mark.parametrize("ahead", [False, True], ids=["new process", "started ahead"])
def test_a_model_that_does_not_load_back_is_refused_with_the_cause(tmp_path, three_class_dir, ahead):
    import keras

    from workers.ml.hashing import file_sha256
    from workers.ml.roundtrip import check_round_trip

    # Keras 3.15's RandomShear saves a negative x_factor that its own constructor refuses.
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.RandomShear(x_factor=0.2, y_factor=0.0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x)))
    folder = tmp_path / "broken"
    folder.mkdir()
    model.save(folder / "model.keras")
    digest = file_sha256(folder / "model.keras")
    (folder / "model.json").write_text(json.dumps({"class_names": ["a", "b", "c"], "image_size": [32, 32]}))
    image = next((three_class_dir / "validation" / "circle").iterdir())
    with pytest.raises(MLError, match="does not load back as serving loads it: .*could not be deserialized"):
        with _loader(ahead) as verifier:
            check_round_trip(folder, digest, [image], np.zeros((1, 3), np.float32), verifier=verifier)
    with pytest.raises(MLError, match="does not match its recorded checksum"):
        with _loader(ahead) as verifier:
            check_round_trip(folder, "0" * 64, [image], np.zeros((1, 3), np.float32), verifier=verifier)


@pytest.mark.parametrize("ahead", [False, True], ids=["new process", "started ahead"])
def test_a_model_that_answers_differently_once_loaded_is_refused(bottleneck_run, three_class_dir, ahead):
    from workers.ml.predict import load_verified_model
    from workers.ml.roundtrip import check_round_trip

    result, _ = bottleneck_run
    image = next((three_class_dir / "validation" / "circle").iterdir())
    wrong = np.full((1, 3), 1 / 3, np.float32)
    with pytest.raises(MLError, match="answers differently from the trained one"):
        with _loader(ahead) as verifier:
            check_round_trip(result.model_dir, result.sha256, [image], wrong, verifier=verifier)
    # And the same model passes against its own answer.
    model = load_verified_model(result.model_dir, result.sha256)
    right = np.asarray(model(model_inputs([image.read_bytes()], (32, 32)).astype(np.float32)))
    with _loader(ahead) as verifier:
        done = check_round_trip(result.model_dir, result.sha256, [image], right, verifier=verifier)
    assert done.n == 1 and done.max_abs_diff <= 1e-5


def test_a_verifier_whose_run_ends_without_a_model_exits_quietly():
    import subprocess
    import sys

    from workers.ml.roundtrip import _ROOT, _child_env

    done = subprocess.run(
        [sys.executable, "-m", "workers.ml.roundtrip", "--wait"],
        input="", capture_output=True, text=True, env=_child_env(), cwd=_ROOT, timeout=300,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "")


def test_the_headline_is_measured_once_on_the_test_split(with_test_split, tmp_path):
    from workers.ml.predict import LoadedModel

    result = run(tiny_config("bottleneck"), with_test_split, tmp_path, dataset_hash="with-test")
    evaluation = result.evaluation
    assert (evaluation["split"], evaluation["n"]) == ("test", 12)
    assert len(result.scored["truth"]) == len(result.scored["predicted"]) == 12 and result.scored["split"] == "test"
    assert np.array(evaluation["confusion_matrix"]).sum() == 12
    assert all(m["path"].startswith("test/") for m in evaluation["confident_mistakes"])
    # The saved model, served, scores the test files exactly as the evaluation says.
    loaded = LoadedModel.load(result.model_dir)
    files = sorted((with_test_split / "test").glob("*/*.jpg"))
    predicted = loaded.predict([f.read_bytes() for f in files]).argmax(axis=1)
    truth = np.array([result.class_names.index(f.parent.name) for f in files])
    assert float((predicted == truth).mean()) == pytest.approx(evaluation["accuracy"])
    # The epoch was chosen on validation: the history's best val_accuracy is not the test accuracy's source.
    assert result.history[result.best_epoch - 1]["val_accuracy"] is not None


def test_a_dataset_without_test_images_is_scored_on_validation(bottleneck_run):
    result, _ = bottleneck_run
    assert (result.evaluation["split"], result.evaluation["n"]) == ("validation", 30)


def test_balanced_class_weights_make_each_class_weigh_the_same():
    from workers.ml.fit import balanced_class_weights

    weights = balanced_class_weights(np.array([0] * 30 + [1] * 10), 2)
    assert weights == {0: 40 / 60, 1: 40 / 20}
    assert 30 * weights[0] == pytest.approx(10 * weights[1])


def test_it_trains_with_balanced_class_weights_in_every_mode(bottleneck_run, three_class_dir, tmp_path):
    base_result, _ = bottleneck_run
    head = run(tiny_config("bottleneck", epochs=1, class_weight="balanced"), three_class_dir, tmp_path, name="b")
    assert head.model_info["config"]["class_weight"] == "balanced"
    augmented = tiny_config("finetune", epochs=1, class_weight="balanced", augmentation={"horizontal_flip": True})
    tuned = run(augmented, three_class_dir, tmp_path, name="f", base_model_dir=base_result.model_dir)
    assert len(tuned.history) == 1 and tuned.history[0]["loss"] is not None
    scratch = run(tiny_config("scratch", epochs=1), three_class_dir, tmp_path, name="s")
    # What serves and what is exported carries no training state: a saved file that named the
    # optimizer would not load where the engine's optimizer class is unknown (an export's runtime).
    for result in (base_result, head, tuned, scratch):
        assert _compile_configs(result.model_dir) == [], result.model_info["mode"]


def _compile_configs(model_dir) -> list:
    """Every non-empty compile config (optimizer, loss, ...) in a saved model.keras, nested models included."""
    import zipfile

    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("compile_config"):
                found.append(node["compile_config"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with zipfile.ZipFile(model_dir / "model.keras") as archive:
        walk(json.loads(archive.read("config.json")))
    return found


def test_the_saved_model_returns_calibrated_probabilities_with_intervals_reported(bottleneck_run, three_class_dir):
    from workers.ml.calibration import apply_temperature
    from workers.ml.predict import LoadedModel

    result, _ = bottleneck_run
    evaluation = result.evaluation
    calibration = evaluation["calibration"]
    assert calibration["temperature"] > 0 and set(calibration) >= {"ece_before", "ece_after"}
    lo, hi = evaluation["accuracy_ci95"]
    assert lo < evaluation["accuracy"] <= hi and hi - lo > 0.05  # 30 images: a wide interval
    assert {"macro_f1", "macro_f1_ci95", "balanced_accuracy", "per_class_recall"} <= set(evaluation)
    recalls = [r["recall"] for r in evaluation["per_class_recall"]]
    assert recalls == sorted(recalls)  # worst first
    loaded = LoadedModel.load(result.model_dir)
    assert loaded._model.layers[-1].name == "calibration"
    image = next((three_class_dir / "validation" / "circle").iterdir()).read_bytes()
    served = loaded.predict([image])
    uncalibrated = loaded._model.get_layer("calibration").input  # the head's output, before scaling
    raw = keras_model_output(loaded._model, uncalibrated, image, loaded.image_size)
    np.testing.assert_allclose(served, apply_temperature(raw, calibration["temperature"]), atol=1e-5)


def keras_model_output(model, tensor, image: bytes, size):
    import keras

    from workers.ml.models import probabilities
    from workers.ml.predict import model_inputs

    head_only = keras.Model(model.inputs[0], tensor)
    return probabilities(np.asarray(head_only(model_inputs([image], size).astype("float32"), training=False)))


def test_one_verifier_answers_many_models_and_survives_a_broken_one(bottleneck_run, tmp_path, three_class_dir):
    """A warm worker keeps one verifier for many jobs: a model that fails to load is that job's error,
    and the next model is still checked by the same process."""
    import keras

    from workers.ml.hashing import file_sha256
    from workers.ml.predict import load_verified_model
    from workers.ml.roundtrip import Verifier, check_round_trip

    result, _ = bottleneck_run
    image = next((three_class_dir / "validation" / "circle").iterdir())
    model = load_verified_model(result.model_dir, result.sha256)
    right = np.asarray(model(model_inputs([image.read_bytes()], (32, 32)).astype(np.float32)))
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.RandomShear(x_factor=0.2, y_factor=0.0)(inputs)
    broken = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x)))
    (tmp_path / "broken").mkdir()
    broken.save(tmp_path / "broken" / "model.keras")
    with Verifier() as verifier:
        pid = verifier._process.pid
        first = check_round_trip(result.model_dir, result.sha256, [image], right, verifier=verifier)
        with pytest.raises(MLError, match="does not load back as serving loads it"):
            check_round_trip(
                tmp_path / "broken", file_sha256(tmp_path / "broken" / "model.keras"), [image], right, verifier=verifier
            )
        again = check_round_trip(result.model_dir, result.sha256, [image], right, verifier=verifier)
        # A check interrupted after asking (a time limit during the comparison) leaves an answer unread;
        # the next check must get its own model's answer, not that one.
        verifier.send(tmp_path / "broken", file_sha256(tmp_path / "broken" / "model.keras"), [image])
        after = check_round_trip(result.model_dir, result.sha256, [image], lambda: right, verifier=verifier)
        assert verifier.alive and verifier._process.pid == pid
    assert max(first.max_abs_diff, again.max_abs_diff, after.max_abs_diff) <= 1e-5
    assert not verifier.alive


def test_a_verifier_that_died_fails_the_check_with_the_cause_and_says_it_is_gone(bottleneck_run, three_class_dir):
    from workers.ml.roundtrip import Verifier, check_round_trip

    result, _ = bottleneck_run
    image = next((three_class_dir / "validation" / "circle").iterdir())
    with Verifier() as verifier:
        verifier._process.kill()
        verifier._process.wait()
        assert not verifier.alive
        with pytest.raises(MLError, match=r"loading the saved model back in a fresh process failed \(exit code -9\)"):
            check_round_trip(result.model_dir, result.sha256, [image], np.zeros((1, 3), np.float32), verifier=verifier)
