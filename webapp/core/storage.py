"""Paths under TL_STORAGE_ROOT (DESIGN §3) and atomic file writes."""

import os
import tempfile
from pathlib import Path

from django.conf import settings


def storage_root() -> Path:
    return Path(settings.TL_STORAGE_ROOT)


def datasets_root() -> Path:
    return storage_root() / "datasets"


def dataset_dir(dataset_id: int) -> Path:
    return datasets_root() / str(dataset_id)


def features_root() -> Path:
    return storage_root() / "features"


def models_root() -> Path:
    return storage_root() / "models"


def model_dir(model_id: int) -> Path:
    return models_root() / str(model_id)


def uploads_root() -> Path:
    return storage_root() / "uploads"


def staging_dir(kind: str) -> Path:
    """A fresh private folder on the same filesystem as its final place, so rename is atomic."""
    parent = storage_root() / ".staging"
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=parent))


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
