"""Where a dataset's files are, and removing them: the primitives ingest, retry, delete and the
sweep share. A failed dataset keeps nothing but (when a retry can help) its raw upload."""

import json
from pathlib import Path

from django.db.models import Q
from django.utils import timezone

from webapp.core import objectstore, storage

from .models import FEATURE_HASH_ID_PREFIX, Dataset

Status = Dataset.Status
# Beside an upload's files, for a version made from another (derived.py): without its leaked images, or
# with a user's edits applied ({"changes": ...}).
LINEAGE_FILE = "lineage.json"
# A sample dataset's upload is this request ({"sample", "per_class"}): the ingest worker writes the images.
SAMPLE_FILE = "sample.json"


def upload_dir(dataset_id: int) -> Path:
    """Where a dataset's raw upload waits for ingest; removed once it is ready or its content refused."""
    return storage.dataset_upload_dir(dataset_id)


def upload_source(dataset_id: int) -> Path | None:
    """The kept upload to ingest (a zip file or a folder of files), or None when there is none."""
    root = upload_dir(dataset_id)
    if (root / "archive.zip").is_file():
        return root / "archive.zip"
    if (root / "files").is_dir():
        return root / "files"
    if (root / SAMPLE_FILE).is_file():
        return root / SAMPLE_FILE
    return None


def upload_kept(dataset_id: int) -> bool:
    """Whether the dataset's upload is kept: here, or in the object store, where the web process that
    took it left it for the ingest worker (docs/architecture.md, "Object storage")."""
    if upload_source(dataset_id) is not None:
        return True
    return objectstore.enabled() and objectstore.exists(storage.key_of(upload_dir(dataset_id)))


def upload_lineage(dataset_id: int) -> dict | None:
    """{"dataset", "version", ...} of the version this upload was made from (derived.py), or None."""
    path = upload_dir(dataset_id) / LINEAGE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def staging_kind(dataset_id: int) -> str:
    # The id in the staging folder's name lets a reaper or a delete find this dataset's folder.
    return f"ingest-{dataset_id}"


def feature_hash_in_use(feature_hash: str) -> bool:
    """Whether a remaining dataset has this feature hash (see Dataset.feature_hash)."""
    rest = feature_hash.removeprefix(FEATURE_HASH_ID_PREFIX)
    if rest != feature_hash and rest.isdigit():
        return Dataset.objects.filter(pk=int(rest), content_hash="").exists()
    return Dataset.objects.filter(content_hash=feature_hash).exists()


def dataset_files_remove(*, dataset_ids, feature_hashes=()) -> None:
    """Remove the files of deleted datasets: images, kept uploads, staging no live process holds,
    and feature caches that no remaining dataset shares."""
    for dataset_id in dataset_ids:
        storage.remove(storage.dataset_dir(dataset_id))
        storage.remove(upload_dir(dataset_id))
        storage.staging_sweep(older_than=0, prefix=f"{staging_kind(dataset_id)}-")
    for feature_hash in set(feature_hashes):
        if not feature_hash_in_use(feature_hash):
            storage.remove(storage.features_dir(feature_hash))


def dataset_mark_failed(
    *, dataset_id: int, error: str, report: dict | None = None, keep_upload: bool = False, where: Q | None = None
) -> bool:
    """processing -> failed (only when `where` also holds), removing the dataset's partial files.

    The raw upload goes too unless `keep_upload`. False if the dataset was not processing; if it
    no longer exists at all, whatever is left of it is removed.
    """
    fields = {"status": Status.FAILED, "error": error, "finished_at": timezone.now()}
    if report is not None:
        fields["report"] = report
    updated = Dataset.objects.filter(where or Q(), pk=dataset_id, status=Status.PROCESSING).update(**fields)
    if updated:
        storage.remove(storage.dataset_dir(dataset_id))
        # Only a staging folder no live process holds: a running ingest removes its own.
        storage.staging_sweep(older_than=0, prefix=f"{staging_kind(dataset_id)}-")
        if not keep_upload:
            storage.remove(upload_dir(dataset_id))
    elif not Dataset.objects.filter(pk=dataset_id).exists():
        dataset_files_remove(dataset_ids=[dataset_id])
    return bool(updated)
