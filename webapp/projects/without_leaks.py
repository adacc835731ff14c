"""A new dataset version without leaked images (docs/decisions.md, "Near duplicates").

    dataset_create_without_leaks(*, dataset, user) -> Dataset
        The next version of the project, made from the same stored files and ingested through the
        normal path, which leaves out the copies of each picture outside its first split (the train
        copy is kept). Conflict (409) unless the version is ready and has leaked copies;
        Unavailable (503) when the job queue is down.

The new version's upload holds hard links to the stored files (datasets are immutable, so sharing
them is safe) and a lineage.json beside them, outside the files the build reads: only this service
can ask an ingest to leave images out, not the content of an upload.
"""

import json
import os
import shutil
from pathlib import Path

from django.db import transaction

from webapp.core import objectstore, storage
from webapp.core.errors import Conflict

from .dataset_files import LINEAGE_FILE
from .datasets import dataset_create, dataset_enqueue_ingest, upload_dir
from .ingest.build import SPLITS
from .models import Dataset


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed: a copy does the same
        shutil.copy2(source, target)


def dataset_create_without_leaks(*, dataset: Dataset, user) -> Dataset:
    """Queue the next version of ``dataset``'s project without its leaked images; returns it (processing)."""
    name = f"Dataset v{dataset.version}"
    if not dataset.is_ready:
        raise Conflict(f"{name} is {dataset.status}; a version without leaked images is made from a ready version.")
    copies = dataset.report.get("totals", {}).get("leaked_copies")
    if copies is None:
        raise Conflict(
            f"{name} was checked before near duplicates were looked for: upload it again to find its leaked images."
        )
    if copies == 0:
        raise Conflict(f"{name} has no leaked images: no picture is in more than one of train, validation and test.")
    # With an object store, this host's copy of the source (docs/architecture.md, "Object storage").
    with objectstore.using(storage.key_of(storage.dataset_dir(dataset.pk))) as source, transaction.atomic():
        new = dataset_create(
            project=dataset.project,
            user=user,
            source=Dataset.Source.FOLDER,
            original_name=f"v{dataset.version} without {copies} leaked images",
            test_fraction=0.0,  # the splits are the source's: never carve another test split
        )
        files = upload_dir(new.pk) / "files"
        try:
            for split in SPLITS:
                for path in sorted((source / split).rglob("*")) if (source / split).is_dir() else []:
                    if path.is_file():
                        _link_or_copy(path, files / path.relative_to(source))
            lineage = {"dataset": dataset.pk, "version": dataset.version}
            storage.atomic_write_bytes(upload_dir(new.pk) / LINEAGE_FILE, json.dumps(lineage).encode())
            objectstore.publish(storage.key_of(upload_dir(new.pk)), keep_copy=False)
        except BaseException:
            storage.remove(upload_dir(new.pk))
            raise
        dataset_enqueue_ingest(dataset=new, keep_upload=True)
    return new
