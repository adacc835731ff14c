"""Per-epoch checkpoints of a training run, so that a run killed mid-way continues where it stopped.

A checkpoint is a folder ``epoch-NNNN/`` inside the caller's checkpoint directory:

- ``state.json``: the completed epoch count, the history, the best epoch so far, the
  early-stopping counter, Python's and NumPy's random states and a fingerprint of what
  was trained (config, dataset, base model), so that another run's checkpoint is never used;
- ``variables.npz``: every variable of the training model, random seed states included
  (Keras ``model.variables``: weights plus each ``SeedGenerator``'s state);
- ``optimizer.npz``: the optimizer's variables (its step count, momenta, moving averages),
  which ``model.save_weights`` would not keep;
- ``best.npz``: the best epoch's weights, which the saved model ends with.

It is written as ``.epoch-NNNN.tmp-<random>/`` and renamed last (the rename is atomic), and the
older checkpoints are removed after that: a kill at any moment leaves the previous checkpoint
or the new one, never half of one under a final name. Why this shape: docs/decisions.md,
"Resumable training jobs".
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
_FINAL = re.compile(r"epoch-(\d{4,})")


@dataclass
class Checkpoint:
    """What a run needs to continue after ``epoch`` completed epochs."""

    epoch: int
    history: list[dict]
    best_loss: float
    best_epoch: int
    stopped: bool  # early stopping ended the run at ``epoch``
    early_stopping: dict | None  # {"wait", "best", "best_epoch"} of keras.callbacks.EarlyStopping
    variables: list[np.ndarray] = field(repr=False)
    optimizer: list[np.ndarray] = field(repr=False)
    best_weights: list[np.ndarray] | None = field(repr=False)
    rng: dict = field(default_factory=dict, repr=False)


def fingerprint(*parts: object) -> str:
    """A digest of what a run trains; a checkpoint is resumed only by a run with the same one."""
    text = json.dumps([FORMAT_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _final_folders(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _FINAL.fullmatch(p.name)) and p.is_dir()]
    return sorted(found)


def latest_epoch(directory: Path | None) -> int | None:
    """Completed epochs in the newest checkpoint under ``directory``, or None if there is none.

    Reads one small JSON file and never imports TensorFlow, so that web processes can ask.
    """
    if directory is None:
        return None
    for epoch, folder in reversed(_final_folders(Path(directory))):
        if (folder / "state.json").is_file():
            return epoch
    return None


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else repr(value)  # JSON has no inf or nan


def _json_best(value) -> float | str | None:
    return None if value is None else _json_number(float(value))


def _rng_state() -> dict:
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(state), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def restore_rng(state: dict) -> None:
    """Put Python's and NumPy's global random generators back where the checkpoint left them."""
    if "python" in state:
        version, values, gauss = state["python"]
        random.setstate((version, tuple(values), gauss))
    if "numpy" in state:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _savez(path: Path, arrays: list[np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, *arrays)
        fh.flush()
        os.fsync(fh.fileno())


def _loadz(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def save(
    directory: Path,
    *,
    run_fingerprint: str,
    epoch: int,
    history: list[dict],
    best_loss: float,
    best_epoch: int,
    stopped: bool,
    early_stopping: dict | None,
    variables: list[np.ndarray],
    optimizer: list[np.ndarray],
    best_weights: list[np.ndarray] | None,
) -> Path:
    """Write the checkpoint after ``epoch`` completed epochs; returns its folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch:04d}"
    tmp = directory / f".{name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        _savez(tmp / "variables.npz", variables)
        _savez(tmp / "optimizer.npz", optimizer)
        if best_weights is not None:
            _savez(tmp / "best.npz", best_weights)
        state = {
            "format_version": FORMAT_VERSION,
            "fingerprint": run_fingerprint,
            "epoch": epoch,
            "history": history,
            "best_loss": _json_number(best_loss),
            "best_epoch": best_epoch,
            "stopped": stopped,
            "early_stopping": early_stopping and {**early_stopping, "best": _json_best(early_stopping["best"])},
            "rng": _rng_state(),
        }
        (tmp / "state.json").write_text(json.dumps(state))
        final = directory / name
        if final.exists():  # the same epoch again (a resumed run redoing it): replace it
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, older in _final_folders(directory):
        if older != final:
            shutil.rmtree(older, ignore_errors=True)
    for leftover in directory.glob(".epoch-*.tmp-*"):  # a write killed before its rename
        shutil.rmtree(leftover, ignore_errors=True)
    return final


def load(directory: Path | None, run_fingerprint: str) -> Checkpoint | None:
    """The newest checkpoint under ``directory`` written by a run with ``run_fingerprint``, or None.

    A checkpoint of another config, dataset or format is ignored (the run then starts over);
    so is one that cannot be read.
    """
    epoch = latest_epoch(directory)
    if epoch is None:
        return None
    folder = Path(directory) / f"epoch-{epoch:04d}"
    try:
        state = json.loads((folder / "state.json").read_text())
        if state.get("format_version") != FORMAT_VERSION or state.get("fingerprint") != run_fingerprint:
            return None
        best = folder / "best.npz"
        early = state.get("early_stopping")
        if early is not None:
            early = {**early, "best": None if early["best"] is None else float(early["best"])}
        return Checkpoint(
            epoch=int(state["epoch"]),
            history=list(state["history"]),
            best_loss=float(state["best_loss"]),
            best_epoch=int(state["best_epoch"]),
            stopped=bool(state["stopped"]),
            early_stopping=early,
            variables=_loadz(folder / "variables.npz"),
            optimizer=_loadz(folder / "optimizer.npz"),
            best_weights=_loadz(best) if best.is_file() else None,
            rng=state.get("rng") or {},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
