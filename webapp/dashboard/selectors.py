"""Reads for the staff dashboard: jobs from the database, queues from the broker, workers from Celery.

Every outside question (the broker, Redis or RabbitMQ, and the workers) has a short timeout and an explicit "unknown"
answer (None), so the page renders within about a second even when the broker or every
worker is gone. `inspect()` returning None means nobody answered, not that work was lost
(docs/decisions.md, "Asking workers"): the page says "unknown" and leaves the verdict to the reaper's heartbeats.
"""

import statistics
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Q, Sum
from django.utils import timezone

from webapp.core.broker import broker_is_up, broker_name, queue_stats
from webapp.experiments.jobqueue import training_queue
from webapp.experiments.models import TrainingJob
from webapp.predictions.models import PredictionLog

Status = TrainingJob.Status

# Every queue a worker can serve: the training queues (one per device) and the default queue.
QUEUES = (*settings.TL_WATCHED_QUEUES, settings.CELERY_TASK_DEFAULT_QUEUE)
INSPECT_TIMEOUT = 1.0
RECENT_FAILURES = 10
QUEUED_SHOWN = 50
WINDOW = timedelta(hours=24)


def _job_rows():
    # Everything a job row shows, in the same query (no N+1 over experiment/project/user).
    return TrainingJob.objects.with_run_numbers().select_related("experiment__project__owner", "experiment__created_by")


def job_counts() -> dict[str, int]:
    """Jobs per status, every status present (zero included), plus "total"."""
    counts = {status: 0 for status in Status.values}
    for row in TrainingJob.objects.values("status").annotate(n=Count("pk")).order_by():
        counts[row["status"]] = row["n"]
    counts["total"] = sum(counts.values())
    return counts


def running_jobs(*, now: datetime | None = None) -> list[TrainingJob]:
    """Running jobs, oldest first, each with elapsed, eta, heartbeat_age and heartbeat_stale."""
    now = now or timezone.now()
    stale_after = timedelta(seconds=settings.TL_HEARTBEAT_STALE_SECONDS)
    jobs = list(_job_rows().filter(status=Status.RUNNING).order_by("started_at", "pk"))
    for job in jobs:
        job.elapsed_time = job.elapsed(now)
        job.eta_time = job.eta(now)
        job.heartbeat_age = now - job.heartbeat_at if job.heartbeat_at else None
        job.heartbeat_stale = job.heartbeat_age is not None and job.heartbeat_age > stale_after
        job.percent = round(max(0.0, min(job.progress, 1.0)) * 100)
    return jobs


def queued_jobs(*, now: datetime | None = None, limit: int = QUEUED_SHOWN) -> list[TrainingJob]:
    """Queued jobs in the order workers take them (first in, first out), each with its queue
    (where its message was sent) and its position in that queue.

    Each training queue, with prefetch 1, serves messages in publish order, and a job's row is
    created just before its message is sent, so creation order is queue order.
    """
    now = now or timezone.now()
    jobs = list(_job_rows().filter(status=Status.QUEUED).order_by("created_at", "pk")[:limit])
    positions: dict[str, int] = defaultdict(int)
    for job in jobs:
        job.queue = job.queue or training_queue(job.experiment.config)  # rows sent before the queue was kept
        positions[job.queue] += 1
        job.position = positions[job.queue]
        job.waiting = now - job.created_at
    return jobs


def recent_failures(*, limit: int = RECENT_FAILURES) -> list[TrainingJob]:
    return list(_job_rows().filter(status=Status.FAILED).order_by("-finished_at", "-pk")[:limit])


def queue_depths(*, queues=QUEUES, timeout: float = INSPECT_TIMEOUT) -> dict[str, int] | None:
    """Messages waiting in each Celery queue (reserved, unacked ones not included); None if the broker is down."""
    stats = queue_stats(queues, timeout=timeout)
    return None if stats is None else {queue: stats[queue]["messages"] for queue in queues}


