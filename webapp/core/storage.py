"""Paths under TL_STORAGE_ROOT (docs/architecture.md, "Storage layout"), atomic file writes, and staging folders with an owner.

Every place the app stores something has its helper here, so that deleting a project and the
sweep of leftovers look exactly where the writers wrote.
"""

import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

# Held (flock) by the process that uses a staging folder; the kernel releases it however the
# process ends, so a free lock means nobody will ever come back for the folder (docs/decisions.md,
# "Nothing stays processing, nothing is left behind").
STAGING_LOCK = ".in-use"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def storage_root() -> Path:
    return Path(settings.TL_STORAGE_ROOT)


def key_of(path: Path | str) -> str:
    """The key rows store for ``path``: relative to the storage root, so that the root can move
    (another disk, an object store) without rewriting a row. ValueError outside the root."""
    relative = Path(path).resolve().relative_to(storage_root().resolve())
    if not relative.parts:
        raise ValueError("the storage root itself is not an object's key")
    return relative.as_posix()


def path_of(key: str) -> Path:
    """Where the object stored under ``key`` lives now; ValueError for a key that is not one."""
    parts = Path(key).parts
    if not key or Path(key).is_absolute() or ".." in parts:
        raise ValueError(f"not a storage key: {key!r}")
    return storage_root().joinpath(*parts)


def datasets_root() -> Path:
    return storage_root() / "datasets"


def dataset_dir(dataset_id: int) -> Path:
    return datasets_root() / str(dataset_id)


def features_root() -> Path:
    return storage_root() / "features"


def features_dir(dataset_hash: str) -> Path:
    """The feature cache of one dataset content (entries `<cache_key>/` inside, see workers.ml.features).

    One folder per dataset content makes ownership structural: when no dataset with this hash is
    left, the whole folder goes, half-written entries of killed extractions included.
    """
    if not _SAFE_NAME.fullmatch(dataset_hash or ""):
        raise ValueError(f"not a dataset hash: {dataset_hash!r}")
    return features_root() / dataset_hash


def checkpoints_root() -> Path:
    return storage_root() / "checkpoints"


def checkpoint_dir(job_id: int) -> Path:
    """A training job's per-epoch checkpoints (workers.ml.checkpoint), kept while it may be resumed."""
    return checkpoints_root() / str(job_id)


def models_root() -> Path:
    return storage_root() / "models"


def model_dir(model_id: int) -> Path:
    return models_root() / str(model_id)


def exports_root() -> Path:
    return storage_root() / "exports"


def export_dir(export_id: int) -> Path:
    """One verified export of a model: bundle.zip (the download) and what the engine wrote beside it."""
    return exports_root() / str(export_id)


def predictions_root() -> Path:
    return storage_root() / "predictions"


def predictions_dir(project_id: int) -> Path:
    """Images sent to a project's predict endpoints, kept only when the project opted in."""
    return predictions_root() / str(project_id)


def uploads_root() -> Path:
    return storage_root() / "uploads"


def dataset_upload_dir(dataset_id: int) -> Path:
    """A dataset's raw upload (archive.zip or files/), waiting for ingest or kept for a retry."""
    return uploads_root() / f"dataset-{dataset_id}"


def upload_session_dir(session_id) -> Path:
    """The files of an unfinished folder upload."""
    return uploads_root() / f"session-{session_id}"


def staging_root() -> Path:
    return storage_root() / ".staging"


@contextmanager
def staging(kind: str) -> Iterator[Path]:
    """A fresh private folder on the same filesystem as its final place (so rename is atomic).

    The folder is removed on exit; while in use this process holds its lock, so that
    `staging_sweep` can tell a folder in use from one left by a killed process.
    """
    parent = staging_root()
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=parent))
    fd = os.open(path / STAGING_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def _held_by_someone(folder: Path) -> bool:
    try:
        fd = os.open(folder / STAGING_LOCK, os.O_RDWR)
    except FileNotFoundError:
        return False  # its process died before taking the lock (the age check covers the gap)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return False


def newest_mtime(path: Path) -> float:
    """The latest modification time of `path` and its direct children (0 if it is gone)."""
    try:
        times = [path.stat().st_mtime]
        if path.is_dir():
            times += [child.stat().st_mtime for child in path.iterdir()]
    except FileNotFoundError:
        return 0.0
    return max(times)


def remove(path: Path) -> None:
    """Remove a file or a folder tree if it exists, and with TL_STORAGE_URL the object store's copy
    under the same key too: every delete goes through here, so none can forget the store
    (docs/architecture.md, "Object storage")."""
    from . import objectstore

    remove_local(path)
    objectstore.remove_remote(path)


def remove_local(path: Path) -> None:
    """Remove this host's copy only (a file or a folder tree) if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def staging_sweep(*, older_than: float, prefix: str = "") -> list[str]:
    """Remove staging folders (names starting with `prefix`) that no live process holds and that
    were last touched more than `older_than` seconds ago; returns their names."""
    root = staging_root()
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than
    removed = []
    for entry in sorted(root.iterdir()):
        if not entry.name.startswith(prefix) or newest_mtime(entry) > cutoff:
            continue
        if entry.is_dir() and _held_by_someone(entry):
            continue
        remove_local(entry)
        removed.append(entry.name)
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
