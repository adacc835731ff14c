from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from tests.dashboard.factories import make_experiment, make_job, make_project
from webapp.core.redis import redis_client
from webapp.dashboard import selectors
from webapp.experiments.models import TrainingJob
from webapp.predictions.models import PredictionLog

Status = TrainingJob.Status


def test_it_reads_queue_depths_from_real_redis_lists_priorities_included(clean_broker):
    r = redis_client()
    r.lpush("training", "a", "b")
    # kombu's Redis transport keeps priority > 0 messages in "<queue>\x06\x16<step>" lists.
    r.lpush("training\x06\x163", "c")
    r.lpush("default\x06\x169", "d")
    r.lpush("unrelated", "e")
    assert selectors.queue_depths() == {"training": 3, "training-gpu": 0, "default": 1}


def test_it_reports_unknown_queue_depths_when_redis_is_down():
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        assert selectors.queue_depths() is None


def test_it_does_not_ask_workers_when_the_broker_is_down(db, monkeypatch):
    def must_not_be_called():
        raise AssertionError("asked the workers with no broker")

    monkeypatch.setattr(selectors, "live_workers", must_not_be_called)
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        snap = selectors.dashboard_snapshot()
    assert snap["broker"]["ok"] is False
    assert snap["workers"] is None and snap["workers_state"] == "unknown" and snap["queue_depths"] is None


def test_it_treats_unanswered_inspect_replies_as_unknown(monkeypatch):
    class Inspect:
        def __init__(self, destination):
            self.destination = destination

        def ping(self):
            return {"w1@host": {"ok": "pong"}, "w2@host": {"ok": "pong"}}

        def active(self):
            return None  # nobody answered in time

        def stats(self):
            return {
                "w1@host": {"pool": {"implementation": "celery.concurrency.prefork:TaskPool", "max-concurrency": 2}}
            }

        def active_queues(self):
            return {"w1@host": [{"name": "training"}]}

        def _request(self, command):
            assert command == "tl_device"
            return {"w1@host": {"device": "cpu", "gpus": ""}}

    monkeypatch.setattr(selectors, "_inspect", lambda destination=None: Inspect(destination))
    w1, w2 = selectors.live_workers()
    assert w1["hostname"] == "w1@host" and w1["pool"] == "prefork" and w1["concurrency"] == 2
    assert w1["active"] is None and w2["active"] is None
    assert w2["pool"] is None and w2["concurrency"] is None
    assert (w1["device"], w1["queues"]) == ("cpu", ["training"]) and (w2["device"], w2["queues"]) == (None, None)
    # A worker whose queues are unknown might be the one serving training-gpu: nothing is concluded.
    assert selectors.unserved_queues([w1, w2]) == []


def test_one_eta_serves_the_dashboard_and_the_experiment_page(alice):
    from django.utils import timezone

    now = timezone.now()
    job = make_job(make_experiment(make_project(alice)), Status.RUNNING)
    job.started_at = now - timedelta(minutes=10)
    for progress, eta in ((0.25, timedelta(minutes=30)), (0.005, None), (1.0, None)):
        job.progress = progress
        assert job.eta(now) == eta
    job.progress, job.status = 0.25, Status.SUCCEEDED
    assert job.eta(now) is None
    job.finished_at = now - timedelta(minutes=4)
    assert job.elapsed(now) == timedelta(minutes=6)


def test_it_counts_jobs_by_state(alice):
    experiment = make_experiment(make_project(alice))
    for status in [Status.QUEUED, Status.QUEUED, Status.RUNNING, Status.FAILED]:
        make_job(experiment, status)
    counts = selectors.job_counts()
    assert counts == {"queued": 2, "running": 1, "succeeded": 0, "failed": 1, "cancelled": 0, "total": 4}


def test_it_reads_running_jobs_with_eta_and_heartbeat_age_in_one_query(alice, bob, settings, django_assert_num_queries):
    now = timezone.now()
    stale = now - timedelta(seconds=settings.TL_HEARTBEAT_STALE_SECONDS + 1)
    for owner in (alice, bob):
        experiment = make_experiment(make_project(owner, f"{owner}'s"), user=owner)
        make_job(experiment, Status.RUNNING, progress=0.5, started_at=now - timedelta(minutes=4), heartbeat_at=stale)
    with django_assert_num_queries(1):
        jobs = selectors.running_jobs(now=now)
        names = [(j.experiment.project.name, j.experiment.created_by.username, j.experiment.mode) for j in jobs]
    assert len(names) == 2
    assert jobs[0].eta_time == timedelta(minutes=4) and jobs[0].percent == 50
    assert jobs[0].heartbeat_stale and jobs[0].heartbeat_age > timedelta(seconds=settings.TL_HEARTBEAT_STALE_SECONDS)


def test_it_numbers_queued_jobs_in_queue_order(alice):
    experiment = make_experiment(make_project(alice))
    jobs = [make_job(experiment) for _ in range(3)]
    assert [(j.pk, j.position) for j in selectors.queued_jobs()] == [(j.pk, i) for i, j in enumerate(jobs, 1)]


def test_it_counts_jobs_finished_per_hour_and_their_mean_duration(alice):
    now = timezone.now().replace(minute=30)
    experiment = make_experiment(make_project(alice))
    make_job(experiment, Status.SUCCEEDED, started_at=now - timedelta(minutes=10), finished_at=now)
    make_job(experiment, Status.FAILED, started_at=now - timedelta(minutes=20), finished_at=now - timedelta(minutes=5))
    make_job(
        experiment,
        Status.CANCELLED,
        started_at=now - timedelta(hours=3, minutes=10),
        finished_at=now - timedelta(hours=3),
    )
    make_job(experiment, Status.SUCCEEDED, started_at=now - timedelta(days=3), finished_at=now - timedelta(days=2))
    make_job(experiment, Status.RUNNING)
    stats = selectors.throughput(now=now)
    assert stats["finished"] == 3
    assert stats["by_status"] == {"succeeded": 1, "failed": 1, "cancelled": 1}
    assert len(stats["per_hour"]) == 24
    assert stats["per_hour"][-1]["count"] == 2 and stats["per_hour"][-4]["count"] == 1
    assert stats["mean_duration"] == timedelta(minutes=(10 + 15 + 10) / 3)


def test_it_sums_prediction_traffic_per_project_with_the_median_latency(alice, bob):
    shapes, birds = make_project(alice, "Shapes"), make_project(bob, "Birds")
    for latency in [10, 30, 20, 1000]:
        PredictionLog.objects.create(project=shapes, image_count=2, latency_ms=latency, status_code=200)
    PredictionLog.objects.create(project=shapes, image_count=0, latency_ms=5, status_code=400)
    PredictionLog.objects.create(project=birds, image_count=1, latency_ms=42, status_code=200)
    old = PredictionLog.objects.create(project=birds, image_count=9, latency_ms=1, status_code=200)
    PredictionLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))

    rows = selectors.prediction_traffic()
    assert [(r["project"], r["owner"], r["calls"], r["images"], r["errors"]) for r in rows] == [
        ("Shapes", "alice", 5, 8, 1),
        ("Birds", "bob", 1, 1, 0),
    ]
    assert rows[0]["p50_ms"] == pytest.approx(20)
    assert rows[1]["p50_ms"] == pytest.approx(42)
