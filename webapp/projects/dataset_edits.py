"""Fix the data: pending edits to a ready version's images, then a new version with them applied
(docs/decisions.md, "Fix and retrain").

    dataset_edit_set(*, dataset, user, path, action, new_class="") -> DatasetEdit | None
        relabel, exclude or restore one image. Relabelling to the image's own class, or restoring an
        image with a pending edit, drops that edit (None). Restore otherwise brings back an image this
        version left out of its parent (an exclusion, or a leaked copy).
    dataset_edits_pending(*, dataset, user) -> QuerySet of the user's pending edits, by path
    dataset_edits_summary(edits) -> "3 relabelled, 2 excluded"
    dataset_create_from_edits(*, dataset, user) -> Dataset
        the next version (processing, ingested by the normal path) with the user's edits applied; the
        edits go. Its report's lineage says which version it came from and what changed.

Ready versions never change: every edit makes a new version.
"""

from pathlib import PurePosixPath

from django.db import transaction

from webapp.core import objectstore, storage
from webapp.core.errors import Conflict, ServiceError

from .derived import dataset_create_derived
from .ingest.build import SPLITS
from .models import Dataset, DatasetEdit

Action = DatasetEdit.Action


def image_parts(path: str) -> tuple[str, str, str]:
    """("train", "cats", "0001.jpg") of a dataset image's relative path; ServiceError for anything else."""
    parts = PurePosixPath(path or "").parts
    if len(parts) != 3 or parts[0] not in SPLITS or ".." in parts or path != "/".join(parts):
        raise ServiceError(f"{path!r} is not an image of a dataset (split/class/file).", field="path")
    return parts  # type: ignore[return-value]


def _has_image(dataset: Dataset, path: str) -> bool:
    key = storage.key_of(storage.dataset_dir(dataset.pk))
    if not objectstore.enabled():
        return storage.path_of(key).joinpath(*path.split("/")).is_file()
    try:
        return path in objectstore.file_names(key)  # from the manifest: nothing is downloaded
    except objectstore.ObjectMissing:
        return False


def restorable(dataset: Dataset) -> set[str]:
    """Paths of the parent version's images that this version left out: its exclusions and leaked copies."""
    lineage = dataset.report.get("lineage") or {}
    if "dataset" not in lineage:
        return set()
    excluded = (lineage.get("changes") or {}).get("excluded", [])
    leaked = (dataset.report.get("without_leaks") or {}).get("items", [])
    return set(excluded) | set(leaked)


def _parent(dataset: Dataset) -> Dataset | None:
    lineage = dataset.report.get("lineage") or {}
    return Dataset.objects.filter(pk=lineage.get("dataset"), project_id=dataset.project_id).first()


def dataset_edit_set(*, dataset: Dataset, user, path: str, action: str, new_class: str = "") -> DatasetEdit | None:
    """Record (or replace, or drop) the user's pending edit of one image of `dataset`; see the module doc."""
    if not dataset.is_ready:
        raise Conflict(f"Dataset v{dataset.version} is {dataset.status}; only a ready version's images can be edited.")
    if action not in Action.values:
        raise ServiceError(f"Unknown action {action!r}: relabel, exclude or restore.", field="action")
    split, current, _ = image_parts(path)
    pending = DatasetEdit.objects.filter(dataset=dataset, user=user, path=path)
    if action == Action.RESTORE:
        if pending.exists():
            pending.delete()
            return None
        if path not in restorable(dataset):
            raise ServiceError(f"{path} has no pending edit and was not left out of an earlier version.", field="path")
        parent = _parent(dataset)
        if parent is None or not parent.is_ready:
            raise Conflict(f"{path} cannot be restored: the version it was left out of is gone.")
        new_class = ""
    else:
        if not _has_image(dataset, path):
            raise ServiceError(f"Dataset v{dataset.version} has no image {path}.", field="path")
        if action == Action.RELABEL:
            names = list(dataset.classes.values_list("name", flat=True))
            if new_class not in names:
                raise ServiceError(
                    f"{new_class!r} is not a class of dataset v{dataset.version}: choose one of {', '.join(names)}.",
                    field="class",
                )
            if new_class == current:
                pending.delete()  # back to its own class: nothing to change
                return None
        else:
            new_class = ""
    edit, _ = DatasetEdit.objects.update_or_create(
        dataset=dataset, user=user, path=path, defaults={"action": action, "new_class": new_class}
    )
    return edit


def dataset_edits_pending(*, dataset: Dataset, user):
    return DatasetEdit.objects.filter(dataset=dataset, user=user).order_by("path")


def dataset_edits_summary(edits) -> str:
    """ "3 relabelled, 2 excluded, 1 restored" (the parts that are not zero)."""
    counts = {action: 0 for action in Action.values}
    for edit in edits:
        counts[edit.action] += 1
    words = {Action.RELABEL: "relabelled", Action.EXCLUDE: "excluded", Action.RESTORE: "restored"}
    return ", ".join(f"{counts[a]} {words[a]}" for a in Action.values if counts[a])


def dataset_create_from_edits(*, dataset: Dataset, user) -> Dataset:
    """Queue the next version with `user`'s pending edits of `dataset` applied; Conflict when there are none."""
    if not dataset.is_ready:
        raise Conflict(f"Dataset v{dataset.version} is {dataset.status}; a new version is made from a ready one.")
    with transaction.atomic():
        # Locked, so that two clicks make one version and an edit made meanwhile is in it or stays pending.
        edits = list(dataset_edits_pending(dataset=dataset, user=user).select_for_update())
        if not edits:
            raise Conflict(
                f"Dataset v{dataset.version} has no pending edits: relabel, exclude or restore images first."
            )
        summary = dataset_edits_summary(edits)
        relabel = {e.path: e.new_class for e in edits if e.action == Action.RELABEL}
        changes = {
            "relabelled": [
                {"path": e.path, "from": image_parts(e.path)[1], "to": e.new_class}
                for e in edits
                if e.action == Action.RELABEL
            ],
            "excluded": [e.path for e in edits if e.action == Action.EXCLUDE],
            "restored": [e.path for e in edits if e.action == Action.RESTORE],
        }
        lineage = {
            "dataset": dataset.pk,
            "version": dataset.version,
            "note": f"made from v{dataset.version}: {summary}",
            "summary": summary,
            "changes": changes,
        }
        restore_from = _parent(dataset) if changes["restored"] else None
        if changes["restored"]:
            if restore_from is None or not restore_from.is_ready:
                raise Conflict("The version the restored images come from is gone: drop those edits.")
            lineage["restored_from"] = restore_from.pk
        new = dataset_create_derived(
            dataset=dataset,
            user=user,
            original_name=f"v{dataset.version}: {summary}",
            lineage=lineage,
            exclude=set(changes["excluded"]),
            relabel=relabel,
            restore=changes["restored"],
            restore_from=restore_from,
        )
        DatasetEdit.objects.filter(pk__in=[e.pk for e in edits]).delete()
    return new
