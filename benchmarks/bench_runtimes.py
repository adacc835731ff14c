"""The frozen base's extraction in other runtimes: images/s, feature error and downstream accuracy.

    .venv/bin/python benchmarks/bench_runtimes.py [--size 150] [--batch 32] [--rounds 15] [--classes 3] [--train 150] [--validation 100]
                                                  [--calibration 100]

Issue 20, point 4: try ONNX Runtime and OpenVINO for extraction, float32 and their bf16 and int8 paths,
and adopt one only if it is at least 1.3x faster than the best TensorFlow path with the same accuracy
(float paths: features within 1e-3 relative error of float32's; int8: validation accuracy within 0.5
point). The model is the engine's extraction model (workers/ml/modes/bottleneck.py ``extractor()``:
the backbone's in-model preprocessing, then the base), VGG16 by default, weights none (no ImageNet
download here).

Runtimes, each loaded in its own child process, as a worker would load it:

- ``tf-float32``: the baseline, a tf.function of ``model(x, training=False)`` as workers/ml/features.py runs it;
- ``tf-bfloat16``: the same under Keras's ``mixed_bfloat16`` policy (as benchmarks/bench_precision.py);
- ``ort-float32``: ONNX Runtime on the model exported by Keras 3 ``model.export(format="onnx")``, as
  workers/ml/export.py does; ONNX Runtime's CPU provider has no bf16 path on x86;
- ``ort-int8``: ``onnxruntime.quantization.quantize_static`` (QDQ, uint8 activations, int8 per-channel
  weights, MinMax), calibrated on the dataset's own training images;
- ``ov-float32`` / ``ov-bf16``: OpenVINO on the same ONNX file, inference precision hint f32 / bf16;
- ``ov-int8``: NNCF post-training quantization of that model, calibrated on the same training images.
  OpenVINO and NNCF are benchmark-only (``.venv/bin/pip install openvino nncf``): not in
  requirements.txt; when absent their rows are skipped with a line saying so.

The data is benchmarks/datagen.py's generated JPEG shapes, decoded by the app's decoder
(workers.ml.images.decode_file). Each child loads its runtime, warms it up and extracts the features of
every training and validation image once (one child at a time); the parent compares them with
tf-float32's (relative error: norm of the difference over norm of float32's, over all features) and
trains a logistic regression (standardised features) on each runtime's training features, reporting
validation accuracy. Speed: all the children stay loaded, and in each of --rounds rounds the parent
asks each for one timed batch of training images, in an order that rotates each round. The machine is
shared and its load changes by the minute, so a runtime's speed against another is the median of the
rounds' paired ratios (one round takes seconds); best and median images/s are printed beside it.
``uptime``'s load averages are printed at the start and the end.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_precision import _cpu  # noqa: E402

RUNTIMES = ("tf-float32", "tf-bfloat16", "ort-float32", "ort-int8", "ov-float32", "ov-bf16", "ov-int8")
FLOAT_BAR = 1e-3  # relative feature error of a float path
INT8_BAR = 0.5  # points of validation accuracy of an int8 path
ADOPT = 1.3  # speed-up over the best TensorFlow path that meets its bar


# --- children ----------------------------------------------------------------------------------------


def _extractor(backbone: str, size: int):
    """The engine's extraction model, as workers/ml/modes/bottleneck.py builds it (weights none, seed 0)."""
    import keras

    from workers.ml.backbones import build_base, build_preprocess

    base = build_base(backbone, (size, size), None, 0)
    base.trainable = False
    return keras.Sequential([keras.Input((size, size, 3)), build_preprocess(backbone), base])


def _calibration(work: Path, count: int):
    import numpy as np

    return np.load(work / "train.npy", mmap_mode="r")[:count].astype(np.float32)


