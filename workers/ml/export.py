"""Exports: a trained model in the formats other runtimes load, each checked against the served model.

Every format takes what predict feeds the model, RGB uint8 (N, height, width, 3) pixels 0-255
from the app's own decoder, and answers what predict answers: calibrated probabilities, one
column per class in ``class_names`` order. The backbone's preprocessing and the calibration
layer are inside the exported graph; the decoder ships beside it (transferlab_decode.py), so a
file gives the same pixels outside the app as in it.

An export is verified before it is offered (docs/decisions.md, "Exports"): the bundle's own
predict.py runs in a fresh Python process that cannot import this package (only the bundle's
folder and the installed runtime), on the validation images, and its probabilities are compared
with the served model's. Float formats must agree on every top-1 answer within 1e-4; int8 on
at least 99 % of them. Anything else is a failed export with its figures, never a silent gap.

TensorFlow is imported inside the functions: web processes import this module for FORMATS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from workers.ml.errors import MLError

FLOAT_MAX_ABS_DIFF = 1e-4
INT8_MIN_AGREEMENT = 0.99
VERIFY_TIMEOUT_SECONDS = 900
BUNDLE = "bundle.zip"
CARD = "model_card.json"
INPUT_NAME = "image"
_HERE = Path(__file__).resolve().parent


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class ExportFormat:
    key: str
    label: str
    artifact: str  # the file or folder inside the bundle
    runtime_dist: str  # the PyPI distribution that runs it
    quantized: bool
    description: str

    @property
    def runtime(self) -> str:
        return f"{self.runtime_dist} {_version(self.runtime_dist)}"

    @property
    def requirements(self) -> list[str]:
        return [f"{self.runtime_dist}=={_version(self.runtime_dist)}", f"numpy=={_version('numpy')}",
                f"pillow=={_version('pillow')}"]  # fmt: skip


FORMATS: dict[str, ExportFormat] = {
    f.key: f
    for f in (
        ExportFormat("keras", "Keras 3 (.keras)", "model.keras", "keras", False,
                     "The Keras 3 model file, with the app's two custom layers beside it (transferlab_layers.py)."),
        ExportFormat("savedmodel", "TensorFlow SavedModel", "saved_model", "tensorflow", False,
                     "For TF Serving (saved_model/1/, signature serving_default) or tf.saved_model.load."),
        ExportFormat("tflite", "TF Lite (float32)", "model.tflite", "ai-edge-litert", False,
                     "For LiteRT / TF Lite on phones and small devices, builtin ops only."),
        ExportFormat("tflite_int8", "TF Lite (int8)", "model_int8.tflite", "ai-edge-litert", True,
                     "Post-training int8 quantization calibrated on training images: about 4x smaller."),
        ExportFormat("onnx", "ONNX", "model.onnx", "onnxruntime", False,
                     "For ONNX Runtime and other ONNX runtimes (converted with tf2onnx)."),
    )
}  # fmt: skip


class ExportError(MLError):
    """A converter could not produce the format for this model; ``str(e)`` says why."""


@dataclass
class ExportResult:
    format: str
    bundle: Path
    size_bytes: int
    artifact_bytes: int
    verification: dict
    latency_ms: float
    passed: bool
    failure: str | None
    card: dict = field(repr=False)


# --- the bundle's Python files ---------------------------------------------------------------------

_LOADERS = {
    "keras": """import keras

import transferlab_layers  # noqa: F401  the app's two custom layers, registered before loading

model = keras.saving.load_model(HERE / "model.keras", compile=False, safe_mode=True)


def run(batch):
    return np.asarray(model(batch, training=False))
""",
    "savedmodel": """import tensorflow as tf

serve = tf.saved_model.load(str(HERE / "saved_model" / "1")).signatures["serving_default"]


def run(batch):
    return serve(image=tf.constant(batch))["probabilities"].numpy()
""",
    "tflite": """from ai_edge_litert.interpreter import Interpreter

