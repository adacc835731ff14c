"""Near duplicates: the distances behind the threshold, and what fingerprints and the search cost.

Prints, for planted copies of generated pictures (tests/projects/images.py: gradients, blurred
noise and shapes, 64-128 px), the largest and 99th-percentile distance of each kind of copy; the
nearest pair among distinct pictures (with and without the mean-colour rule); the time of one
fingerprint at three sizes; and the search's time on many distinct fingerprints, with real colours
and with one colour for all (its worst case). docs/decisions.md, "Near duplicates", quotes a run.

Usage: python benchmarks/bench_near_duplicates.py [--pictures 1000] [--distinct 1500] [--search 30000]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tests.projects.images import crop_edge, encode, picture  # noqa: E402
from webapp.projects.ingest import similar  # noqa: E402
from workers.ml.images import decode_rgb  # noqa: E402

EDGES = ("top", "bottom", "left", "right")


def _print(data: bytes) -> bytes:
    return similar.fingerprint(decode_rgb(data, None, max_pixels=10**8))


def _copies(image: Image.Image) -> dict[str, list[bytes]]:
    w, h = image.size
    copies = {
        "JPEG quality 60": [encode(image, "JPEG", quality=60)],
        "resized by one pixel": [encode(image.resize((w - 1, h), Image.Resampling.BILINEAR))],
        "PNG converted to JPEG (q85)": [encode(image, "JPEG", quality=85)],
    }
    for share in (0.02, 0.04, 0.05):
        copies[f"cropped {share:.0%} off one edge"] = [encode(crop_edge(image, share, edge)) for edge in EDGES]
    return copies


def planted(count: int) -> None:
    found: dict[str, list[int]] = {}
    for seed in range(2000, 2000 + count):
        image = picture(seed)
        original = _print(encode(image))
        for kind, copies in _copies(image).items():
            found.setdefault(kind, []).extend(similar.distance(original, _print(c)) for c in copies)
    print(f"planted copies of {count} pictures (threshold {similar.THRESHOLD}):")
    for kind, distances in found.items():
        d = np.array(distances)
        print(
            f"  {kind:30s} n={len(d):5d}  largest {d.max():3d}  p99 {np.percentile(d, 99):5.1f}  "
            f"over the threshold {np.count_nonzero(d > similar.THRESHOLD)}"
        )


def distinct(count: int) -> None:
    prints = [_print(encode(picture(seed))) for seed in range(5000, 5000 + count)]
    d = np.array([similar.distance(a, b) for a, b in itertools.combinations(prints, 2)])
    print(
        f"distinct pictures: {count} ({len(d)} pairs): nearest {d.min()}, 0.01 % of pairs under "
        f"{np.percentile(d, 0.01):.0f}; pairs meeting the rule: {len(similar.near_pairs(prints))}"
    )


def fingerprint_cost() -> None:
    for size in ((96, 96), (500, 375), (4000, 3000)):
        image = picture(1).resize(size, Image.Resampling.BICUBIC)
        similar.fingerprint(image)
        started = time.perf_counter()
        for _ in range(20):
            similar.fingerprint(image)
        print(f"fingerprint of a {size[0]}x{size[1]} image: {(time.perf_counter() - started) / 20 * 1000:.1f} ms")


def search_cost(count: int) -> None:
    prints = [similar.fingerprint(picture(seed)) for seed in range(100_000, 100_000 + count)]
    for n in sorted({count // 10, count // 3, count}):
        started = time.perf_counter()
        pairs = similar.near_pairs(prints[:n])
        print(f"search over {n} distinct fingerprints: {time.perf_counter() - started:.1f} s, {len(pairs)} pairs")
    # Every image one mean colour: the colour cells prune nothing, every pair is compared.
    grey = [p[: 16 * similar.VARIANTS] + bytes([100, 100, 100]) for p in prints]
    started = time.perf_counter()
    pairs = similar.near_pairs(grey)
    print(
        f"search over {len(grey)} of one colour: {time.perf_counter() - started:.1f} s; hash-only coincidences "
        f"within the threshold: {sorted(pairs.values())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=1000, help="pictures whose copies are planted")
    parser.add_argument("--distinct", type=int, default=1500, help="distinct pictures compared pairwise")
    parser.add_argument("--search", type=int, default=30000, help="fingerprints the search is timed on")
    args = parser.parse_args()
    planted(args.pictures)
    distinct(args.distinct)
    fingerprint_cost()
    search_cost(args.search)


if __name__ == "__main__":
    main()