def _inspect(destination=None):
    from workers.celery import app

    return app.control.inspect(
        timeout=INSPECT_TIMEOUT, destination=destination, limit=len(destination) if destination else None
    )


def live_workers() -> list[dict] | None:
    """The workers that answer a ping, with what each runs, its pool and concurrency.

    None when they could not be asked (a broker error). A worker that answered the ping but not
    `active` or `stats` keeps None in those fields: unknown, not idle. The ping waits the whole
    timeout (we cannot know how many workers exist); the follow-up questions name the workers
    that answered, so they return as soon as each has replied instead of waiting again.
    """
    try:
        pings = _inspect().ping() or {}
        names = sorted(pings)
        if not names:
            return []
        targeted = _inspect(names)
        active = targeted.active() or {}
        stats = targeted.stats() or {}
        consumed = targeted.active_queues() or {}
        # Our own command (workers/celery.py): the device the worker states it serves.
        devices = targeted._request("tl_device") or {}
    except Exception:  # noqa: BLE001 - kombu raises many transport errors; all of them mean "unknown"
        return None
    workers = []
    for name in names:
        worker_stats = stats.get(name)
        pool = (worker_stats or {}).get("pool") or {}
        tasks = active.get(name)
        queues = consumed.get(name)
        device = devices.get(name)
        workers.append(
            {
                "hostname": name,
                "device": device.get("device") if isinstance(device, dict) else None,
                "gpus": device.get("gpus") if isinstance(device, dict) else None,
                "queues": None if queues is None else sorted(q.get("name", "?") for q in queues),
                "active": None if tasks is None else [_task_summary(task) for task in tasks],
                "pool": _pool_name(pool.get("implementation")) if worker_stats else None,
                "concurrency": pool.get("max-concurrency") if worker_stats else None,
                "processes": len(pool.get("processes") or []) if worker_stats else None,
                "uptime": timedelta(seconds=worker_stats.get("uptime", 0)) if worker_stats else None,
                "total_tasks": sum((worker_stats.get("total") or {}).values()) if worker_stats else None,
            }
        )
    return workers


def queued_per_queue() -> dict[str, int]:
    """Queued jobs per training queue, every queued job counted (the table shows the first few)."""
    counts: dict[str, int] = defaultdict(int)
    for queue, device in TrainingJob.objects.filter(status=Status.QUEUED).values_list(
        "queue", "experiment__config__device"
    ):
        counts[queue or training_queue({"device": device})] += 1
    return dict(counts)


def unserved_queues(workers: list[dict] | None) -> list[dict]:
    """Training queues that hold queued jobs while no answering worker consumes them:
    [{"queue", "jobs", "gpu"}]. Nothing is concluded while the workers, or any worker's queues, are unknown."""
    if workers is None or any(w["queues"] is None for w in workers):
        return []
    served = {queue for w in workers for queue in w["queues"]}
    gpu_queue = settings.TL_TRAINING_QUEUES["gpu"]
    return [
        {"queue": queue, "jobs": n, "gpu": queue == gpu_queue}
        for queue, n in sorted(queued_per_queue().items())
        if queue not in served
    ]


def _pool_name(implementation: str | None) -> str | None:
    # "celery.concurrency.prefork:TaskPool" reads better as "prefork".
    if not implementation:
        return None
    return implementation.rsplit(":", 1)[0].rsplit(".", 1)[-1]


def _task_summary(task: dict) -> dict:
    name = task.get("name") or task.get("type") or "?"
    args = task.get("args")
    job_id = None
    # The training task's only argument is the job id: link the worker's task to the job row.
    if name.endswith("run_training_job") and isinstance(args, list | tuple) and args:
        job_id = args[0]
    return {"id": task.get("id"), "name": name.rsplit(".", 1)[-1], "job_id": job_id}


