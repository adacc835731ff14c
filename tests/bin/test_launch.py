"""bin/launch.py: `run` supervises what it starts. The fast tests drive the Supervisor with tiny
Python processes; the slow ones start the real bin/run (its own var/, port and embedded Redis)."""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import ROOT, load_launch, wait_for
from tests.projects.images import make_zip, split_files

launch = load_launch()

ADMIN_PASSWORD = "supervised-admin-pw-1"


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id) of every live process; a zombie is dead, only not yet reaped."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # it exited while we looked
        state, ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
        if state != "Z":
            table[int(entry.name)] = (int(ppid), int(session))
    return table


def alive(pid: int) -> bool:
    return pid in process_table()


def children_of(pid: int) -> list[int]:
    return [child for child, (ppid, _) in process_table().items() if ppid == pid]


def in_sessions(sessions: set[int]) -> list[int]:
    return [pid for pid, (_, session) in process_table().items() if session in sessions]


# --- the restart policy and the Supervisor, on tiny processes ---------------------------------


def test_it_doubles_the_wait_up_to_the_limit_and_starts_over_after_a_stable_run():
    policy = launch.Restart(first=1, limit=60, stable=60)
    waits, previous = [], None
    for _ in range(8):
        previous = policy.delay(previous, uptime=2)
        waits.append(previous)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.delay(60, uptime=61) == 1


def test_it_restarts_a_process_that_keeps_dying_with_growing_waits_naming_it_and_its_exit_code(tmp_path):
    lines = []
    supervisor = launch.Supervisor(cwd=tmp_path, log=lines.append)
    flaky = launch.Process(
        "flaky", (sys.executable, "-c", "import sys; sys.exit(3)"), restart=launch.Restart(first=0.1, limit=0.4)
    )
    try:
        supervisor.start(flaky)

        def restarted_four_times():
            supervisor.check()
            return sum(line.startswith("restarted flaky") for line in lines) >= 4

        wait_for(restarted_four_times, timeout=15, interval=0.02, message="four restarts")
    finally:
        supervisor.stop(grace=5)
    deaths = [line for line in lines if line.startswith("flaky (pid")]
    assert all("exited with code 3" in line for line in deaths)
    assert [re.search(r"restarting it in (\S+) s", line)[1] for line in deaths[:4]] == ["0.1", "0.2", "0.4", "0.4"]
    pids = re.findall(r"started flaky \(pid (\d+)\)|restarted flaky \(pid (\d+)\)", "\n".join(lines))
    assert len({a or b for a, b in pids}) == len(pids), "every restart is a new process"


# A main process that forks a grandchild which ignores SIGTERM (as a busy pool process might),
# writes the grandchild's pid to a file, then waits or exits as told.
FORKER = """
import os, signal, sys, time
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(120)
    os._exit(0)
open("grandchild.pid", "w").write(str(pid))
if sys.argv[1] == "exit":
    os._exit(1)
time.sleep(120)
"""


def test_stopping_also_kills_what_a_process_forked(tmp_path):
    supervisor = launch.Supervisor(cwd=tmp_path, log=lambda line: None)
    supervisor.start(launch.Process("forker", (sys.executable, "-c", FORKER, "wait")))
    pid_file = tmp_path / "grandchild.pid"
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=10, message="the grandchild's pid")
    finally:
        supervisor.stop(grace=5)
    grandchild = int(pid_file.read_text())
    wait_for(lambda: not alive(grandchild), timeout=5, message=f"grandchild {grandchild} to be gone")


def test_a_dead_process_is_swept_with_its_group_before_it_is_restarted(tmp_path):
    lines = []
    supervisor = launch.Supervisor(cwd=tmp_path, log=lines.append)
    supervisor.start(launch.Process("forker", (sys.executable, "-c", FORKER, "exit"), restart=launch.Restart(first=30)))
    pid_file = tmp_path / "grandchild.pid"
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=10, message="the grandchild's pid")
        grandchild = int(pid_file.read_text())
        assert alive(grandchild)

        def death_noticed():
            supervisor.check()
            return any(line.startswith("forker (pid") for line in lines)

        wait_for(death_noticed, timeout=10, interval=0.05, message="the supervisor to notice the exit")
        wait_for(lambda: not alive(grandchild), timeout=5, message=f"grandchild {grandchild} to be gone")
    finally:
        supervisor.stop(grace=5)


