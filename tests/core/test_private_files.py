"""The settings create the secret key and the SQLite database private to their owner (0600 in a 0700
folder), even under a permissive umask, and close ones an older version left world-readable."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from webapp.settings.private import private_file

ROOT = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# Migrates, then lists the modes under var/ while the connection is open (SQLite removes its -wal and
# -shm files when the last connection closes).
MIGRATE_AND_LIST = """
import json, os, stat, django
django.setup()
from django.core.management import call_command
from django.db import connection
call_command("migrate", "--noinput", verbosity=0)
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE probe (x integer)")
var = os.environ["TL_VAR_DIR"]
print(json.dumps({n: stat.S_IMODE(os.stat(os.path.join(var, n)).st_mode) for n in os.listdir(var)}))
"""


def _local_run(var: Path) -> dict[str, int]:
    """Modes under `var` after the local-run settings migrated a database there, as a user with the
    common umask 022 would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TL_", "DATABASE_"))}
    env.update(DJANGO_SETTINGS_MODULE="webapp.settings.local", TL_VAR_DIR=str(var))
    result = subprocess.run(
        [sys.executable, "-c", MIGRATE_AND_LIST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_a_local_run_creates_its_secret_key_and_database_private(tmp_path):
    var = tmp_path / "var"
    modes = _local_run(var)
    assert _mode(var) == 0o700
    assert {"secret_key", "db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode != 0o600} == {}


def test_it_closes_a_secret_key_and_database_left_world_readable(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    for name, text in (("secret_key", "x" * 60), ("db.sqlite3", "")):
        (var / name).write_text(text)
        (var / name).chmod(0o644)
    modes = _local_run(var)
    assert modes["secret_key"] == modes["db.sqlite3"] == modes["db.sqlite3-wal"] == 0o600


def test_private_file_creates_a_missing_folder_private(tmp_path):
    path = tmp_path / "new" / "db.sqlite3"
    old = os.umask(0o022)
    try:
        private_file(path)
    finally:
        os.umask(old)
    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600
    assert path.read_bytes() == b""


def test_a_file_that_cannot_be_made_private_stops_the_start_naming_it():
    # World-readable, and its mode cannot be changed by anyone, root included: procfs refuses chmod.
    target = Path("/proc/self/status")
    with pytest.raises(ImproperlyConfigured, match=f"{target} is open to other users"):
        private_file(target)
