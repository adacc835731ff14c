"""A training job's checkpoint folder, `checkpoints/<job_id>/` (docs/decisions.md, "Resumable training jobs").

The engine writes it after every epoch; it stays while the job may still continue: while it is
queued or running, and after it failed or was cancelled, until it is resumed, superseded by a new
run of its experiment, or deleted with its project. A succeeded job's goes at once.

With an object store (docs/architecture.md, "Object storage") each `epoch-NNNN/` folder is an object
of its own: published after each epoch, and the latest fetched before a run, so that a job resumes
on whichever host takes it next.
"""

import re

from webapp.core import objectstore, storage

_EPOCH = re.compile(r"epoch-(\d+)")


def _key(job_id: int) -> str:
    return storage.key_of(storage.checkpoint_dir(job_id))


def checkpoint_epoch(job_id: int) -> int | None:
    """Completed epochs in the job's checkpoint, or None without one (reads a small JSON file, no TF;
    with an object store, the name of its latest published checkpoint, so any host can tell)."""
    from workers.ml.checkpoint import latest_epoch

    if objectstore.enabled():
        epochs = [int(m.group(1)) for name in objectstore.children(_key(job_id)) if (m := _EPOCH.fullmatch(name))]
        return max(epochs, default=None)
    return latest_epoch(storage.checkpoint_dir(job_id))


def checkpoint_fetch(job_id: int) -> None:
    """Bring the job's latest published checkpoint to this host (a no-op without an object store)."""
    if not objectstore.enabled():
        return
    names = [name for name in objectstore.children(_key(job_id)) if _EPOCH.fullmatch(name)]
    if names:
        objectstore.fetch(f"{_key(job_id)}/{max(names)}")


def checkpoint_publish(job_id: int) -> None:
    """Publish the checkpoint the engine finished since the last call; the store keeps only the latest,
    as the local folder does."""
    if storage.checkpoint_dir(job_id).is_dir():
        objectstore.publish_children(_key(job_id), prune=True)


def checkpoint_remove(job_id: int) -> None:
    storage.remove(storage.checkpoint_dir(job_id))