def throughput(*, now: datetime | None = None) -> dict:
    """Jobs that ended in the last 24 clock hours (this one included): per hour, oldest first,
    by outcome, and their mean run time.

    One query over a day of jobs, bucketed in Python: portable across SQLite and PostgreSQL, and
    a day of training jobs is at most a few thousand rows.
    """
    now = now or timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    hours = [this_hour - timedelta(hours=h) for h in range(23, -1, -1)]
    rows = TrainingJob.objects.filter(status__in=TrainingJob.TERMINAL, finished_at__gte=hours[0]).values_list(
        "status", "started_at", "finished_at"
    )
    per_hour = dict.fromkeys(hours, 0)
    by_status = {status: 0 for status in TrainingJob.TERMINAL}
    durations = []
    for status, started_at, finished_at in rows:
        hour = finished_at.replace(minute=0, second=0, microsecond=0)
        if hour in per_hour:  # a clock set back could put a job "in the future"
            per_hour[hour] += 1
        by_status[status] += 1
        if started_at and finished_at >= started_at:
            durations.append((finished_at - started_at).total_seconds())
    peak = max(per_hour.values()) or 1
    return {
        "finished": sum(by_status.values()),
        "by_status": by_status,
        "per_hour": [{"hour": h, "count": n, "percent": round(100 * n / peak)} for h, n in per_hour.items()],
        "mean_duration": timedelta(seconds=statistics.fmean(durations)) if durations else None,
        "timed": len(durations),
    }


class Median(Aggregate):
    """PostgreSQL's exact median (an ordered-set aggregate Django does not ship)."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def prediction_traffic(*, now: datetime | None = None) -> list[dict]:
    """Per project over the last 24 h: calls, images, failed calls and p50 latency, busiest first."""
    now = now or timezone.now()
    logs = PredictionLog.objects.filter(created_at__gte=now - WINDOW)
    postgres = connection.vendor == "postgresql"
    totals = (
        logs.values("project_id", "project__name", "project__owner__username")
        .annotate(
            calls=Count("pk"),
            images=Sum("image_count"),
            errors=Count("pk", filter=Q(status_code__gte=400)),
            **({"p50": Median("latency_ms")} if postgres else {}),
        )
        .order_by("-calls", "project__name")
    )
    rows = [
        {
            "project_id": r["project_id"],
            "project": r["project__name"],
            "owner": r["project__owner__username"],
            "calls": r["calls"],
            "images": r["images"] or 0,
            "errors": r["errors"],
            "p50_ms": r.get("p50"),
        }
        for r in totals
    ]
    if not postgres and rows:
        # SQLite has no percentile aggregate: stream one column of the day's latencies instead.
        latencies = defaultdict(list)
        for project_id, latency in logs.order_by().values_list("project_id", "latency_ms").iterator():
            latencies[project_id].append(latency)
        for row in rows:
            row["p50_ms"] = statistics.median(latencies[row["project_id"]])
    return rows


def dashboard_snapshot(*, now: datetime | None = None) -> dict:
    """Everything the dashboard shows, gathered once per refresh.

    When the broker is down nobody else is asked: each question would only wait out its own timeout.
    """
    now = now or timezone.now()
    broker_ok, broker_detail = broker_is_up(timeout=INSPECT_TIMEOUT)
    workers = live_workers() if broker_ok else None
    depths = queue_depths() if broker_ok else None
    running = running_jobs(now=now)
    queued = queued_jobs(now=now)
    return {
        "now": now,
        "broker": {"ok": broker_ok, "detail": broker_detail, "name": broker_name()},
        "workers": workers,
        "workers_state": "unknown" if workers is None else ("up" if workers else "none"),
        "queue_depths": depths,
        "counts": job_counts(),
        "running": running,
        "stale_count": sum(1 for job in running if job.heartbeat_stale),
        "stale_after": settings.TL_HEARTBEAT_STALE_SECONDS,
        "queued": queued,
        "unserved": unserved_queues(workers),
        "failures": recent_failures(),
        "throughput": throughput(now=now),
        "traffic": prediction_traffic(now=now),
    }
