"""Cost as data grows (issue 20, point 5): ingest and a bottleneck run on 1k, 5k and 20k small images.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,5000,20000] [--image-size 48] [--train-size 32]
                                               [--epochs 4] [--classes 4] [--quick] [--skip-train] [--keep]

For each size, a zip of generated --image-size JPEG shapes (benchmarks/datagen.py's drawing, one folder
per class, so the app splits it: 20 % validation, then 10 % of the rest as test) is
1. ingested as an upload: dataset_create_from_archive streams it to storage, then dataset_ingest (the
   ingest task's body) extracts, verifies, fingerprints and splits it, against a temporary SQLite
   database and storage root;
2. trained on: workers.ml.train.train, bottleneck mode, VGG16 with weights none at --train-size
   (VGG16's min_size, 32, by default: it keeps the whole run near 10 minutes on 2 busy cores),
   precision float32 so the sizes compare, a few epochs; evaluation, the saved model and its round
   trip (a fresh process, not counted in the memory figures) included.
Each stage runs in its own child process, so its peak RSS (the kernel's VmHWM) is its own and its
size's. The times are taken inside the child, after its imports (Django, TensorFlow), and so are
"RSS at start" (what the imports cost, before any image) and the sampled peak of anonymous memory
(RssAnon, every 20 ms: memory-mapped features count in VmHWM as file pages, not here). Wall time
on a shared machine follows the other tenants' load; the child's CPU time (user + system, all its
threads) follows it less, so both are printed.

Goals (issue 20): time per image flat (within 20 %) across sizes, peak RSS growing far slower than
the data. The ratios 5k/1k and 20k/1k are printed for both; a stage's fixed cost (building VGG16,
the round trip's fresh process) weighs most on the smallest size, so training's extraction and head
rates, and the marginal cost of an image beyond the smallest size, are printed too. `uptime` is
printed at start and end.
"""

import argparse
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_workers import _configure as _configure_app  # noqa: E402


def _configure(tmp: Path) -> None:
    # Nothing is published: the ingest child records the message instead (as the tests do).
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/8")
    _configure_app(tmp)  # the same temporary database, storage and settings as bench_workers


# --- memory, measured inside each child ------------------------------------------------------------


def _status() -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon and RssFile of this process, in MB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


