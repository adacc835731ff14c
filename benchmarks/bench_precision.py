"""The frozen base in float32 and in bfloat16 on this CPU: images per second and how far the features move.

    .venv/bin/python benchmarks/bench_precision.py [--backbone vgg16] [--size 150] [--batch 32] [--repeats 5]

Issue 20 asks for the precision to be chosen by measurement, not by CPU flags (bf16 ran 2.0x float32 on
one EPYC here and 0.85x on another). This prints the CPU's model and flags, then times the backbone
(weights none: the speed does not depend on the values) on one batch of random images, alternating
float32 and Keras's ``mixed_bfloat16`` policy, best of --repeats after a warm-up, and compares the
bf16 features with float32's (relative error of the whole batch, and the worst feature). Each policy is
built in its own child process, as a worker would, so nothing of one leaks into the other.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
policy, backbone, size, batch, repeats, out = sys.argv[1:7]
size, batch, repeats = int(size), int(batch), int(repeats)
keras.mixed_precision.set_global_policy(policy)
sys.path.insert(0, %r)
from workers.ml.backbones import build_base
base = build_base(backbone, (size, size), None, 0)
images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3)).astype("float32")
run = lambda: np.asarray(base(images, training=False), np.float32)
run()
times = []
for _ in range(repeats):
    started = time.perf_counter(); features = run(); times.append(time.perf_counter() - started)
np.save(out, features)
print(json.dumps({"policy": policy, "best_s": min(times), "images_per_s": batch / min(times)}))
"""


def _cpu() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile") if f in flags]
    return f"{model}; {os.cpu_count()} cores; flags: {' '.join(wanted) or 'none of the AVX-512/AMX ones'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import tempfile

    import numpy as np

    print(_cpu())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(2):  # alternate, so that a change in the machine's load hits both
            for policy in ("float32", "mixed_bfloat16"):
                out = Path(tmp) / f"{policy}.npy"
                cmd = [sys.executable, "-c", CHILD % str(ROOT), policy, args.backbone, str(args.size),
                       str(args.batch), str(args.repeats), str(out)]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                answer = json.loads(done.stdout.strip().splitlines()[-1])
                best = results.get(policy)
                if best is None or answer["images_per_s"] > best["images_per_s"]:
                    results[policy] = answer
                print(f"round {round_ + 1}: {policy:>15}: {answer['images_per_s']:.1f} images/s", flush=True)
        f32, bf16 = np.load(Path(tmp) / "float32.npy"), np.load(Path(tmp) / "mixed_bfloat16.npy")
    relative = float(np.linalg.norm(bf16 - f32) / max(np.linalg.norm(f32), 1e-12))
    worst = float(np.max(np.abs(bf16 - f32)) / max(float(np.max(np.abs(f32))), 1e-12))
    ratio = results["mixed_bfloat16"]["images_per_s"] / results["float32"]["images_per_s"]
    print()
    print(f"{args.backbone} at {args.size}x{args.size}, batch {args.batch}, weights none, best of {args.repeats}:")
    print(f"  float32:        {results['float32']['images_per_s']:.1f} images/s")
    print(f"  mixed_bfloat16: {results['mixed_bfloat16']['images_per_s']:.1f} images/s ({ratio:.2f}x float32)")
    print(f"  bf16 features vs float32: relative error {relative:.2e}, worst feature {worst:.2e} of the largest")


if __name__ == "__main__":
    main()
