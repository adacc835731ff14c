"""Staging folders know whether their process is alive: the sweep removes a killed process's
folder and never one in use, however old."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, subprocess_env
from webapp.core import storage

HOLD_STAGING = """
import sys, time
from webapp.core import storage
with storage.staging("ingest-7") as path:
    (path / "raw").mkdir()
    (path / "raw" / "a.jpg").write_bytes(b"x" * 1000)
    print(path, flush=True)
    time.sleep(600)
"""


@pytest.fixture
def root(settings, tmp_path):
    settings.TL_STORAGE_ROOT = tmp_path / "storage"
    return settings.TL_STORAGE_ROOT


def _age(path, seconds: float) -> None:
    """Make `path` and its direct children look untouched for `seconds`."""
    then = time.time() - seconds
    for p in [path, *path.iterdir()]:
        os.utime(p, (then, then))


def test_a_staging_folder_is_removed_when_its_work_ends_either_way(root):
    with storage.staging("model") as path:
        (path / "model.keras").write_bytes(b"weights")
    assert not path.exists()
    with pytest.raises(ValueError), storage.staging("model") as path:
        raise ValueError("training failed")
    assert not path.exists()


def test_the_sweep_removes_a_killed_processs_staging_but_never_one_in_use(root):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_STAGING], cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, text=True
    )
    killed = storage.staging_root() / os.path.basename(holder.stdout.readline().strip())
    assert (killed / "raw" / "a.jpg").is_file()
    with storage.staging("model") as in_use:
        _age(killed, 7200), _age(in_use, 7200)
        assert storage.staging_sweep(older_than=3600) == [], "a live process holds it: not even when old"

        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        assert killed.is_dir(), "a killed process leaves its staging folder behind"
        assert storage.staging_sweep(older_than=3600) == [killed.name]
        assert not killed.exists() and in_use.is_dir()
    holder.stdout.close()


def test_the_sweep_leaves_a_young_folder_whose_process_has_not_locked_it_yet(root):
    young = storage.staging_root() / "ingest-9-abc"
    young.mkdir(parents=True)
    assert storage.staging_sweep(older_than=3600) == []
    _age(young, 7200)
    assert storage.staging_sweep(older_than=3600) == ["ingest-9-abc"]
    assert not young.exists()


def test_feature_folders_are_named_by_a_dataset_hash_only(root):
    assert storage.features_dir("ab12" * 16) == root / "features" / ("ab12" * 16)
    for bad in ("", "../models", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            storage.features_dir(bad)
