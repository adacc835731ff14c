"""A bottleneck job's first run and its feature-cache hits, end to end as a user sees them.

    .venv/bin/python benchmarks/bench_cache_hit.py [--train 300] [--validation 100] [--size 150] [--epochs 10]

Imports a generated dataset (benchmarks/datagen.py, 2 classes) through the ingest service and starts the
training worker and the warm worker exactly as bin/run declares them (bin/launch.py). Then queues the
same bottleneck experiment through the experiments service (what the API and the form call) and times
each run from that call to `succeeded`:
- the first run, which extracts the features (queue `training`, a fresh process per job);
- a cache hit sent to `training` as before the warm worker existed (TL_WARM_QUEUE empty);
- three cache hits on the warm worker (queue `training-warm`), the first one right after it started.
Prints where each run's time went: the queue, the engine's extraction, head training, the base's
build, evaluation, saving, the round trip, and the rest (the process's start and imports). Issue 20,
point 3: goal >= 20x faster. Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/14, flushed first).
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_workers import _configure, _stop  # noqa: E402

_spec = importlib.util.spec_from_file_location("launch", ROOT / "bin" / "launch.py")
launch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launch)

PARTS = ("feature_extraction_s", "training_s", "base_build_s", "evaluation_s", "save_s", "round_trip_s")


def _start(processes, env: dict, tmp: Path) -> list[subprocess.Popen]:
    """bin/run's declared worker processes, with the benchmark's settings."""
    started = []
    for process in processes:
        log = open(tmp / f"{process.name}.log", "wb")  # noqa: SIM115 - closed with the process
        started.append(
            subprocess.Popen(
                process.argv, cwd=ROOT, env={**os.environ, **env, **dict(process.env)}, stdout=log, stderr=log
            )
        )
    return started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=300, help="training images per class")
    parser.add_argument("--validation", type=int, default=100, help="validation images per class")
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-cache-hit-"))
    env = _configure(tmp)
    env["TL_TEST_FRACTION"] = os.environ["TL_TEST_FRACTION"] = "0"  # the blog's two splits
    env["TL_WARM_QUEUE"] = os.environ["TL_WARM_QUEUE"] = launch.WARM_QUEUE
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from benchmarks.datagen import make_dataset
    from webapp.core.redis import redis_client
    from webapp.experiments import services
    from webapp.projects.datasets import dataset_import_path
    from webapp.projects.models import Project

    call_command("migrate", verbosity=0)
    redis_client().flushdb()
    user = get_user_model().objects.create_user("bench")
    project = Project.objects.create(owner=user, name="Cache hit")
    data = make_dataset(tmp / "shapes", classes=2, train=args.train, validation=args.validation, size=args.size)
    dataset = dataset_import_path(project=project, path=data, user=user)
    config = {"mode": "bottleneck", "weights": "none", "image_size": [args.size, args.size], "epochs": args.epochs}
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {dataset.stats['images']} images at "
          f"{args.size}x{args.size}; bottleneck, VGG16 weights none, {args.epochs} epochs")  # fmt: skip

    workers = _start([*launch.training_workers({}), *launch.warm_worker({})], env, tmp)
    runs = [
        ("first run", launch.WARM_QUEUE),
        ("hit, cold", ""),
        *[(f"hit, warm {i}", launch.WARM_QUEUE) for i in (1, 2, 3)],
    ]
    rows = []
    try:
        time.sleep(15)  # the workers' own start (and the warm child's TensorFlow import), before any timing
        for run, warm_queue in runs:
            settings.TL_WARM_QUEUE = warm_queue
            started = time.perf_counter()
            experiment = services.experiment_create(
                project=project, dataset=dataset, config=config, name=run, user=user
            )
            job = experiment.jobs.get()
            while job.status not in ("succeeded", "failed", "cancelled"):
                time.sleep(0.02)
                job.refresh_from_db()
            wall = time.perf_counter() - started
            if job.status != "succeeded":
                raise SystemExit(f"{run}: {job.status}: {job.error}")
            worker_s = (job.finished_at - job.started_at).total_seconds()
            rows.append((run, job.queue, wall, wall - worker_s, worker_s, job.result["timings"]))
            print(f"{run}: {wall:.2f} s on {job.queue}", flush=True)
    finally:
        _stop(workers)

    print()
    print(f"{'run':>12} {'queue':>14} {'call->succeeded s':>18} {'wait s':>7} {'job s':>6} {'extract s':>10} "
          f"{'head s':>7} {'base s':>7} {'eval s':>7} {'save s':>7} {'verify s':>9} {'rest s':>7}  precision")  # fmt: skip
    for run, queue, wall, waited, worker_s, t in rows:
        parts = [float(t.get(key) or 0.0) for key in PARTS]
        print(f"{run:>12} {queue:>14} {wall:>18.2f} {waited:>7.2f} {worker_s:>6.2f} "
              + " ".join(f"{v:>{w}.2f}" for v, w in zip(parts, (10, 7, 7, 7, 7, 9), strict=True))
              + f" {worker_s - sum(parts):>7.2f}  {t['precision']['used']} ({t['precision']['source']})")  # fmt: skip
    first = rows[0][2]
    for run, _queue, wall, *_ in rows[1:]:
        print(f"{run}: {first / wall:.1f}x faster than the first run end to end (goal >= 20x)")
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
