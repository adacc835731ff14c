"""Exports of real-size models: each format's size, latency and verification against the served model.

    .venv/bin/python benchmarks/bench_exports.py [--size 150] [--classes 5] [--train 60] [--validation 20]
                                                 [--epochs 8] [--modes bottleneck scratch] [--weights none]

Trains each mode with the engine (workers.ml.train) on a generated dataset (benchmarks/datagen.py), then
exports the model in every format with workers.ml.export.export_model, which runs the bundle's own
predict.py in a fresh interpreter on every validation image. Prints, per model and format: the bundle's
size, the model file's size, the verification figures (n, largest probability difference, top-1
agreement), the median latency of one image in that runtime (decoding excluded), the time the export
took, and whether it passed its bar. The first row of each model is the served Keras model in the app's
own process, for comparison. --weights imagenet needs the VGG16 file in Keras's cache (no download here).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _served_latency_ms(model_dir: Path, paths: list[Path]) -> float:
    import numpy as np

    from workers.ml.predict import LoadedModel, model_inputs

    loaded = LoadedModel.load(model_dir)
    times = []
    for path in paths:
        batch = model_inputs([path.read_bytes()], loaded.image_size)
        started = time.perf_counter()
        loaded.run(batch)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--train", type=int, default=60, help="training images per class")
    parser.add_argument("--validation", type=int, default=20, help="validation images per class")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--modes", nargs="+", default=["bottleneck", "scratch"])
    parser.add_argument("--weights", choices=["none", "imagenet"], default="none")
    args = parser.parse_args()

    from benchmarks.datagen import make_dataset
    from workers.ml.config import parse_config
    from workers.ml.export import FORMATS, export_model
    from workers.ml.train import train

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_dataset(tmp / "data", classes=args.classes, train=args.train, validation=args.validation,
                            size=args.size, seed=3)  # fmt: skip
        val = sorted((data / "validation").rglob("*.jpg"))
        representative = sorted((data / "train").rglob("*.jpg"))[::3][:100]
        import platform

        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
              f"{args.classes} classes, {len(val)} validation images at {args.size}x{args.size}")  # fmt: skip
        header = f"{'model':<12} {'format':<20} {'bundle MB':>9} {'file MB':>8} {'n':>4} {'max diff':>9} "
        header += f"{'top-1':>7} {'ms/image':>9} {'export s':>8}  result"
        rows = [header]
        for mode in args.modes:
            config = {"mode": mode, "image_size": [args.size, args.size], "epochs": args.epochs, "batch_size": 16,
                      "seed": 7}  # fmt: skip
            if mode == "bottleneck":
                config["weights"] = args.weights
            started = time.perf_counter()
            out = tmp / f"model-{mode}"
            result = train(config=parse_config(config), dataset_dir=data, output_dir=out, cache_dir=tmp / "cache",
                           dataset_hash=f"bench-{mode}")  # fmt: skip
            accuracy = result.evaluation.get("accuracy")
            print(f"trained {mode} in {time.perf_counter() - started:.0f} s (accuracy {accuracy:.3f})", flush=True)
            served = _served_latency_ms(out, val)
            model_mb = (out / "model.keras").stat().st_size / 1e6
            rows.append(f"{mode:<12} {'served (in the app)':<20} {'':>9} {model_mb:>8.1f} {len(val):>4} {'':>9} "
                        f"{'':>7} {served:>9.2f} {'':>8}  reference")  # fmt: skip
            for fmt, spec in FORMATS.items():
                target = tmp / f"export-{mode}-{fmt}"
                target.mkdir()
                started = time.perf_counter()
                try:
                    done = export_model(model_dir=out, sha256=result.sha256, fmt=fmt, out_dir=target,
                                        card={"threshold": None}, verify_images=val,
                                        representative_images=representative)  # fmt: skip
                except Exception as exc:  # noqa: BLE001 - a failed export is a row of the table
                    rows.append(f"{mode:<12} {spec.label:<20} failed: {exc}")
                    continue
                seconds = time.perf_counter() - started
                v = done.verification
                rows.append(
                    f"{mode:<12} {spec.label:<20} {done.size_bytes / 1e6:>9.1f} {done.artifact_bytes / 1e6:>8.1f} "
                    f"{v['n']:>4} {v['max_abs_diff']:>9.1e} {v['top1_agreement']:>7.1%} {done.latency_ms:>9.2f} "
                    f"{seconds:>8.1f}  {'ready' if done.passed else 'failed: ' + done.failure}"
                )
                print(rows[-1], flush=True)
        print()
        print("\n".join(rows))


if __name__ == "__main__":
    main()
