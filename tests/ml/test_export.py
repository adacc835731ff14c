"""Exports: each format produced, run in its own runtime from an unzipped bundle, and compared
with the served model; converter gaps and verification below the bar are reported, not hidden."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import tiny_config

from workers.ml.errors import MLError
from workers.ml.export import FLOAT_MAX_ABS_DIFF, FORMATS, ExportError, export_model, snippet_for, verify
from workers.ml.hashing import file_sha256
from workers.ml.predict import LoadedModel

pytestmark = pytest.mark.slow

GIVEN = {"model": {"id": 1, "version": 3, "project": "Shapes"}, "threshold": 0.6, "evaluation": {"accuracy": 0.9}}


@pytest.fixture(scope="module")
def scratch_model(three_class_dir, tmp_path_factory):
    from workers.ml.train import train

    out = tmp_path_factory.mktemp("export-models") / "scratch"
    result = train(
        config=tiny_config("scratch", epochs=2),
        dataset_dir=three_class_dir,
        output_dir=out,
        cache_dir=tmp_path_factory.mktemp("export-cache"),
        dataset_hash="three-v1",
    )
    return out, result.sha256


def images(root: Path, split: str) -> list[Path]:
    return sorted((root / split).rglob("*.jpg"))


@pytest.fixture(scope="module")
def exports(scratch_model, three_class_dir, tmp_path_factory):
    """Every format of the scratch model, exported once for the module."""
    model_dir, sha = scratch_model
    done = {}
    for fmt in FORMATS:
        out = tmp_path_factory.mktemp(f"export-{fmt}")
        done[fmt] = export_model(
            model_dir=model_dir,
            sha256=sha,
            fmt=fmt,
            out_dir=out,
            card=GIVEN,
            verify_images=images(three_class_dir, "validation"),
            representative_images=images(three_class_dir, "train")[:30],
        )
    return done


def unzip(bundle: Path, target: Path) -> Path:
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(target)
    return target


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_passes_its_verification_on_every_validation_image(exports, three_class_dir, fmt):
    result = exports[fmt]
    n_val = len(images(three_class_dir, "validation"))
    assert result.passed, result.failure
    assert result.verification["n"] == n_val
    assert result.verification["top1_agreement"] == 1.0
    if not FORMATS[fmt].quantized:
        assert result.verification["max_abs_diff"] <= FLOAT_MAX_ABS_DIFF
    assert result.latency_ms > 0
    assert result.size_bytes == result.bundle.stat().st_size
    with zipfile.ZipFile(result.bundle) as archive:
        names = archive.namelist()
        assert json.loads(archive.read("model_card.json")) == result.card
        assert archive.read("predict.py").decode() == snippet_for(fmt)
    assert {"README.md", "predict.py", "transferlab_decode.py", "model_card.json"} <= set(names)
    assert any(name == FORMATS[fmt].artifact or name.startswith(FORMATS[fmt].artifact + "/") for name in names)
    assert not any("__pycache__" in name for name in names)
    # Only the bundle and its card stay: the loose files were zipped and removed.
    assert sorted(p.name for p in result.bundle.parent.iterdir()) == ["bundle.zip", "model_card.json"]


def test_the_card_says_what_the_file_takes_and_answers(exports, scratch_model):
    card = exports["onnx"].card
    loaded = LoadedModel.load(scratch_model[0])
    assert card["class_names"] == loaded.class_names
    assert card["input"] == {"name": "image", "dtype": "uint8", "shape": [None, 32, 32, 3], "layout": "NHWC",
                             "color": "RGB", "range": [0, 255]}  # fmt: skip
    assert card["output"]["shape"] == [None, 3]
    assert card["threshold"] == 0.6 and card["model"]["version"] == 3 and card["evaluation"] == {"accuracy": 0.9}
    calibration = loaded._model.get_layer("calibration").temperature
    assert card["calibration"]["temperature"] == pytest.approx(calibration)
    assert card["versions"]["onnxruntime"] == "1.32.0"
    assert card["format"]["requirements"][0] == "onnxruntime==1.32.0"
    assert card["backbone"]["name"] == "scratch" and card["backbone"]["weights_origin"].startswith("none")
    assert card["source_model_sha256"] == scratch_model[1]


@pytest.mark.parametrize("fmt", ["keras", "onnx", "tflite_int8"])
def test_an_unzipped_bundle_runs_alone_and_answers_as_predict_does(
    exports, scratch_model, three_class_dir, tmp_path, fmt
):
    folder = unzip(exports[fmt].bundle, tmp_path / "bundle")
    image = images(three_class_dir, "validation")[-1]
    # -E -s: no PYTHONPATH, no user site; the working folder is the bundle: the engine is not importable.
    done = subprocess.run([sys.executable, "-E", "-s", "predict.py", str(image)], cwd=folder, capture_output=True,
                          text=True, check=True, timeout=300)  # fmt: skip
    answer = json.loads(done.stdout.splitlines()[-1])
    served = LoadedModel.load(scratch_model[0]).predict([image.read_bytes()])[0]
    got = np.asarray(answer["predictions"][0]["probabilities"])
    assert answer["class_names"] == exports[fmt].card["class_names"]
    assert int(np.argmax(got)) == int(np.argmax(served))
    if not FORMATS[fmt].quantized:
        np.testing.assert_allclose(got, served, atol=FLOAT_MAX_ABS_DIFF)
    top = answer["predictions"][0]
    assert top["accepted"] == (top["confidence"] >= 0.6)


def test_answers_that_disagree_with_the_served_model_fail_with_their_figures(
    exports, scratch_model, three_class_dir, tmp_path
):
    paths = images(three_class_dir, "validation")
    served = LoadedModel.load(scratch_model[0]).predict([p.read_bytes() for p in paths]).astype(np.float64)
    # The same answers with the classes shifted by one: every top-1 differs from the bundle's.
    shifted = np.roll(served, 1, axis=1)
    assert (shifted.argmax(1) != served.argmax(1)).all()
    for fmt, bar in (("onnx", "(required: 100 % and at most 0.0001)"), ("tflite_int8", "below the 99% required")):
        folder = unzip(exports[fmt].bundle, tmp_path / fmt)
        figures, latency_ms, failure = verify(folder, fmt, paths, served)
        assert failure is None and figures["top1_agreement"] == 1.0 and latency_ms > 0
        figures, _, failure = verify(folder, fmt, paths, shifted)
        assert figures["n"] == len(paths) and figures["top1_agreement"] == 0.0
        assert bar in failure and f"of {len(paths)} " in failure


@keras.saving.register_keras_serializable(package="tests")
class SingularValues(keras.layers.Layer):
    """Singular values of a corner of the image: an op (SVD) ONNX and TF Lite builtins lack."""

    def call(self, x):
        corner = keras.ops.reshape(x[:, :4, :4, 0], (-1, 4, 4)) / 255.0
        return keras.ops.softmax(keras.ops.svd(corner, compute_uv=False)[:, :3])


@pytest.fixture(scope="module")
def svd_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("svd-model")
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, SingularValues(name="singular_values")(inputs))
    model.save(folder / "model.keras")
    sha = file_sha256(folder / "model.keras")
    info = {"class_names": ["a", "b", "c"], "image_size": [32, 32], "mode": "scratch", "sha256": sha}
    (folder / "model.json").write_text(json.dumps(info))
    return folder, sha


@pytest.mark.parametrize(("fmt", "reason"), [("onnx", "for the TensorFlow op(s) Svd"), ("tflite", "Svd")])
def test_a_layer_the_converter_does_not_support_fails_the_export_naming_it(
    svd_model, three_class_dir, tmp_path, fmt, reason
):
    with pytest.raises(ExportError) as caught:
        export_model(model_dir=svd_model[0], sha256=svd_model[1], fmt=fmt, out_dir=tmp_path, card={},
                     verify_images=images(three_class_dir, "validation")[:2], representative_images=[])  # fmt: skip
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"{FORMATS[fmt].label} could not be produced for this model")


def test_a_keras_file_whose_layer_does_not_ship_fails_in_its_own_runtime(svd_model, three_class_dir, tmp_path):
    with pytest.raises(MLError, match="does not run in its own runtime.*SingularValues"):
        export_model(model_dir=svd_model[0], sha256=svd_model[1], fmt="keras", out_dir=tmp_path, card={},
                     verify_images=images(three_class_dir, "validation")[:2], representative_images=[])  # fmt: skip


def test_int8_without_training_images_is_refused(scratch_model, three_class_dir, tmp_path):
    with pytest.raises(ExportError, match="needs training images to calibrate on"):
        export_model(model_dir=scratch_model[0], sha256=scratch_model[1], fmt="tflite_int8", out_dir=tmp_path,
                     card={}, verify_images=images(three_class_dir, "validation"), representative_images=[])  # fmt: skip


def test_an_unknown_format_or_a_tampered_model_is_refused(scratch_model, tmp_path):
    with pytest.raises(MLError, match="unknown export format 'pt'"):
        export_model(model_dir=scratch_model[0], sha256=scratch_model[1], fmt="pt", out_dir=tmp_path, card={},
                     verify_images=[], representative_images=[])  # fmt: skip
    copy = shutil.copytree(scratch_model[0], tmp_path / "copy")
    with (copy / "model.keras").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(MLError, match="does not match its recorded checksum"):
        export_model(model_dir=copy, sha256=scratch_model[1], fmt="onnx", out_dir=tmp_path / "out", card={},
                     verify_images=[], representative_images=[])  # fmt: skip
