"""The warm worker's per-process state (webapp/experiments/warm.py), in this process: no Celery needed."""

import pytest

from webapp.experiments import warm


@pytest.fixture
def fresh_state(monkeypatch):
    """This test's own verifier and job count; its verifier process is ended after."""
    monkeypatch.setattr(warm, "_verifier", None)
    monkeypatch.setattr(warm, "_jobs", 0)
    yield
    if warm._verifier is not None:
        warm._verifier.close()


def test_the_verifier_is_kept_between_jobs_and_replaced_once_its_process_died(fresh_state):
    first = warm.verifier()
    assert warm.verifier() is first and first.alive
    first._process.kill()
    first._process.wait()
    second = warm.verifier()
    assert second is not first and second.alive and second._process.pid != first._process.pid
    assert not first.alive  # closed when replaced: no pipe or file left open


def test_jobs_are_counted_per_process(fresh_state):
    assert [warm.job_started()["job_in_process"] for _ in range(3)] == [1, 2, 3]
    assert warm.job_started()["warm"] is True


def test_a_process_that_never_prepared_does_not_wait(monkeypatch):
    class NeverSet:
        def wait(self, timeout=None):
            raise AssertionError("waited for a warm-up that was never started")

    monkeypatch.setattr(warm, "_started", False)
    monkeypatch.setattr(warm, "_prepared", NeverSet())
    warm.wait_prepared()


def test_preparing_imports_the_engine_and_starts_the_verifier_before_a_job_goes_on(fresh_state, monkeypatch):
    import sys
    import threading

    monkeypatch.setattr(warm, "_started", False)
    monkeypatch.setattr(warm, "_prepared", threading.Event())
    warm.start_preparing()
    warm.wait_prepared()
    assert warm._prepared.is_set() and "workers.ml.train" in sys.modules
    assert warm._verifier is not None and warm._verifier.alive


@pytest.mark.parametrize("name", ["training", "training-gpu", "default"])
def test_a_warm_queue_that_is_another_queue_stops_the_start_naming_it(name):
    import subprocess
    import sys

    from tests.helpers import ROOT, subprocess_env

    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env=subprocess_env(TL_WARM_QUEUE=name), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"TL_WARM_QUEUE='{name}' must be a queue of its own (or empty to turn it off)" in done.stderr
