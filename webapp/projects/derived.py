"""A new dataset version made from a ready one's stored files (docs/decisions.md, "Fix and retrain").

    dataset_create_derived(*, dataset, user, original_name, lineage, exclude, relabel, restore) -> Dataset
        The next version of the project, queued for the normal ingest, from hard links to `dataset`'s
        files: `exclude` (relative paths) left out, `relabel` ({path: class}) moved to another class
        folder of the same split, `restore` (paths of `restore_from`, the version `dataset` was made
        from) brought back from its files. `lineage` is written beside the upload as lineage.json, outside
        the files the build reads: only a service can ask an ingest for this, not an upload's content.

Without-leaks versions (without_leaks.py) and edited versions (dataset_edits.py) are both made here.
Datasets are immutable, so sharing their files by hard link is safe.
"""

import json
import os
import shutil
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

from django.db import transaction

from webapp.core import objectstore, storage

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


def _free_name(taken: set[str], wanted: str) -> str:
    """`wanted`, or `<stem>-2<suffix>`, `-3`, ... when a file of the new version already has that path."""
    path = PurePosixPath(wanted)
    candidate, n = wanted, 1
    while candidate in taken:
        n += 1
        candidate = str(path.with_name(f"{path.stem}-{n}{path.suffix}"))
    return candidate


def derived_layout(
    names: list[str], *, exclude=frozenset(), relabel: dict | None = None, restore=()
) -> dict[str, tuple[str, str]]:
    """{new relative path: ("self" | "parent", source relative path)} for the new version's images."""
    relabel = relabel or {}
    images = [n for n in names if PurePosixPath(n).parts[0] in SPLITS and len(PurePosixPath(n).parts) == 3]
    layout: dict[str, tuple[str, str]] = {}
    moved = []
    for name in sorted(images):
        if name in exclude:
            continue
        if name in relabel:
            moved.append(name)
        else:
            layout[name] = ("self", name)
    for name in sorted(restore):
        layout[_free_name(set(layout), name)] = ("parent", name)
    for name in moved:  # after the images that stay, so that a relabelled one never takes their names
        split, _, file_name = PurePosixPath(name).parts
        layout[_free_name(set(layout), f"{split}/{relabel[name]}/{file_name}")] = ("self", name)
    return layout


def dataset_create_derived(
    *,
    dataset: Dataset,
    user,
    original_name: str,
    lineage: dict,
    exclude=frozenset(),
    relabel: dict | None = None,
    restore=(),
    restore_from: Dataset | None = None,
) -> Dataset:
    """Queue the next version of `dataset`'s project, made from its files with the changes applied (processing)."""
    dataset_key = storage.key_of(storage.dataset_dir(dataset.pk))
    with ExitStack() as stack:
        # With an object store, this host's copies of the sources (docs/architecture.md, "Object storage").
        source = stack.enter_context(objectstore.using(dataset_key))
        parent = None
        if restore:
            parent = stack.enter_context(objectstore.using(storage.key_of(storage.dataset_dir(restore_from.pk))))
        stack.enter_context(transaction.atomic())
        new = dataset_create(
            project=dataset.project,
            user=user,
            source=Dataset.Source.FOLDER,
            original_name=original_name[:255],
            test_fraction=0.0,  # the splits are the source's: never carve another test split
        )
        files = upload_dir(new.pk) / "files"
        try:
            names = [
                p.relative_to(source).as_posix()
                for s in SPLITS
                if (source / s).is_dir()
                for p in (source / s).rglob("*")
            ]
            layout = derived_layout(names, exclude=exclude, relabel=relabel, restore=restore)
            for target, (origin, name) in layout.items():
                root = source if origin == "self" else parent
                if (root / name).is_file():
                    _link_or_copy(root / name, files / target)
            storage.atomic_write_bytes(upload_dir(new.pk) / LINEAGE_FILE, json.dumps(lineage).encode())
            objectstore.publish(storage.key_of(upload_dir(new.pk)), keep_copy=False)
        except BaseException:
            storage.remove(upload_dir(new.pk))
            raise
        dataset_enqueue_ingest(dataset=new, keep_upload=True)
    return new
