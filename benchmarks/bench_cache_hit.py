"""A bottleneck job's first run and its feature-cache hit, end to end as a user sees them.

    .venv/bin/python benchmarks/bench_cache_hit.py [--train 300] [--validation 100] [--size 150] [--epochs 10]

Imports a generated dataset (benchmarks/datagen.py, 2 classes) through the ingest service, starts one
training worker as bin/run does (queue `training`, one process, replaced after each job), then queues
the same bottleneck experiment twice through the experiments service (what the API and the form call)
and times each from the call to `succeeded`. The second run finds the first one's features (issue 20,
point 3: goal >= 20x faster). Prints where each run's time went: waiting for the worker, the engine's
feature extraction and head training (the job's recorded timings), and the rest (a fresh process
importing TensorFlow, building the base, evaluating, saving, and loading the model back in another
fresh process before success). Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/14, flushed first).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_workers import _configure, _start_workers, _stop  # noqa: E402


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
    import django

    django.setup()
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

    workers = _start_workers(1, env, tmp)
    rows = []
    try:
        time.sleep(8)  # the worker's own start, so that the timing starts with it listening
        for run in ("first run", "cache hit"):
            started = time.perf_counter()
            experiment = services.experiment_create(
                project=project, dataset=dataset, config=config, name=run, user=user
            )
            job = experiment.jobs.get()
            while job.status not in ("succeeded", "failed", "cancelled"):
                time.sleep(0.1)
                job.refresh_from_db()
            wall = time.perf_counter() - started
            if job.status != "succeeded":
                raise SystemExit(f"{run}: {job.status}: {job.error}")
            timings = job.result["timings"]
            worker_s = (job.finished_at - job.started_at).total_seconds()
            waited = wall - worker_s
            rows.append((run, wall, waited, worker_s, timings))
            print(f"{run}: {wall:.1f} s", flush=True)
    finally:
        _stop(workers)

    print()
    print(f"{'run':>10} {'API->succeeded s':>17} {'queue s':>8} {'job s':>6} {'extract s':>10} {'head s':>7} "
          f"{'rest s':>7}  precision")  # fmt: skip
    for run, wall, waited, worker_s, t in rows:
        rest = worker_s - t["feature_extraction_s"] - t["training_s"]
        print(f"{run:>10} {wall:>17.1f} {waited:>8.1f} {worker_s:>6.1f} {t['feature_extraction_s']:>10.1f} "
              f"{t['training_s']:>7.1f} {rest:>7.1f}  {t['precision']['used']} ({t['precision']['source']})")  # fmt: skip
    print(f"\ncache hit: {rows[0][1] / rows[1][1]:.1f}x faster end to end (goal >= 20x); load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
