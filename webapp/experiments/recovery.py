"""Recovery of training jobs nobody is running any more (a beat task calls these every minute).

A running job whose heartbeat stopped is queued again to continue from its checkpoint, a bounded
number of attempts, or else failed ("worker lost"); a queued job whose message is in no queue and
held by no worker is sent again, a few times (docs/architecture.md, "Job states";
docs/decisions.md, "Resumable training jobs").
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .checkpoints import checkpoint_epoch
from .jobqueue import BrokerUnavailable, job_enqueue
from .models import TrainingJob
from .runner import MAX_ATTEMPTS

log = logging.getLogger(__name__)

Status = TrainingJob.Status
# Publishes of one job's message, first send included, before a vanished message fails the job.
MAX_ENQUEUES = 3


def _active_task_ids(timeout: float) -> set[str] | None:
    """Task ids the workers say they are running; None when nobody answered (unknown, not lost)."""
    from workers.celery import app

    try:
        replies = app.control.inspect(timeout=timeout).active()
    except Exception:  # noqa: BLE001 - a transport error means we could not ask: unknown
        return None
    if not replies:
        return None
    return {task["id"] for tasks in replies.values() for task in (tasks or [])}


def training_jobs_reap(*, now=None, ask_workers: bool = True, inspect_timeout: float = 1.0) -> list[int]:
    """Take back running jobs whose heartbeat is older than TL_HEARTBEAT_STALE_SECONDS.

    A job with a checkpoint, not asked to cancel and with fewer than MAX_ATTEMPTS attempts is
    queued again and sent to the training queue: its next attempt continues after the checkpoint's
    epoch. Any other is failed ("worker lost"), its checkpoint kept so that the user can resume it.

    The heartbeat is the evidence: a job's child beats every TL_HEARTBEAT_SECONDS from a thread,
    even inside one long batch. Workers are also asked which tasks they run: a job a worker
    reports as active is spared (its database writes may be what failed), but silence or an
    unanswered inspect proves nothing, so it neither spares nor condemns. Returns the reaped ids.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TL_HEARTBEAT_STALE_SECONDS)
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    candidates = list(
        TrainingJob.objects.filter(stale, status=Status.RUNNING).values_list(
            "pk", "task_id", "worker", "heartbeat_at", "attempts", "cancel_requested"
        )
    )
    if not candidates:
        return []
    active = _active_task_ids(inspect_timeout) if ask_workers else None
    # Even a worker that claims the task cannot keep it past the hard time limit.
    hard_cutoff = now - timedelta(seconds=settings.TL_TRAINING_TIME_LIMIT + settings.TL_HEARTBEAT_STALE_SECONDS)
    reaped = []
    for pk, task_id, worker, beat, attempts, cancelling in candidates:
        if active and task_id in active and beat and beat >= hard_cutoff:
            log.warning("job %s: heartbeat stale but %s still reports it active; not reaping", pk, worker)
            continue
        since = beat.isoformat(timespec="seconds") if beat else "its start"
        lost = (
            f"worker lost: no heartbeat from {worker or 'the worker'} since {since} "
            f"(more than {settings.TL_HEARTBEAT_STALE_SECONDS} s). The worker probably crashed or was "
            "killed (out of memory?)"
        )
        done = checkpoint_epoch(pk)
        if done is not None and not cancelling and attempts < MAX_ATTEMPTS:
            if _requeue_to_resume(pk, stale, f"{lost}; continuing after epoch {done} (attempt {attempts + 1})."):
                reaped.append(pk)
            continue
        if done is not None:
            message = f"{lost}; it stopped after epoch {done}: resume it to continue from there, or retry it."
        else:
            message = f"{lost}; retry the job."
        # The same staleness test in the UPDATE: a heartbeat that landed meanwhile keeps the job alive.
        if TrainingJob.objects.filter(stale, pk=pk, status=Status.RUNNING).update(
            status=Status.FAILED, error=message, finished_at=now
        ):
            log.error("job %s reaped: %s", pk, message)
            reaped.append(pk)
    return reaped


def _requeue_to_resume(pk: int, stale: Q, message: str) -> bool:
    # The same staleness test in the UPDATE as for failing; the task id is kept, so that the old
    # message, if Redis ever redelivers it, and the new one race for one claim.
    if not TrainingJob.objects.filter(stale, pk=pk, status=Status.RUNNING, cancel_requested=False).update(
        status=Status.QUEUED, worker="", heartbeat_at=None, started_at=None, phase="", error=message, enqueue_count=0
    ):
        return False
    log.error("job %s reaped, queued to resume: %s", pk, message)
    try:
        job_enqueue(job=TrainingJob.objects.get(pk=pk))
    except BrokerUnavailable:
        pass  # job_enqueue failed the row with the reason; the checkpoint stays for a resume
    return True


def training_jobs_requeue_orphans(*, now=None) -> dict[str, list[int]]:
    """Re-send queued jobs whose message is in no queue and not held by any worker.

    That happens when a web process dies between its commit and the publish, or when Redis lost
    its data (it keeps nothing on disk here). A job queued for TL_QUEUED_ORPHAN_SECONDS whose
    message the broker shows in no training queue and no worker holds (`lost_task_ids`: exact on
    Redis, once the queues drain on RabbitMQ) is re-sent under the same task id, at most
    MAX_ENQUEUES times in all, then failed with the reason. When the broker cannot tell, nothing is
    concluded. A message re-sent twice is harmless: only one delivery wins the claim.
    """
    from webapp.core.broker import broker_name, lost_task_ids

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TL_QUEUED_ORPHAN_SECONDS)
    old = Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True, created_at__lt=cutoff)
    candidates = list(TrainingJob.objects.filter(old, status=Status.QUEUED, cancel_requested=False))
    outcome: dict[str, list[int]] = {"requeued": [], "failed": []}
    if not candidates:
        return outcome
    lost = lost_task_ids(settings.TL_WATCHED_QUEUES, [job.task_id for job in candidates])
    if lost is None:
        return outcome
    for job in candidates:
        if str(job.task_id) not in lost:
            continue
        if job.enqueue_count >= MAX_ENQUEUES:
            message = (
                f"The job's message was lost {job.enqueue_count} times before any worker took it "
                f"(is {broker_name()} losing data or restarting?); retry the job."
            )
            if TrainingJob.objects.filter(old, pk=job.pk, status=Status.QUEUED).update(
                status=Status.FAILED, error=message, finished_at=now
            ):
                outcome["failed"].append(job.pk)
            continue
        log.warning("job %s: queued but its message is gone; sending it again", job.pk)
        try:
            job_enqueue(job=job)
        except BrokerUnavailable:
            outcome["failed"].append(job.pk)
            continue
        outcome["requeued"].append(job.pk)
    return outcome
