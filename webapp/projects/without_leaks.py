"""A new dataset version without leaked images (docs/decisions.md, "Near duplicates").

    dataset_create_without_leaks(*, dataset, user) -> Dataset
        The next version of the project, made from the same stored files and ingested through the
        normal path, which leaves out the copies of each picture outside its first split (the train
        copy is kept). Conflict (409) unless the version is ready and has leaked copies;
        Unavailable (503) when the job queue is down.

The new version is made by derived.py from hard links to the stored files, with a lineage.json that
asks the ingest to leave the leaked copies out.
"""

from webapp.core.errors import Conflict

from .derived import dataset_create_derived
from .models import Dataset


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
    return dataset_create_derived(
        dataset=dataset,
        user=user,
        original_name=f"v{dataset.version} without {copies} leaked images",
        # No exclusions named here: the ingest leaves out each picture's copies outside its first split.
        lineage={"dataset": dataset.pk, "version": dataset.version},
    )
