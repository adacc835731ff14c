"""A training job's checkpoint folder, `checkpoints/<job_id>/` (docs/decisions.md, "Resumable training jobs").

The engine writes it after every epoch; it stays while the job may still continue: while it is
queued or running, and after it failed or was cancelled, until it is resumed, superseded by a new
run of its experiment, or deleted with its project. A succeeded job's goes at once.
"""

from webapp.core import storage


def checkpoint_epoch(job_id: int) -> int | None:
    """Completed epochs in the job's checkpoint, or None without one (reads a small JSON file, no TF)."""
    from workers.ml.checkpoint import latest_epoch

    return latest_epoch(storage.checkpoint_dir(job_id))


def checkpoint_remove(job_id: int) -> None:
    storage.remove(storage.checkpoint_dir(job_id))