# --- one declaration for bin/run, compose and the Dockerfile -------------------------------------


@pytest.mark.parametrize("name", ["web", "training-worker", "warm-worker", "default-worker", "beat"])
def test_serve_becomes_exactly_the_process_run_starts_under_that_name(name, monkeypatch, tmp_path):
    monkeypatch.delenv("TL_WARM_QUEUE", raising=False)  # the test settings turn it off
    monkeypatch.setenv("TL_BIND", "0.0.0.0:8123")
    monkeypatch.setenv("TL_VAR_DIR", str(tmp_path / "var"))
    execs = []
    monkeypatch.setattr(launch.os, "execv", lambda path, argv: execs.append((path, argv)))
    monkeypatch.setattr(launch.os, "chdir", lambda path: None)
    launch.main(["serve", name])
    declared = {p.name: p.argv for p in launch.app_processes(bind="0.0.0.0:8123", var=tmp_path / "var")}
    assert execs == [(declared[name][0], declared[name])]
    assert (tmp_path / "var").is_dir()


def test_argv_prints_a_declared_command_line_with_nothing_but_the_standard_library(tmp_path):
    # -S: no site-packages, as in an image before anything is set up; `serve` imports no more than this.
    env = {**os.environ, "TL_BIND": "0.0.0.0:9000", "TL_VAR_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-S", str(ROOT / "bin" / "launch.py"), "argv", "beat"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    expected = next(p for p in launch.app_processes(bind="x", var=tmp_path) if p.name == "beat").argv
    assert tuple(shlex.split(out)) == expected
    web = subprocess.run(
        [sys.executable, "-S", str(ROOT / "bin" / "launch.py"), "argv", "web"], env=env, capture_output=True, text=True
    ).stdout
    assert tuple(shlex.split(web)) == launch.gunicorn_argv("0.0.0.0:9000")


def test_an_unknown_process_name_is_refused_naming_the_declared_ones():
    with pytest.raises(SystemExit, match="no process called 'worker'; the declared ones are: training-worker, "):
        launch.main(["serve", "worker"])


def test_run_and_setup_migrate_first_and_create_the_first_admin_last():
    for collectstatic in (True, False):
        steps = launch.setup_steps(collectstatic=collectstatic)
        assert steps[0] == ("migrate", "--noinput") and steps[-1] == ("ensure_admin",)


def test_bin_test_runs_pytest_in_two_processes_unless_its_arguments_choose():
    assert launch.parallel(["tests/ml", "-x"]) == ["-n", "2", "--dist", "loadgroup"]
    for chosen in (["-n", "0"], ["-n4"], ["--numprocesses=3"], ["--dist", "load"], ["-p", "no:xdist"], ["--pdb"]):
        assert launch.parallel(["tests/ml", *chosen]) == [], chosen


def test_bin_test_hands_every_argument_after_test_to_pytest_options_first_included(monkeypatch):
    received = []
    monkeypatch.setattr(launch, "test", lambda args: received.append(args.pytest_args) or 0)
    assert launch.main(["test", "-n", "0", "tests/ml", "-x"]) == 0
    assert received == [["-n", "0", "tests/ml", "-x"]]


# --- the real bin/run -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveRun:
    """A real `bin/run` with its own var/ directory, port, SQLite database and embedded Redis."""

    def __init__(self, var: Path):
        self.log_path = var / "run.log"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        # Nothing of the test run's own configuration: bin/run must start its own Redis and database.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "TL_", "CELERY_")) and key not in ("DATABASE_URL", "REDIS_URL")
        }
        env.update(TL_VAR_DIR=str(var), TL_ADMIN_PASSWORD=ADMIN_PASSWORD, PYTHONUNBUFFERED="1")
        self.env = env
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [str(ROOT / "bin" / "run"), "--bind", f"127.0.0.1:{port}"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def started_pids(self, name: str = r"\S+") -> list[int]:
        return [int(pid) for pid in re.findall(rf"(?:started|restarted) {name} \(pid (\d+)\)", self.log())]

    def pid(self, name: str) -> int:
        """The pid the supervisor last started `name` with."""
        return self.started_pids(name)[-1]

    def sessions(self) -> set[int]:
        # bin/run and every child it started lead their own sessions; what they fork stays in them.
        return {self.proc.pid, *self.started_pids()}

    def health(self) -> tuple[int, dict]:
        response = requests.get(self.url + "/api/v1/health/", timeout=10)
        return response.status_code, response.json()

    def wait_until_healthy(self, timeout: float = 90) -> None:
        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"bin/run exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                status, body = self.health()
            except requests.ConnectionError:
                return False
            return status == 200 and body["status"] == "ok"

        wait_for(healthy, timeout=timeout, interval=0.25, message=f"bin/run to be healthy; log {self.log_path}")

    def api(self) -> requests.Session:
        token = requests.post(
            self.url + "/api/v1/auth/token/", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=10
        ).json()["token"]
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        return session

    def browser(self) -> requests.Session:
        """A signed-in browser session of the admin (staff, so the dashboard is open to it)."""
        session = requests.Session()
        session.get(self.url + "/accounts/login/", timeout=10).raise_for_status()
        response = session.post(
            self.url + "/accounts/login/",
            data={
                "username": "admin",
                "password": ADMIN_PASSWORD,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            timeout=10,
        )
        assert response.url.endswith("/projects/"), response.text[-2000:]
        return session

    def make_dataset(self, project_id: int) -> int:
        """A ready dataset written straight into this run's database and storage by the factory."""
        code = (
            "import django; django.setup()\n"
            "from tests.experiments.factories import make_dataset\n"
            "from webapp.projects.models import Project\n"
            f"print(make_dataset(Project.objects.get(pk={project_id})).pk)\n"
        )
        env = {**self.env, "DJANGO_SETTINGS_MODULE": "webapp.settings.local"}
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        return int(out.stdout.split()[-1])

    def upload_dataset(self, api: requests.Session, project_id: int, archive: Path) -> requests.Response:
        with open(archive, "rb") as fh:
            return api.post(f"{self.url}/api/v1/projects/{project_id}/datasets/", files={"archive": fh}, timeout=30)

    def stop(self) -> tuple[int | None, list[int]]:
        """SIGTERM to bin/run; its exit code and what it left running (then killed, so no test
        leaks a process)."""
        sessions = self.sessions()
        code = None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 5  # a process killed a moment ago may still be on its way out
        while (left := in_sessions(sessions)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        return code, left


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    run = LiveRun(tmp_path_factory.mktemp("bin-run"))
    try:
        run.wait_until_healthy()
        yield run
    finally:
        run.stop()


@pytest.mark.slow
def test_it_restarts_a_killed_training_worker_while_the_web_keeps_answering(app):
    old = app.pid("training-worker")
    pool = children_of(old)
    assert pool, "the training worker's pool process"
    os.kill(old, signal.SIGKILL)

    answers = []

    def training_worker_answers():
        status, body = app.health()
        answers.append(status)
        return status == 200 and any(name.startswith("training@") for name in body["workers"]["hostnames"])

    wait_for(lambda: app.pid("training-worker") != old, timeout=15, message="the training worker's restart")
    wait_for(training_worker_answers, timeout=60, interval=0.5, message="the new training worker to answer a ping")
    new = app.pid("training-worker")
    assert alive(new)
    assert not [pid for pid in (old, *pool) if alive(pid)], "the old worker and its pool process are gone"
    assert re.search(
        rf"training-worker \(pid {old}\) was killed by SIGKILL \(exit code -9\) after \d+ s up; "
        rf"restarting it in 1 s, at \d\d:\d\d:\d\d",
        app.log(),
    )
    assert set(answers) == {200}, "the web answered all along"


@pytest.mark.slow
def test_while_redis_is_down_the_web_answers_503_and_it_recovers_after_the_restart(app, tmp_path):
    api, browser = app.api(), app.browser()
    project = api.post(app.url + "/api/v1/projects/", json={"name": "Supervised"}, timeout=10).json()
    dataset = app.make_dataset(project["id"])
    redis_pid = app.pid("redis")
    # bin/run is paused so that Redis stays down for as long as these checks take, not just the
    # one second before its restart; its children run on, and it catches up when continued.
    os.kill(app.proc.pid, signal.SIGSTOP)
    try:
        os.kill(redis_pid, signal.SIGKILL)
        wait_for(lambda: not alive(redis_pid), timeout=5, message="Redis to die")

        started = time.monotonic()
        status, body = app.health()
        assert time.monotonic() - started < 2
        assert status == 503
        assert body["broker"]["ok"] is False and "broker unreachable" in body["broker"]["detail"]
        assert body["database"]["ok"] is True and body["status"] == "down"

        for page in ("/projects/", f"/projects/{project['id']}/", "/dashboard/"):
            response = browser.get(app.url + page, timeout=10)
            assert response.status_code == 200, page
        assert "The broker (Redis) is down." in response.text

        started = time.monotonic()
        response = api.post(
            f"{app.url}/api/v1/projects/{project['id']}/experiments/",
            json={"dataset": dataset, "mode": "bottleneck", "weights": "none", "name": "while Redis is down"},
            timeout=30,
        )
        assert time.monotonic() - started < 5
        assert response.status_code == 503, response.text
        assert "Could not reach the job queue" in response.json()["detail"]
    finally:
        os.kill(app.proc.pid, signal.SIGCONT)

    wait_for(lambda: app.pid("redis") != redis_pid, timeout=15, message="Redis's restart")
    log = app.log()
    assert re.search(rf"redis \(pid {redis_pid}\) was killed by SIGKILL \(exit code -9\) .*restarting it in 1 s", log)
    assert re.search(rf"restarted redis \(pid {app.pid('redis')}\); .*messages queued before it died are lost", log)
    app.wait_until_healthy(timeout=60)
    # The web's pooled broker connections died with the old Redis: a new upload must still be
    # published, and received by the default worker (how its ingest ends is ingest's own tests' job).
    received = len(re.findall(r"Task workers\.tasks\.ingest_dataset\[\S+\] received", app.log()))
    response = app.upload_dataset(api, project["id"], make_zip(tmp_path / "after.zip", split_files(train=4)))
    assert response.status_code == 202, response.text
    wait_for(
        lambda: len(re.findall(r"Task workers\.tasks\.ingest_dataset\[\S+\] received", app.log())) > received,
        timeout=30,
        message="the default worker to receive the ingest",
    )


@pytest.mark.slow
def test_sigterm_stops_every_process_it_started(tmp_path):
    run = LiveRun(tmp_path)
    try:
        run.wait_until_healthy()
        started = in_sessions(run.sessions())
    finally:
        code, left = run.stop()
    assert len(started) >= 8, "bin/run, Redis, two workers and their pool processes, beat, gunicorn and its workers"
    assert code == 0, run.log()[-3000:]
    assert left == []
    assert "Stopping" in run.log()


@pytest.mark.slow
def test_when_bin_run_itself_is_killed_its_children_stop_too(tmp_path):
    run = LiveRun(tmp_path)
    try:
        run.wait_until_healthy()
        sessions = run.sessions()
        os.kill(run.proc.pid, signal.SIGKILL)
        run.proc.wait(timeout=10)
        wait_for(lambda: not in_sessions(sessions), timeout=30, message="the children to follow bin/run")
    finally:
        run.stop()