interpreter = Interpreter(model_path=str(HERE / "{artifact}"))
interpreter.allocate_tensors()
input_index = interpreter.get_input_details()[0]["index"]
output_index = interpreter.get_output_details()[0]["index"]


def run(batch):  # one image at a time: the input was allocated for a batch of 1
    interpreter.set_tensor(input_index, batch)
    interpreter.invoke()
    return interpreter.get_tensor(output_index).copy()
""",
    "onnx": """import onnxruntime

session = onnxruntime.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])


def run(batch):
    return session.run(None, {{"{input_name}": batch}})[0]
""",
}

_PREDICT = '''"""Run this exported TransferLab model ({label}) on image files.

    pip install {requirements}
    python predict.py IMAGE [IMAGE ...]

Prints JSON: the class names and, per image, the probabilities (columns in class-name order),
the top label, its confidence and whether it reaches the model's threshold, as the app's
predict endpoint answers. Images are decoded by transferlab_decode.py, the app's own decoder,
so a file gets the same pixels here as in the app.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from transferlab_decode import decode_image

HERE = Path(__file__).resolve().parent
CARD = json.loads((HERE / "model_card.json").read_text())
HEIGHT, WIDTH = CARD["input"]["shape"][1:3]
MAX_PIXELS = 100_000_000  # refuse larger images before decoding them (a decompression bomb)

{loader}

def main(paths):
    run(np.zeros((1, HEIGHT, WIDTH, 3), np.uint8))  # warm-up: the first call builds the graph
    threshold, names, results, seconds = CARD["threshold"], CARD["class_names"], [], []
    for path in paths:
        pixels = decode_image(Path(path).read_bytes(), (HEIGHT, WIDTH), max_pixels=MAX_PIXELS)[None]
        started = time.perf_counter()
        probabilities = run(pixels)[0].astype(float)
        seconds.append(time.perf_counter() - started)
        top = int(np.argmax(probabilities))
        results.append({{
            "file": str(path), "label": names[top], "confidence": float(probabilities[top]),
            "accepted": bool(threshold is None or probabilities[top] >= threshold),
            "probabilities": probabilities.tolist(),
        }})
    latency_ms = 1000 * float(np.median(seconds)) if seconds else None
    print(json.dumps({{"class_names": names, "latency_ms": latency_ms, "predictions": results}}))


if __name__ == "__main__":
    main(sys.argv[1:])
