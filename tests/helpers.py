"""Real processes for tests: Celery workers and a live server, pointed at the test database."""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def load_launch():
    """bin/launch.py as a module (it is a script, not in a package)."""
    spec = importlib.util.spec_from_file_location("launch", ROOT / "bin" / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def subprocess_env(**extra) -> dict:
    """Environment for a child process that must see the same database, Redis and storage as the test."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings.test",
        TL_TEST_DATABASE_NAME=str(connection.settings_dict["NAME"]),
        TL_STORAGE_ROOT=str(settings.TL_STORAGE_ROOT),
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def flush_broker() -> None:
    from webapp.core.redis import redis_client

    redis_client(timeout=2).flushdb()


def _ping(name: str, timeout: float = 1.0) -> bool:
    from workers.celery import app

    replies = app.control.ping(destination=[name], timeout=timeout) or []
    return any(name in reply for reply in replies)


@contextmanager
def celery_worker(
    name: str = "test",
    queues: str = "default,training",
    concurrency: int = 1,
    max_tasks_per_child: int | None = None,
    max_memory_per_child_kb: int | None = None,
    startup_timeout: float = 60,
    **env,
):
    """Start a real `celery worker` process; yield (process, node name, log path); stop it after."""
    node = f"{name}-{os.getpid()}@{socket.gethostname()}"
    log = Path(tempfile.mkstemp(prefix=f"worker-{name}-", suffix=".log")[1])
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-n",
        node,
        "-P",
        "prefork",
        "-l",
        "info",
        "--without-gossip",
        "--without-mingle",
        "-E",
    ]
    if max_tasks_per_child:
        cmd += ["--max-tasks-per-child", str(max_tasks_per_child)]
    if max_memory_per_child_kb:
        cmd += ["--max-memory-per-child", str(max_memory_per_child_kb)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=subprocess_env(**env), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while not _ping(node):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {node} did not start:\n{log.read_text()[-3000:]}")
        yield proc, node, log
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
