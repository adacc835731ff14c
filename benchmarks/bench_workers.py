"""Scaling out on one machine: the same batch of training jobs with one training worker, then with two.

    .venv/bin/python benchmarks/bench_workers.py [--jobs 4] [--size 64] [--epochs 6] [--mode scratch]

Imports a generated dataset (benchmarks/datagen.py) through the ingest service, then for 1 and 2
training workers (each as bin/run starts one: queue `training`, one process, replaced after each
job) queues --jobs identical experiments through the experiments service and times them from the
first enqueue to the last success. Prints the wall time, jobs per minute, each job's own run time
and the speed-up. Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/15, flushed first).
Two workers on one machine share its cores: the figure says what a second worker buys here, not
what a second host would (docs/decisions.md and the README's "Scaling out").
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _configure(tmp: Path) -> dict:
    env = {
        "DJANGO_SETTINGS_MODULE": "webapp.settings.base",
        "DJANGO_SECRET_KEY": "bench-only",
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "TL_VAR_DIR": str(tmp / "var"),
        "TL_STORAGE_ROOT": str(tmp / "storage"),
        "TL_LOG_LEVEL": "WARNING",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        "TL_WORKER_DEVICE": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    return env


def _start_workers(n: int, env: dict, tmp: Path) -> list[subprocess.Popen]:
    workers = []
    for i in range(n):
        log = open(tmp / f"worker-{n}-{i}.log", "wb")  # noqa: SIM115 - closed with the process
        cmd = [sys.executable, "-m", "celery", "-A", "workers.celery", "worker", "-Q", "training", "-c", "1",
               "--max-tasks-per-child", "1", "-n", f"bench{n}-{i}@%h", "-l", "warning", "--without-gossip",
               "--without-mingle"]  # fmt: skip
        workers.append(subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log))
    return workers


def _stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--mode", choices=["scratch", "bottleneck"], default="scratch")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-workers-"))
    env = _configure(tmp)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from benchmarks.datagen import make_dataset
    from webapp.core.redis import redis_client
    from webapp.experiments import services
    from webapp.experiments.models import TrainingJob
    from webapp.projects.datasets import dataset_import_path
    from webapp.projects.models import Project

    call_command("migrate", verbosity=0)
    redis_client().flushdb()
    user = get_user_model().objects.create_user("bench")
    project = Project.objects.create(owner=user, name="Scaling")
    data = make_dataset(tmp / "shapes", classes=3, train=40, validation=10, size=args.size, seed=1)
    dataset = dataset_import_path(project=project, path=data, user=user)
    config = {"mode": args.mode, "image_size": [args.size, args.size], "epochs": args.epochs, "batch_size": 16}
    if args.mode == "bottleneck":
        config["weights"] = "none"
    print(f"{os.cpu_count()} cores; {args.jobs} {args.mode} jobs, {args.size}x{args.size}, {args.epochs} epochs, "
          f"{dataset.stats['images']} images")  # fmt: skip

    rows = []
    for n in (1, 2):
        workers = _start_workers(n, env, tmp)
        time.sleep(8)  # the workers' imports, so that the timing starts with them listening
        started = time.perf_counter()
        jobs = [
            services.experiment_create(project=project, dataset=dataset, config=config, name=f"w{n}-{i}", user=user)
            .jobs.get()
            .pk
            for i in range(args.jobs)
        ]
        while True:
            states = list(TrainingJob.objects.filter(pk__in=jobs).values_list("status", flat=True))
            if all(s in ("succeeded", "failed", "cancelled") for s in states):
                break
            time.sleep(0.5)
        wall = time.perf_counter() - started
        _stop(workers)
        done = TrainingJob.objects.filter(pk__in=jobs)
        failed = [j.error for j in done if j.status != "succeeded"]
        if failed:
            raise SystemExit(f"{len(failed)} jobs did not succeed: {failed[0]}")
        own = [(j.finished_at - j.started_at).total_seconds() for j in done]
        rows.append((n, wall, sum(own) / len(own)))
        print(f"{n} worker(s): {wall:.1f} s for {args.jobs} jobs", flush=True)

    print()
    print(f"{'training workers':>16} {'wall s':>8} {'jobs/min':>9} {'mean job s':>11} {'speed-up':>9}")
    for n, wall, mean in rows:
        print(f"{n:>16} {wall:>8.1f} {60 * args.jobs / wall:>9.2f} {mean:>11.1f} {rows[0][1] / wall:>8.2f}x")


if __name__ == "__main__":
    main()
