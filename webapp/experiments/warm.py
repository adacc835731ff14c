"""The warm worker's process state: TensorFlow imported and a verifier waiting, kept between jobs
(docs/decisions.md, "A warm worker for head-only jobs").

Only a worker started with TL_WORKER_WARM uses this. Its pool child is forked from a main process that
never imported TensorFlow, so the child starts clean, imports the engine once (ahead of its first job,
in `prepare`), and is replaced by Celery after TL_WARM_MAX_JOBS jobs or once it is over TL_WARM_MAX_MB.
The verifier process is the child's own: it sees its input end, and exits, when the child does.
"""

import logging
import os
import threading
import time

from celery.signals import worker_process_init
from django.conf import settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_prepared = threading.Event()
_started = False  # whether this process runs `prepare` (only a warm worker's children do)
_verifier = None
_jobs = 0


def prepare() -> None:
    """Import the engine and start the verifier: what a head-only job would otherwise wait for.

    Run in a thread when the pool child starts (`_warm_up`). A job arriving meanwhile waits for
    it (`wait_prepared`) before importing anything: two threads importing TensorFlow's modules at once
    could each hold a module the other needs.
    """
    started = time.perf_counter()
    try:
        import workers.ml.train  # noqa: F401  TensorFlow, Keras and the engine

        verifier()
        log.info("warm worker process %s ready in %.1f s", os.getpid(), time.perf_counter() - started)
    except Exception:  # the job's own import then fails, with the cause, on the job
        log.exception("warming up worker process %s failed", os.getpid())
    finally:
        _prepared.set()


def wait_prepared(timeout: float = 300) -> None:
    """Block until `prepare` has finished in this process (at once if it was never started)."""
    if _started:
        _prepared.wait(timeout)


def start_preparing() -> None:
    """Run `prepare` in a thread of this process."""
    global _started
    _started = True
    threading.Thread(target=prepare, name="warm-up", daemon=True).start()


def verifier():
    """This process's waiting verifier, started again if its process is gone."""
    global _verifier
    from workers.ml.roundtrip import Verifier

    with _lock:
        if _verifier is None or not _verifier.alive:
            if _verifier is not None:
                log.warning("the warm worker's verifier process ended; starting another")
                _verifier.close()
            _verifier = Verifier()
        return _verifier


def job_started() -> dict:
    """Count a job in this process; what the job records about where it ran."""
    global _jobs
    with _lock:
        _jobs += 1
        return {"warm": True, "pid": os.getpid(), "job_in_process": _jobs}


@worker_process_init.connect
def _warm_up(**_) -> None:
    """On a warm worker, each new pool child starts preparing at once, in a thread: Celery gives this
    signal 4 s, and TensorFlow's import takes longer. Other workers' children import nothing here."""
    if settings.TL_WORKER_WARM:
        start_preparing()