'''


def snippet_for(fmt: str) -> str:
    """The bundle's predict.py for ``fmt``: what the models page shows and the suite runs."""
    spec = FORMATS[fmt]
    loader_key = "tflite" if fmt == "tflite_int8" else fmt
    loader = _LOADERS[loader_key].format(artifact=spec.artifact, input_name=INPUT_NAME)
    return _PREDICT.format(label=spec.label, requirements=" ".join(spec.requirements), loader=loader)


def _standalone_source(module: str, title: str) -> str:
    """A copy of one engine module that imports nothing from this package."""
    source = (_HERE / f"{module}.py").read_text()
    own = "from workers.ml.errors import MLError\n"
    if own in source:
        source = source.replace(own, "\n\nclass MLError(Exception):\n    pass\n")
    if re.search(r"^\s*(from|import) workers\b", source, re.M):
        raise MLError(f"workers/ml/{module}.py imports the engine and cannot ship in an export")
    return f"# {title}: a copy of TransferLab's workers/ml/{module}.py, shipped with the export.\n{source}"


# --- conversion ------------------------------------------------------------------------------------


def _serving_model(model):
    """The saved model behind a uint8 input, answering one probability column per class."""
    import keras

    height, width = model.input_shape[1:3]
    image = keras.Input((height, width, 3), dtype="uint8", name=INPUT_NAME)
    out = model(keras.ops.cast(image, "float32"), training=False)
    if out.shape[-1] == 1:  # a sigmoid unit: [1 - p, p], as predict answers
        out = keras.ops.concatenate([1.0 - out, out], axis=-1)
    wrapped = keras.Model(image, keras.layers.Identity(name="probabilities")(out), name="transferlab_export")
    wrapped(np.zeros((1, height, width, 3), np.uint8))  # Keras's ONNX export wants a called model
    return wrapped


def _save_tf_saved_model(wrapped, path: Path) -> None:
    """A SavedModel whose serving_default takes ``image`` (uint8) and answers ``probabilities``.

    Not Keras's ``export(format="tf_saved_model")``: its archive stores every variable twice
    (118 MB instead of 59 MB for VGG16 here, docs/decisions.md, "Exports").
    """
    import tensorflow as tf

    height, width = wrapped.input_shape[1:3]

    class Serving(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8, name=INPUT_NAME)])
        def serve(self, image):
            return {"probabilities": self.model(image, training=False)}

    module = Serving(wrapped)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def _unsupported_onnx_ops(path: Path) -> list[str]:
    import onnx
    from onnx import defs

    graph = onnx.load(str(path), load_external_data=False).graph
    return sorted({node.op_type for node in graph.node if not defs.has(node.op_type, node.domain or "")})


def _convert(fmt: str, wrapped, out_dir: Path, representative: np.ndarray) -> Path:
    import tensorflow as tf

    spec = FORMATS[fmt]
    target = out_dir / spec.artifact
    builtins_only = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    try:
        if fmt == "keras":
            wrapped.save(target)
        elif fmt == "savedmodel":
            _save_tf_saved_model(wrapped, target / "1")
        elif fmt == "tflite":
            wrapped.export(str(target), format="litert", verbose=False, **builtins_only)
        elif fmt == "tflite_int8":
            if not len(representative):
                raise ExportError("int8 quantization needs training images to calibrate on, and there are none")
            samples = [image[None] for image in representative]
            wrapped.export(str(target), format="litert", verbose=False, optimizations=[tf.lite.Optimize.DEFAULT],
                           representative_dataset=lambda: ([s] for s in samples), **builtins_only)  # fmt: skip
        elif fmt == "onnx":
            wrapped.export(str(target), format="onnx", verbose=False)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - converters raise ConverterError, ValueError, RuntimeError...
        raise ExportError(f"{spec.label} could not be produced for this model: {_first_lines(exc)}") from exc
    if fmt == "onnx":
        # tf2onnx writes an op it cannot convert as-is and only logs it: refuse instead.
        if unsupported := _unsupported_onnx_ops(target):
            raise ExportError(
                f"ONNX could not be produced for this model: tf2onnx {_version('tf2onnx')} has no ONNX equivalent "
                f"for the TensorFlow op(s) {', '.join(unsupported)}"
            )
    return target


def _first_lines(exc: BaseException, limit: int = 600) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    # The MLIR converter's message starts with locations; the reason follows "error:".
    reasons = re.findall(r"error: ([^<]+?)(?= <unknown>|$)", text)
    text = "; ".join(dict.fromkeys(r.strip() for r in reasons)) or text
    return f"{type(exc).__name__}: {text[:limit]}"


def _tree_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- the model card --------------------------------------------------------------------------------


def _temperature(model) -> float | None:
    for layer in model.layers:
        if type(layer).__name__ == "TemperatureScaling":
            return float(layer.temperature)
    return None


def _weights_origin(info: dict) -> str:
    from workers.ml.registry import SPECS

    weights, backbone = info.get("weights"), info.get("backbone")
    if info.get("mode") == "scratch" or backbone in (None, "scratch"):
        return "none: the small convnet was trained from random weights on this dataset"
    if weights == "imagenet":
        spec = SPECS.get(backbone)
        name = spec.weights_file(tuple(info["image_size"])) if spec else "the backbone's ImageNet file"
        return f"{backbone} ImageNet weights from Keras applications ({name}), then trained on this dataset"
    return f"none: the {backbone} base started from random weights (weights: none), then trained on this dataset"


def build_card(fmt: str, info: dict, model, given: dict) -> dict:
    """``given`` (what the app knows: model, threshold, evaluation, dataset, config, ...) plus the
    facts of the file: format, input and output, preprocessing, temperature, versions, weights."""
    spec = FORMATS[fmt]
    height, width = info["image_size"]
    names = list(info["class_names"])
    return {
        **given,
        "format": {"key": spec.key, "label": spec.label, "artifact": spec.artifact, "runtime": spec.runtime,
                   "requirements": spec.requirements},
        "class_names": names,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": [None, height, width, 3], "layout": "NHWC",
                  "color": "RGB", "range": [0, 255]},
        "output": {"dtype": "float32", "shape": [None, len(names)],
                   "meaning": "calibrated class probabilities, one column per class in class_names order"},
        "preprocessing": {**(info.get("preprocessing") or {}), "decoder_file": "transferlab_decode.py",
                          "inside_model": "uint8 -> float32 cast, then the backbone's preprocessing"},
        "threshold": given.get("threshold"),
        "calibration": {"temperature": _temperature(model)},
        "backbone": {"name": info.get("backbone") or "scratch", "weights": info.get("weights") or "none",
                     "weights_origin": _weights_origin(info)},
        "versions": {dist: _version(dist) for dist in (
            "tensorflow", "keras", "numpy", "pillow", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert")},
        "source_model_sha256": info.get("sha256"),
    }  # fmt: skip


def _readme(card: dict) -> str:
    spec = FORMATS[card["format"]["key"]]
    evaluation = card.get("evaluation") or {}
    lines = [
        f"# {card.get('model', {}).get('project', 'TransferLab model')} — {spec.label}",
        "",
        spec.description,
        "",
        "## Run it",
        "",
        f"    pip install {' '.join(spec.requirements)}",
        "    python predict.py photo.jpg",
        "",
        "## Input and output",
        "",
        f"- Input `{INPUT_NAME}`: RGB uint8, shape {card['input']['shape']}, values 0-255, decoded and resized by "
        "transferlab_decode.py (`decode_image(bytes, (height, width), max_pixels=...)`).",
        f"- Output: {card['output']['meaning']}: {', '.join(card['class_names'])}.",
        f"- Threshold: {card['threshold'] if card['threshold'] is not None else 'none (every answer accepted)'}; "
        f"calibration temperature: {card['calibration']['temperature']}.",
        "",
        "## How good it is",
        "",
    ]
    if evaluation.get("accuracy") is not None:
        ci = evaluation.get("accuracy_ci95") or [None, None]
        lines.append(
            f"- Accuracy {evaluation['accuracy']:.3f} (95 % interval {ci[0]}–{ci[1]}) on "
            f"{evaluation.get('n')} {evaluation.get('split', '')} images."
        )
    else:
        lines.append("- No evaluation was recorded.")
    lines += ["", "Everything else (dataset, training config, versions, weights origin) is in model_card.json.", ""]
    return "\n".join(lines)


# --- verification ----------------------------------------------------------------------------------


def _run_bundle(folder: Path, image_paths: list[Path]) -> dict:
    """The bundle's predict.py in a fresh interpreter that sees only the bundle and site-packages."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    cmd = [sys.executable, "-E", "-s", "-B", "predict.py", *map(str, image_paths)]
    try:
        done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=VERIFY_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise MLError(f"the exported model took over {VERIFY_TIMEOUT_SECONDS} s on the validation images") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " | ".join((done.stderr or "").strip().splitlines()[-3:])
        raise MLError(f"the exported model does not run in its own runtime (exit code {done.returncode}): {tail}")
    return json.loads(lines[-1])


def verify(folder: Path, fmt: str, image_paths: list[Path], expected: np.ndarray) -> tuple[dict, float, str | None]:
    """(verification figures, latency in ms, failure or None) of the bundle in ``folder``."""
    answer = _run_bundle(folder, image_paths)
    got = np.asarray([p["probabilities"] for p in answer["predictions"]], np.float64).reshape(expected.shape)
    diff = float(np.max(np.abs(got - expected))) if len(expected) else 0.0
    agreement = float(np.mean(got.argmax(1) == expected.argmax(1))) if len(expected) else 1.0
    figures = {"n": len(expected), "max_abs_diff": diff, "top1_agreement": agreement}
    spec = FORMATS[fmt]
    if not len(expected):
        failure = "there are no validation images to verify the export on"
    elif spec.quantized and agreement < INT8_MIN_AGREEMENT:
        failure = (f"the int8 model agrees with the served model on {agreement:.1%} of {len(expected)} validation "
                   f"images, below the {INT8_MIN_AGREEMENT:.0%} required (largest probability difference {diff:.4f})")  # fmt: skip
    elif not spec.quantized and (agreement < 1.0 or diff > FLOAT_MAX_ABS_DIFF):
        failure = (f"the export differs from the served model: top-1 agreement {agreement:.1%} of {len(expected)} "
                   f"validation images, largest probability difference {diff:.2e} (required: 100 % and "
                   f"at most {FLOAT_MAX_ABS_DIFF:g})")  # fmt: skip
    else:
        failure = None
    return figures, float(answer["latency_ms"] or 0.0), failure


def _zip(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                # Model weights barely compress; text files do.
                small = path.suffix in (".py", ".json", ".md")
                bundle.write(path, path.relative_to(folder).as_posix(),
                             compress_type=zipfile.ZIP_DEFLATED if small else zipfile.ZIP_STORED)  # fmt: skip


def _decode_all(paths: list[Path], size: tuple[int, int]) -> np.ndarray:
    from workers.ml.data import STORED_MAX_PIXELS
    from workers.ml.images import decode_file

    return (
        np.stack([decode_file(p, size, max_pixels=STORED_MAX_PIXELS) for p in paths])
        if paths
        else np.zeros((0, *size, 3), np.uint8)
    )


def export_model(
    *,
    model_dir: Path,
    sha256: str,
    fmt: str,
    out_dir: Path,
    card: dict,
    verify_images: list[Path],
    representative_images: list[Path],
) -> ExportResult:
    """Convert the model in ``model_dir`` to ``fmt``, verify it in its own runtime, and write
    ``out_dir/bundle.zip`` (the download) and ``out_dir/model_card.json``.

    Raises ExportError when the converter cannot produce the format, MLError when the model
    does not load or the export does not run; a verification below the bar is returned with
    ``passed=False`` and its figures, so that they can be shown.
    """
    if fmt not in FORMATS:
        raise MLError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    from workers.ml.predict import LoadedModel

    loaded = LoadedModel.load(Path(model_dir), expected_sha256=sha256)
    size = loaded.image_size
    wrapped = _serving_model(loaded._model)

    work = Path(out_dir) / "bundle"
    work.mkdir(parents=True)
    artifact = _convert(fmt, wrapped, work, _decode_all(list(representative_images), size))
    full_card = build_card(fmt, loaded.info, loaded._model, card)
    (work / CARD).write_text(json.dumps(full_card, indent=2) + "\n")
    (work / "README.md").write_text(_readme(full_card))
    (work / "predict.py").write_text(snippet_for(fmt))
    (work / "transferlab_decode.py").write_text(_standalone_source("images", "The decoder"))
    if fmt == "keras":
        (work / "transferlab_layers.py").write_text(_standalone_source("layers", "The custom layers"))

    expected = np.concatenate(
        [loaded.predict([p.read_bytes() for p in verify_images[i : i + 32]]) for i in range(0, len(verify_images), 32)]
    ) if verify_images else np.zeros((0, len(loaded.class_names)), np.float32)  # fmt: skip
    figures, latency_ms, failure = verify(work, fmt, list(verify_images), expected.astype(np.float64))

    bundle = Path(out_dir) / BUNDLE
    _zip(work, bundle)
    (Path(out_dir) / CARD).write_text(json.dumps(full_card, indent=2) + "\n")
    artifact_bytes = _tree_bytes(artifact)
    shutil.rmtree(work)
    return ExportResult(
        format=fmt,
        bundle=bundle,
        size_bytes=bundle.stat().st_size,
        artifact_bytes=artifact_bytes,
        verification=figures,
        latency_ms=round(latency_ms, 3),
        passed=failure is None,
        failure=failure,
        card=full_card,
    )