class _Sampler:
    """Peak RssAnon and RssFile, sampled every 20 ms (the kernel keeps only the peak of their sum), and
    the peak RssAnon of each phase the stage names in ``phase`` (training's progress phases)."""

    def __init__(self):
        self.peak = {"RssAnon": 0.0, "RssFile": 0.0}
        self.phase, self.by_phase = "start", {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._done.is_set():
            now = _status()
            for key in self.peak:
                self.peak[key] = max(self.peak[key], now[key])
            self.by_phase[self.phase] = max(self.by_phase.get(self.phase, 0.0), now["RssAnon"])
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def _cpu_s() -> float:
    """User and system CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _memory(start: dict, sampler: _Sampler) -> dict:
    end = _status()
    return {
        "rss_start_mb": start["VmRSS"],
        "peak_rss_mb": end["VmHWM"],
        "peak_anon_mb": sampler.peak["RssAnon"],
        "peak_file_mb": sampler.peak["RssFile"],
    }


# --- the stages, each run as `bench_scale.py --stage NAME --job FILE` ---------------------------------


def _stage_ingest(job: dict) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import UploadedFile
    from PIL import Image

    from webapp.core import storage
    from webapp.projects.datasets import dataset_create_from_archive, dataset_ingest
    from webapp.projects.ingest.similar import fingerprint
    from webapp.projects.models import Project
    from workers.celery import app

    sent = []
    app.send_task = lambda name, args=None, kwargs=None, **options: sent.append(options["task_id"])
    fingerprint(Image.new("RGB", (8, 8)))  # pHash imports scipy once per process, not per upload
    user = get_user_model().objects.get(username="bench")
    project = Project.objects.get(pk=job["project"])
    archive = Path(job["zip"])

    start, cpu = _status(), _cpu_s()
    with _Sampler() as sampler:
        started = time.perf_counter()
        with open(archive, "rb") as fh:
            # A file on disk, as Django hands over any upload above FILE_UPLOAD_MAX_MEMORY_SIZE.
            upload = UploadedFile(fh, name=archive.name, content_type="application/zip", size=archive.stat().st_size)
            dataset = dataset_create_from_archive(project=project, uploaded_file=upload, user=user)
        uploaded = time.perf_counter()
        dataset = dataset_ingest(dataset_id=dataset.pk, task_id=sent[-1], worker="bench")
        seconds, cpu = time.perf_counter() - started, _cpu_s() - cpu
    if dataset.status != "ready":
        raise SystemExit(f"ingest of {archive.name} ended {dataset.status}: {dataset.error}")
    totals = dataset.report["totals"]
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "upload_s": uploaded - started,
        "images": dataset.stats["images"],
        "splits": {s: dataset.stats[s] for s in ("train", "validation", "test")},
        "duplicate_groups": totals["duplicate_groups"],
        "dataset_dir": str(storage.dataset_dir(dataset.pk)),
        "feature_hash": dataset.feature_hash,
        **_memory(start, sampler),
    }


def _stage_train(job: dict) -> dict:
    from workers.ml.config import parse_config
    from workers.ml.train import train

    config = parse_config(job["config"])
    cache_dir = Path(job["cache_dir"])
    start, cpu = _status(), _cpu_s()
    with _Sampler() as sampler:
        started = time.perf_counter()
        result = train(
            config=config,
            dataset_dir=Path(job["dataset_dir"]),
            output_dir=Path(job["output_dir"]),
            cache_dir=cache_dir,
            dataset_hash=job["feature_hash"],
            on_progress=lambda p: setattr(sampler, "phase", p.phase),
        )
        seconds, cpu = time.perf_counter() - started, _cpu_s() - cpu
    t = result.timings
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "extraction_s": t["feature_extraction_s"],
        "extracted": t["extracted_images"],
        "head_s": t["training_s"],
        "epochs": t["epochs_trained"],
        "accuracy": result.evaluation["accuracy"],
        "features_mb": sum(p.stat().st_size for p in cache_dir.rglob("*.npy")) / 2**20,
        "anon_by_phase": sampler.by_phase,
        **_memory(start, sampler),
    }


STAGES = {"ingest": _stage_ingest, "train": _stage_train}


def _run_stage(name: str, job: dict, tmp: Path) -> dict:
    job_file = tmp / f"job-{name}-{time.monotonic_ns()}.json"
    job_file.write_text(json.dumps(job))
    done = subprocess.run(
        [sys.executable, __file__, "--stage", name, "--job", str(job_file)], cwd=ROOT, env=os.environ, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the {name} stage failed (exit {done.returncode})")
    return json.loads(job_file.with_suffix(".out.json").read_text())


# --- the parent ------------------------------------------------------------------------------------


def _write_zip(path: Path, *, images: int, classes: int, size: int, seed: int) -> int:
    """``images`` JPEG shapes, one folder per class, stored (JPEG does not deflate); returns its bytes."""
    from benchmarks.datagen import SHAPES, _draw

    rng = random.Random(seed)
    names = SHAPES[:classes]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(images):
            shape = names[i % classes]
            buffer = io.BytesIO()
            _draw(shape, size, rng).save(buffer, format="JPEG", quality=90)
            zf.writestr(f"shapes/{shape}/{shape}_{i:05d}.jpg", buffer.getvalue())
    return path.stat().st_size


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _cpu() -> str:
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def _short(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _ratios(rows: dict, stage: str, value, sizes: list[int]) -> str:
    """``value(row, n)`` of each larger size over the smallest's, e.g. "5k/1k 1.04  20k/1k 1.10"."""
    base = value(rows[(sizes[0], stage)], sizes[0])
    return "  ".join(f"{_short(n)}/{_short(sizes[0])} {value(rows[(n, stage)], n) / base:5.2f}" for n in sizes[1:])


def _print_tables(rows: dict, sizes: list[int], stages: list[str]) -> None:
    print("\n| images | stage | wall s | ms/image | CPU ms/image | peak RSS MB | RSS at start MB | peak anon MB "
          "| features MB |")  # fmt: skip
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in sizes:
        for stage in stages:
            r = rows[(n, stage)]
            features = f"{r['features_mb']:.1f}" if "features_mb" in r else ""
            print(f"| {n:,} | {stage} | {r['seconds']:.1f} | {1000 * r['seconds'] / n:.2f} | {1000 * r['cpu_s'] / n:.2f} "
                  f"| {r['peak_rss_mb']:.0f} | {r['rss_start_mb']:.0f} | {r['peak_anon_mb']:.0f} | {features} |")  # fmt: skip

    if "train" in stages:
        print("\ntraining apart: extraction runs over train+validation, the head over train each epoch; the rest is")
        print("building the base, scoring the test split through the whole model, saving, the round trip")
        print("| images | extracted | extraction ms/image | head s | head ms/image-epoch | rest s "
              "| peak anon MB extracting / head / evaluating |")  # fmt: skip
        print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for n in sizes:
            r, train_images = rows[(n, "train")], rows[(n, "ingest")]["splits"]["train"]
            rest = r["seconds"] - r["extraction_s"] - r["head_s"]
            by = r["anon_by_phase"]
            peaks = [
                by.get("extracting", 0),
                by.get("training", 0),
                max(by.get("evaluating", 0), by.get("verifying", 0)),
            ]
            print(f"| {n:,} | {r['extracted']:,} | {1000 * r['extraction_s'] / r['extracted']:.2f} | {r['head_s']:.1f} "
                  f"| {1000 * r['head_s'] / (train_images * r['epochs']):.3f} | {rest:.1f} "
                  f"| {' / '.join(f'{p:.0f}' for p in peaks)} |")  # fmt: skip

    if len(sizes) < 2:
        return
    data = "  ".join(f"{_short(n)}/{_short(sizes[0])} {n / sizes[0]:5.2f}" for n in sizes[1:])
    print(f"\nratios to the smallest size (the data: {data})")
    measures = {
        "ms/image": lambda r, n: r["seconds"] / n,
        "CPU ms/image": lambda r, n: r["cpu_s"] / n,
        "peak RSS": lambda r, n: r["peak_rss_mb"],
        "peak RSS above start": lambda r, n: r["peak_rss_mb"] - r["rss_start_mb"],
        "peak anon": lambda r, n: r["peak_anon_mb"],
    }
    for stage in stages:
        for label, value in measures.items():
            print(f"  {stage:6} {label:22} {_ratios(rows, stage, value, sizes)}")
    if "train" in stages:
        print(
            f"  train  extraction ms/image   {_ratios(rows, 'train', lambda r, n: r['extraction_s'] / r['extracted'], sizes)}"
        )
    # What each image beyond the smallest size cost: the stage's fixed part cancels out.
    for stage in stages:
        small = rows[(sizes[0], stage)]
        for label, key in (("marginal ms/image", "seconds"), ("marginal CPU ms/image", "cpu_s")):
            marginal = "  ".join(
                f"{_short(sizes[0])}->{_short(n)} {1000 * (rows[(n, stage)][key] - small[key]) / (n - sizes[0]):5.2f}"
                for n in sizes[1:]
            )
            print(f"  {stage:6} {label:22} {marginal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,20000", help="images per dataset, comma-separated")
    parser.add_argument("--image-size", type=int, default=48, help="side of the generated JPEGs, px")
    parser.add_argument("--train-size", type=int, default=32, help="training's image_size (VGG16's min_size is 32)")
    parser.add_argument("--epochs", type=int, default=4, help="head epochs")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 and 600 images, 2 epochs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--skip-train", action="store_true", help="ingest only")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.stage:  # a child: one stage, its result next to its job file
        job_file = Path(args.job)
        result = STAGES[args.stage](json.loads(job_file.read_text()))
        job_file.with_suffix(".out.json").write_text(json.dumps(result))
        return

    sizes = [300, 600] if args.quick else [int(s) for s in args.sizes.split(",")]
    epochs = 2 if args.quick else args.epochs
    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-scale-"))
    _configure(tmp)
    print(f"start: {_uptime()}")
    print(f"CPU: {_cpu()}, {os.cpu_count()} cores; sizes {sizes}, {args.classes} classes, "
          f"{args.image_size}x{args.image_size} JPEG, VGG16 at {args.train_size}x{args.train_size} weights none float32, "
          f"{epochs} epochs", flush=True)  # fmt: skip

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from webapp.projects.models import Project

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench")
    project = Project.objects.create(owner=user, name="Scale")
    config = {"mode": "bottleneck", "backbone": "vgg16", "weights": "none", "precision": "float32",
              "image_size": [args.train_size, args.train_size], "epochs": epochs, "batch_size": 32}  # fmt: skip

    rows: dict[tuple[int, str], dict] = {}
    try:
        for n in sizes:
            archive = tmp / f"shapes-{n}.zip"
            started = time.perf_counter()
            zip_bytes = _write_zip(archive, images=n, classes=args.classes, size=args.image_size, seed=n)
            print(f"\n{n} images: zip of {zip_bytes / 2**20:.1f} MB written in {time.perf_counter() - started:.0f} s",
                  flush=True)  # fmt: skip
            ingest = _run_stage("ingest", {"zip": str(archive), "project": project.pk}, tmp)
            archive.unlink()
            rows[(n, "ingest")] = ingest
            print(f"  ingest: {ingest['seconds']:.1f} s, splits {ingest['splits']}, "
                  f"{ingest['duplicate_groups']} duplicate groups", flush=True)  # fmt: skip
            if args.skip_train:
                continue
            job = {"config": config, "dataset_dir": ingest["dataset_dir"], "feature_hash": ingest["feature_hash"],
                   "cache_dir": str(tmp / "features" / str(n)), "output_dir": str(tmp / "models" / str(n))}  # fmt: skip
            rows[(n, "train")] = trained = _run_stage("train", job, tmp)
            print(f"  train: {trained['seconds']:.1f} s (extraction {trained['extraction_s']:.1f} s, head "
                  f"{trained['head_s']:.1f} s), accuracy {trained['accuracy']:.3f}", flush=True)  # fmt: skip
    finally:
        end = _uptime()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    _print_tables(rows, sizes, ["ingest"] if args.skip_train else ["ingest", "train"])
    print(f"\nend: {end}")


if __name__ == "__main__":
    main()
