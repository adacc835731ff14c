"""Bottleneck extraction speed: the engine's JPEG pipeline against the bare base.

Generates JPEGs (2 classes x N at 150x150) in a temporary folder, then measures in the
same run, with the same VGG16 base (weights none) and batch size:

- pipeline: ``features.extract_features`` over ``data.make_dataset`` (read, decode,
  resize, preprocess layer, base), exactly as bottleneck training does;
- bare: the base alone on in-memory float tensors.

The ratio pipeline/bare shows whether decoding keeps the model busy (aim: >= 0.9).
Usage: python benchmarks/bench_extraction.py [--per-class 150] [--repeats 2]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from workers.ml import features  # noqa: E402
from workers.ml.backbones import build_base, build_preprocess  # noqa: E402
from workers.ml.data import list_classes, list_split, make_dataset  # noqa: E402
from workers.ml.train import EXTRACTION_BATCH  # noqa: E402

SIZE = (150, 150)


def write_jpegs(root: Path, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
            (folder / f"{i:04d}.jpg").write_bytes(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, args.per_class)
        split = list_split(root, "train", list_classes(root))
        n = len(split)
        base = build_base("vgg16", SIZE, None, seed=0)
        extractor = keras.Sequential([keras.Input((*SIZE, 3)), build_preprocess("vgg16"), base])
        bare = tf.function(lambda x: base(x, training=False), reduce_retracing=True)
        sizes = [EXTRACTION_BATCH] * (n // EXTRACTION_BATCH)
        if n % EXTRACTION_BATCH:
            sizes.append(n % EXTRACTION_BATCH)
        tensors = [tf.random.uniform((s, *SIZE, 3), 0, 255) for s in sizes]

        def run_pipeline() -> float:
            ds = make_dataset(split, SIZE, EXTRACTION_BATCH, with_labels=False)
            started = time.perf_counter()
            out = features.extract_features(extractor, ds)
            assert len(out) == n
            return n / (time.perf_counter() - started)

        def run_bare() -> float:
            started = time.perf_counter()
            for x in tensors:
                bare(x).numpy()
            return n / (time.perf_counter() - started)

        # Warm-up: traces both functions for the full and the last partial batch.
        features.extract_features(extractor, make_dataset(split, SIZE, EXTRACTION_BATCH, with_labels=False).take(1))
        for x in (tensors[0], tensors[-1]):
            bare(x)
        pipeline_rates, bare_rates = [], []
        for _ in range(args.repeats):  # interleaved so drift affects both alike
            bare_rates.append(run_bare())
            pipeline_rates.append(run_pipeline())

    pipeline_best, bare_best = max(pipeline_rates), max(bare_rates)
    print(
        f"images: {n} JPEG {SIZE[0]}x{SIZE[1]}, VGG16 weights none, batch "
        f"{EXTRACTION_BATCH}, {os.cpu_count()} CPUs, repeats {args.repeats}"
    )
    print(
        f"pipeline (JPEG files -> features): {pipeline_best:8.2f} images/s  "
        f"(all: {', '.join(f'{r:.2f}' for r in pipeline_rates)})"
    )
    print(
        f"bare base (in-memory tensors):     {bare_best:8.2f} images/s  "
        f"(all: {', '.join(f'{r:.2f}' for r in bare_rates)})"
    )
    print(f"ratio pipeline / bare: {pipeline_best / bare_best:.3f} (aim >= 0.9)")
    if not math.isfinite(pipeline_best / bare_best):
        sys.exit(1)


if __name__ == "__main__":
    main()
