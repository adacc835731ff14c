"""Per-epoch checkpoints: a run stopped after epoch k and run again ends as if it had never stopped."""

import json

import numpy as np
import pytest
from conftest import tiny_config

from workers.ml import checkpoint
from workers.ml.errors import Cancelled
from workers.ml.predict import load_verified_model
from workers.ml.train import train


class StopAfter:
    """should_stop that turns True once `epochs` epochs have ended: the run dies inside the next one."""

    def __init__(self, epochs: int):
        self.epochs, self.done = epochs, 0

    def on_progress(self, p):
        if p.logs:
            self.done = p.epoch

    def __call__(self):
        return self.done >= self.epochs


def run(config, dataset_dir, tmp_path, name, **kwargs):
    kwargs.setdefault("cache_dir", tmp_path / "cache")
    return train(config=config, dataset_dir=dataset_dir, output_dir=tmp_path / name, dataset_hash="h", **kwargs)


CASES = {
    # Arrays (cached features), dropout, early stopping whose counter must carry over.
    "bottleneck": dict(mode="bottleneck", epochs=6, early_stopping={"patience": 2}, head={"units": 16, "dropout": 0.5}),
    # Images decoded per batch, random augmentation layers with their own seed states.
    "scratch": dict(mode="scratch", epochs=4, augmentation={"horizontal_flip": True, "rotation_range": 20}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_run_stopped_after_epoch_2_resumes_to_the_uninterrupted_result(case, two_class_dir, tmp_path):
    cfg = tiny_config(**CASES[case])
    whole = run(cfg, two_class_dir, tmp_path, "whole", checkpoint_dir=tmp_path / "ckpt-whole")

    stop = StopAfter(2)
    with pytest.raises(Cancelled):
        run(cfg, two_class_dir, tmp_path, "first", checkpoint_dir=tmp_path / "ckpt", on_progress=stop.on_progress,
            should_stop=stop)  # fmt: skip
    assert checkpoint.latest_epoch(tmp_path / "ckpt") == 2
    assert not (tmp_path / "first").exists()
    resumed_at, reports = [], []
    again = run(cfg, two_class_dir, tmp_path, "again", checkpoint_dir=tmp_path / "ckpt",
                on_resume=lambda epoch, history: resumed_at.append((epoch, history)), on_progress=reports.append)  # fmt: skip

    assert [epoch for epoch, _ in resumed_at] == [2]
    assert resumed_at[0][1] == whole.history[:2]
    assert [r.epoch for r in reports if r.logs] == [h["epoch"] for h in whole.history][2:]  # only the rest ran
    assert len(again.history) == len(whole.history) and again.best_epoch == whole.best_epoch
    for mine, theirs in zip(again.history, whole.history, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-5), (mine["epoch"], key)
    one = load_verified_model(whole.model_dir, whole.sha256)
    two = load_verified_model(again.model_dir, again.sha256)
    for a, b in zip(one.get_weights(), two.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_checkpoint_of_another_config_is_not_resumed(two_class_dir, tmp_path):
    stop = StopAfter(1)
    with pytest.raises(Cancelled):
        run(tiny_config("scratch", epochs=2), two_class_dir, tmp_path, "a", checkpoint_dir=tmp_path / "ckpt",
            on_progress=stop.on_progress, should_stop=stop)  # fmt: skip
    resumed = []
    result = run(tiny_config("scratch", epochs=2, learning_rate=0.01), two_class_dir, tmp_path, "b",
                 checkpoint_dir=tmp_path / "ckpt", on_resume=lambda *a: resumed.append(a))  # fmt: skip
    assert resumed == [] and [h["epoch"] for h in result.history] == [1, 2]


def test_a_finished_checkpoint_is_not_trained_again(two_class_dir, tmp_path):
    cfg = tiny_config("scratch", epochs=2)
    first = run(cfg, two_class_dir, tmp_path, "a", checkpoint_dir=tmp_path / "ckpt")
    # A worker killed after the last epoch but before the job was marked done: only evaluation is redone.
    reports, resumed = [], []
    second = run(cfg, two_class_dir, tmp_path, "b", checkpoint_dir=tmp_path / "ckpt", on_progress=reports.append,
                 on_resume=lambda epoch, history: resumed.append(epoch))  # fmt: skip
    assert resumed == [2] and not [r for r in reports if r.phase == "training"]
    assert second.history == first.history and second.evaluation["accuracy"] == first.evaluation["accuracy"]


# --- the files (no TensorFlow) ---------------------------------------------------------------------------


def save(directory, epoch, fingerprint="f"):
    return checkpoint.save(
        directory, run_fingerprint=fingerprint, epoch=epoch, history=[{"epoch": i + 1} for i in range(epoch)],
        best_loss=float("inf"), best_epoch=0, stopped=False, early_stopping={"wait": 1, "best": None, "best_epoch": 0},
        variables=[np.arange(3, dtype=np.float32), np.array([7, 9], dtype=np.uint32)],
        optimizer=[np.array(5, dtype=np.int64)], best_weights=None,
    )  # fmt: skip


def test_a_new_checkpoint_replaces_the_previous_one_and_reads_back(tmp_path):
    save(tmp_path, 1)
    final = save(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0002"] and final == tmp_path / "epoch-0002"
    state = checkpoint.load(tmp_path, "f")
    assert state.epoch == 2 and state.history == [{"epoch": 1}, {"epoch": 2}] and state.best_loss == float("inf")
    assert state.early_stopping == {"wait": 1, "best": None, "best_epoch": 0} and state.best_weights is None
    assert [a.dtype for a in state.variables] == [np.float32, np.uint32] and state.variables[1].tolist() == [7, 9]
    assert state.optimizer[0] == 5 and set(state.rng) == {"python", "numpy"}


def test_a_half_written_checkpoint_is_never_read(tmp_path):
    save(tmp_path, 1)
    # A writer killed before its rename leaves only a hidden temporary folder.
    half = tmp_path / ".epoch-0002.tmp-dead"
    half.mkdir()
    (half / "variables.npz").write_bytes(b"trunc")
    assert checkpoint.latest_epoch(tmp_path) == 1 and checkpoint.load(tmp_path, "f").epoch == 1
    save(tmp_path, 2)
    assert not half.exists()  # the next write sweeps it


def test_a_checkpoint_of_another_run_or_unreadable_is_ignored(tmp_path):
    save(tmp_path, 3, fingerprint="other")
    assert checkpoint.latest_epoch(tmp_path) == 3 and checkpoint.load(tmp_path, "f") is None
    (tmp_path / "epoch-0003" / "state.json").write_text(json.dumps({"format_version": 1, "fingerprint": "f"}))
    assert checkpoint.load(tmp_path, "f") is None  # fields missing: start over rather than crash
    assert checkpoint.latest_epoch(tmp_path / "nothing") is None and checkpoint.latest_epoch(None) is None


def test_python_and_numpy_random_states_are_restored(tmp_path):
    import random

    random.seed(3)
    np.random.seed(3)
    save(tmp_path, 1)
    expected = (random.random(), np.random.random())
    random.seed(99)
    np.random.seed(99)
    checkpoint.restore_rng(checkpoint.load(tmp_path, "f").rng)
    assert (random.random(), np.random.random()) == expected