def _prepare_onnx(args, work: Path) -> dict:
    """model.onnx (float32, Keras 3's export) and model_int8.onnx (ONNX Runtime static quantization)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    started = time.perf_counter()
    model = _extractor(args.backbone, args.size)
    model(_calibration(work, 1))  # Keras's ONNX export wants a called model
    model.export(str(work / "model.onnx"), format="onnx", verbose=False)
    exported = time.perf_counter() - started

    images = _calibration(work, args.calibration)
    import onnx

    input_name = onnx.load(str(work / "model.onnx"), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{input_name: images[i : i + 8]} for i in range(0, len(images), 8)])

        def get_next(self):
            return next(self.batches, None)

    started = time.perf_counter()
    quant_pre_process(str(work / "model.onnx"), str(work / "model_pre.onnx"), skip_symbolic_shape=True)
    quantize_static(str(work / "model_pre.onnx"), str(work / "model_int8.onnx"), Reader(),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True)  # fmt: skip
    return {"export_s": exported, "quantize_s": time.perf_counter() - started, "input": input_name}


def _prepare_openvino(args, work: Path) -> dict:
    """model_ov.xml (float32 IR of model.onnx) and model_ov_int8.xml (NNCF post-training quantization)."""
    import openvino as ov

    model = ov.convert_model(str(work / "model.onnx"))
    ov.save_model(model, str(work / "model_ov.xml"), compress_to_fp16=False)
    answer = {"openvino": ov.__version__}
    try:
        import nncf
    except ImportError:
        return {**answer, "nncf": None}
    images = _calibration(work, args.calibration)
    started = time.perf_counter()
    quantized = nncf.quantize(model, nncf.Dataset([images[i : i + 1] for i in range(len(images))]),
                              subset_size=len(images))  # fmt: skip
    ov.save_model(quantized, str(work / "model_ov_int8.xml"), compress_to_fp16=False)
    return {**answer, "nncf": nncf.__version__, "quantize_s": time.perf_counter() - started}


def _runner(runtime: str, args, work: Path):
    """A function pixels (N, h, w, 3) float32 -> features (N, ...) float32, loaded as a worker would."""
    import numpy as np

    if runtime.startswith("tf-"):
        import keras
        import tensorflow as tf

        if runtime == "tf-bfloat16":
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = _extractor(args.backbone, args.size)
        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: np.asarray(tf.cast(fn(x), tf.float32))
    if runtime.startswith("ort-"):
        import onnxruntime as ort

        path = work / ("model.onnx" if runtime == "ort-float32" else "model_int8.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0].astype(np.float32, copy=False)
    import openvino as ov

    path = work / ("model_ov_int8.xml" if runtime == "ov-int8" else "model_ov.xml")
    precision = "bf16" if runtime == "ov-bf16" else "f32"
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                         "PERFORMANCE_HINT": "LATENCY"})  # fmt: skip
    request = compiled.create_infer_request()
    return lambda x: np.array(request.infer([x])[0], np.float32)


def _child(args) -> None:
    import numpy as np

    work = Path(args.work)
    if args.child == "prepare-onnx":
        print(json.dumps(_prepare_onnx(args, work)))
        return
    if args.child == "prepare-openvino":
        print(json.dumps(_prepare_openvino(args, work)))
        return
    started = time.perf_counter()
    run = _runner(args.child, args, work)
    batch = np.load(work / "train.npy", mmap_mode="r")[: args.batch].astype(np.float32)
    run(batch)  # warm-up: tracing, graph compilation, first allocations
    load_s = time.perf_counter() - started
    for split in ("train", "validation"):
        images = np.load(work / f"{split}.npy", mmap_mode="r")
        out = [run(images[i : i + args.batch].astype(np.float32)) for i in range(0, len(images), args.batch)]
        np.save(work / f"features_{args.child}_{split}.npy", np.concatenate(out))
    run(batch)  # again after the partial last batches
    print(json.dumps({"runtime": args.child, "load_s": load_s}), flush=True)
    for line in sys.stdin:  # the parent asks for one timed batch at a time, alternating the runtimes
        if line.strip() != "time":
            break
        started = time.perf_counter()
        run(batch)
        print(json.dumps({"s": time.perf_counter() - started}), flush=True)


# --- parent ------------------------------------------------------------------------------------------


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _command(args, work: Path, child: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", child, "--work", str(work),
            "--backbone", args.backbone, "--size", str(args.size), "--batch", str(args.batch),
            "--calibration", str(args.calibration)]  # fmt: skip


def _failed(child: str, code, log: str) -> RuntimeError:
    tail = " | ".join(log.strip().splitlines()[-4:])
    return RuntimeError(f"{child} failed (exit code {code}): {tail}")


def _call(args, work: Path, child: str) -> dict:
    done = subprocess.run(_command(args, work, child), capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise _failed(child, done.returncode, done.stderr)
    return json.loads(lines[-1])


class Child:
    """One runtime loaded in its own process, answering one timed batch per request."""

    def __init__(self, args, work: Path, runtime: str):
        self.runtime, self.log = runtime, work / f"{runtime}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(_command(args, work, runtime), stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log, text=True)  # fmt: skip
        self.ready = self._answer()

    def _answer(self) -> dict:
        for line in self.process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise _failed(self.runtime, self.process.wait(), self.log.read_text())

    def time(self) -> float:
        self.process.stdin.write("time\n")
        self.process.stdin.flush()
        return self._answer()["s"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def _decode_split(root: Path, split: str, size: int):
    import numpy as np

    from workers.ml.images import decode_file

    classes = sorted(p.name for p in (root / split).iterdir())
    paths = [(p, k) for k, name in enumerate(classes) for p in sorted((root / split / name).glob("*.jpg"))]
    pixels = np.stack([decode_file(p, (size, size), max_pixels=1 << 31) for p, _ in paths])
    return pixels, np.array([k for _, k in paths])


def _accuracy(train, y_train, validation, y_validation) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    classifier.fit(train.reshape(len(train), -1), y_train)
    return float(classifier.score(validation.reshape(len(validation), -1), y_validation))


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15, help="timed batches per runtime, alternated")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--train", type=int, default=150, help="training images per class")
    parser.add_argument("--validation", type=int, default=100, help="validation images per class")
    parser.add_argument("--calibration", type=int, default=100, help="training images int8 is calibrated on")
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    import numpy as np

    from benchmarks.datagen import make_dataset

    print(_cpu())
    print("start:", _uptime(), flush=True)
    runtimes = [r for r in RUNTIMES if r in args.runtimes]
    if not {"tf-float32"} <= set(runtimes):
        parser.error("tf-float32 is the baseline and must be among --runtimes")
    if any(r.startswith("ov-") for r in runtimes) and not _installed("openvino"):
        print("OpenVINO is not installed (.venv/bin/pip install openvino nncf): skipping ov-float32, ov-bf16, ov-int8")
        runtimes = [r for r in runtimes if not r.startswith("ov-")]
    if "ov-int8" in runtimes and not _installed("nncf"):
        print("NNCF is not installed (.venv/bin/pip install nncf): skipping ov-int8")
        runtimes.remove("ov-int8")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_dataset(work / "data", classes=args.classes, train=args.train, validation=args.validation,
                            size=args.size)  # fmt: skip
        (x_train, y_train), (x_val, y_val) = (_decode_split(data, s, args.size) for s in ("train", "validation"))
        order = np.random.default_rng(0).permutation(len(x_train))  # classes mixed in calibration and timing
        x_train, y_train = x_train[order], y_train[order]
        np.save(work / "train.npy", x_train)
        np.save(work / "validation.npy", x_val)
        print(f"data: {args.classes} classes, {len(x_train)} training and {len(x_val)} validation images at "
              f"{args.size}x{args.size}; int8 calibrated on {min(args.calibration, len(x_train))} training images",
              flush=True)  # fmt: skip

        if any(r.startswith(("ort-", "ov-")) for r in runtimes):
            prep = _call(args, work, "prepare-onnx")
            print(f"ONNX export {prep['export_s']:.1f} s, ONNX Runtime int8 quantization {prep['quantize_s']:.1f} s")
        if any(r.startswith("ov-") for r in runtimes):
            prep = _call(args, work, "prepare-openvino")
            print(f"OpenVINO {prep['openvino']}, NNCF {prep['nncf']}"
                  + (f", NNCF quantization {prep['quantize_s']:.1f} s" if prep.get("quantize_s") else ""))  # fmt: skip

        children: dict[str, Child] = {}
        seconds: dict[str, list[float]] = {r: [] for r in runtimes}
        try:
            for runtime in runtimes:  # one at a time: each extracts every image once while the others wait
                children[runtime] = Child(args, work, runtime)
                print(f"{runtime:>12}: loaded, warmed up and extracted {len(x_train) + len(x_val)} images "
                      f"(load and warm-up {children[runtime].ready['load_s']:.1f} s)", flush=True)  # fmt: skip
            for round_ in range(args.rounds):
                shift = round_ % len(runtimes)
                for runtime in runtimes[shift:] + runtimes[:shift]:  # rotate: no runtime always runs first
                    seconds[runtime].append(children[runtime].time())
                print(f"round {round_ + 1:2}: "
                      + ", ".join(f"{r} {args.batch / seconds[r][-1]:.1f}" for r in runtimes), flush=True)  # fmt: skip
        finally:
            for child in children.values():
                child.close()

        features = {r: tuple(np.load(work / f"features_{r}_{s}.npy") for s in ("train", "validation"))
                    for r in runtimes}  # fmt: skip

    f32 = np.concatenate([f.reshape(len(f), -1) for f in features["tf-float32"]]).astype(np.float64)

    def ratio(runtime: str, baseline: str) -> float:  # median of the rounds' paired speed ratios
        return float(np.median(np.array(seconds[baseline]) / np.array(seconds[runtime])))

    rows = {}
    for runtime in runtimes:
        train, val = features[runtime]
        got = np.concatenate([train.reshape(len(train), -1), val.reshape(len(val), -1)]).astype(np.float64)
        accuracy = _accuracy(train, y_train, val, y_val)
        rows[runtime] = {"best": args.batch / min(seconds[runtime]), "median": args.batch / np.median(seconds[runtime]),
                         "error": float(np.linalg.norm(got - f32) / max(np.linalg.norm(f32), 1e-30)),
                         "accuracy": accuracy, "x_f32": ratio(runtime, "tf-float32")}  # fmt: skip
    for runtime, row in rows.items():
        row["delta"] = 100 * (row["accuracy"] - rows["tf-float32"]["accuracy"])
        row["acc_ok"] = abs(row["delta"]) <= INT8_BAR
        if runtime.endswith("int8"):
            row["bar"], row["meets"] = f"|d acc| <= {INT8_BAR} pt", row["acc_ok"]
        else:
            row["bar"], row["meets"] = f"error <= {FLOAT_BAR:g}", row["error"] <= FLOAT_BAR

    def decide(ok) -> tuple[str, list[str]]:
        best_tf = max((r for r in rows if r.startswith("tf-") and ok(r)), key=lambda r: rows[r]["x_f32"])
        return best_tf, [r for r in rows if not r.startswith("tf-") and ok(r) and ratio(r, best_tf) >= ADOPT]

    best_tf, adopt = decide(lambda r: rows[r]["meets"])
    print()
    print(f"{args.backbone} extraction (preprocess + base) at {args.size}x{args.size}, batch {args.batch}, weights "
          f"none, {args.rounds} alternated rounds of one batch per runtime; ratios: median of the rounds' paired "
          f"ratios; accuracy: logistic regression on {len(y_train)} train / {len(y_val)} validation features")  # fmt: skip
    head = (f"{'runtime':<12} {'best i/s':>8} {'median':>7} {'x tf-f32':>8} {'x ' + best_tf:>14} {'rel error':>9} "
            f"{'val acc':>7} {'d pt':>5}  bar")  # fmt: skip
    print(head)
    print("-" * len(head))
    for runtime, row in rows.items():
        print(f"{runtime:<12} {row['best']:8.1f} {row['median']:7.1f} {row['x_f32']:7.2f}x "
              f"{ratio(runtime, best_tf):13.2f}x {row['error']:9.1e} {row['accuracy']:7.3f} {row['delta']:+5.1f}  "
              f"{row['bar']}: {'meets' if row['meets'] else 'fails'}")  # fmt: skip
    print()
    print(f"best TensorFlow path within its bar: {best_tf}")
    print(f"rule: adopt a runtime only if >= {ADOPT}x the best TensorFlow path and within its bar: "
          + (", ".join(adopt) + " pass" if adopt else "none passes on this machine"))  # fmt: skip
    alt_tf, alt = decide(lambda r: rows[r]["acc_ok"])
    print(f"(were every path judged by downstream accuracy alone, |d acc| <= {INT8_BAR} pt: best TensorFlow path "
          f"{alt_tf}; passing: {', '.join(alt) or 'none'})")  # fmt: skip
    print("end:", _uptime())


if __name__ == "__main__":
    main()
