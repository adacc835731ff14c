"""var/ (database, secret key, users' data) is private to its user: bin/run closes what is there and
starts every process with umask 077."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bin.test_launch import LiveRun
from tests.helpers import ROOT


def _open_to_others(var: Path) -> dict[str, str]:
    """Every entry under `var` (symlinks aside) that its group or others may use, with its mode."""
    found = {}
    for folder, dirs, files in os.walk(var):
        for path in [folder, *(os.path.join(folder, name) for name in dirs + files)]:
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found[os.path.relpath(path, var)] = oct(stat.S_IMODE(mode))
    return found


def _seed(var: Path, outside: Path) -> None:
    """A var/ as an older version, run under umask 022, left it."""
    (var / "storage" / "datasets" / "1" / "train").mkdir(parents=True)
    (var / "storage" / "datasets" / "1" / "train" / "cat.jpg").write_bytes(b"jpeg")
    (var / "db.sqlite3").write_bytes(b"")
    for folder, _, files in os.walk(var):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    outside.write_text("not ours")
    outside.chmod(0o644)
    (var / "storage" / "link").symlink_to(outside)


# In a fresh process (the umask is process-wide): make var/ private, then create a file, a folder and
# a child process's file, and report their modes.
MAKE_PRIVATE_THEN_CREATE = """
import importlib.util, json, os, stat, subprocess, sys
spec = importlib.util.spec_from_file_location("launch", sys.argv[1])
launch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(launch)
var = sys.argv[2]
launch.make_private(__import__("pathlib").Path(var))
open(os.path.join(var, "new-file"), "w").close()
os.mkdir(os.path.join(var, "new-folder"))
subprocess.run([sys.executable, "-c", f"open({os.path.join(var, 'child-file')!r}, 'w').close()"], check=True)
mode = lambda name: oct(stat.S_IMODE(os.stat(os.path.join(var, name)).st_mode))
print(json.dumps({name: mode(name) for name in ("new-file", "new-folder", "child-file")}))
"""


def test_make_private_closes_var_and_what_is_created_afterwards_stays_private(tmp_path):
    var, outside = tmp_path / "var", tmp_path / "outside.txt"
    _seed(var, outside)
    assert _open_to_others(var)  # the seed is as open as an old var/ was
    result = subprocess.run(
        [sys.executable, "-c", MAKE_PRIVATE_THEN_CREATE, str(ROOT / "bin" / "launch.py"), str(var)],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == {"new-file": "0o600", "new-folder": "0o700", "child-file": "0o600"}
    assert _open_to_others(var) == {}
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a symlink's target outside var/ is left alone


def test_make_private_creates_a_missing_var_private(tmp_path):
    var = tmp_path / "fresh" / "var"
    result = subprocess.run(
        [sys.executable, "-c", MAKE_PRIVATE_THEN_CREATE, str(ROOT / "bin" / "launch.py"), str(var)],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert stat.S_IMODE(var.stat().st_mode) == 0o700


@pytest.mark.slow
def test_bin_run_leaves_nothing_in_var_open_to_other_users(tmp_path):
    """The real bin/run on a var/ an older version left open: database, secret key, Redis socket,
    static files, beat schedule and data all end up private to the user."""
    var, outside = tmp_path / "var", tmp_path / "outside.txt"
    _seed(var, outside)
    run = LiveRun(var)
    try:
        run.wait_until_healthy()
        run.api()  # a sign-in writes a session row and a token: the database is in use
        open_now = _open_to_others(var)
        names = set(os.listdir(var))
    finally:
        run.stop()
    assert {"db.sqlite3", "secret_key", "staticfiles", "redis", "storage"} <= names
    assert open_now == {}
