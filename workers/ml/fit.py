"""The loop every training mode shares: a run's state, progress and cancellation, best-epoch weights.

A mode module (workers/ml/modes/) builds its model and calls ``fit``; ``train.train`` drives the
modes, evaluates, saves and checks the saved model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from workers.ml import checkpoint as ckpts
from workers.ml import features as feats
from workers.ml.config import ExperimentConfig
from workers.ml.data import Split, array_batches, make_dataset, sequential_batches, training_batches
from workers.ml.errors import Cancelled
from workers.ml.models import compile_model, is_binary, probabilities, with_augmentation

# Head training runs several batches per compiled call (Keras's steps_per_execution): a head's step
# on cached features takes milliseconds, and per-call overhead and the cancel poll (a database read)
# would otherwise weigh on every one. Batch callbacks, where should_stop is polled, then fire once per
# call, so a call is sized to take well under a second (HEAD_CALL_SECONDS at HEAD_ASSUMED_FLOPS, about
# what a Flatten -> Dense(256) head on VGG16's 8,192 features reached here on a loaded machine): a stop
# still ends training within a second.
HEAD_CALL_SECONDS = 0.25
HEAD_ASSUMED_FLOPS = 10e9
HEAD_MAX_STEPS_PER_EXECUTION = 64


def head_steps_per_execution(head, batch_size: int, batches: int) -> int:
    """Batches per compiled call for ``head``: about 6 flops per weight per image (forward and
    backward), kept under HEAD_CALL_SECONDS at HEAD_ASSUMED_FLOPS.

    A divisor of the epoch's ``batches``: Keras fills every call with that many batches from the
    stream, so a call that did not end with its epoch would train on the next epoch's batches
    before this one's validation.
    """
    flops_per_step = 6.0 * batch_size * max(1, head.count_params())
    limit = max(1, min(HEAD_MAX_STEPS_PER_EXECUTION, int(HEAD_CALL_SECONDS * HEAD_ASSUMED_FLOPS / flops_per_step)))
    return max(d for d in range(1, min(limit, batches) + 1) if batches % d == 0)


VALIDATION_BATCH = 256  # validation passes over arrays: no gradients, so bigger batches cost nothing


@dataclass
class Progress:
    """One progress report; ``fraction`` covers the whole job (0..1)."""

    phase: str  # "extracting" | "training" | "evaluating"
    epoch: int
    epochs: int
    batch: int
    batches: int
    fraction: float
    logs: dict = field(default_factory=dict)  # per-epoch metrics when an epoch ends


@dataclass
class Run:
    """One training run: its config, data and the caller's callables."""

    cfg: ExperimentConfig
    dataset_dir: Path
    class_names: list[str]
    train: Split
    val: Split
    on_progress: Callable
    should_stop: Callable
    test: Split | None = None  # scored once at the end; never used to choose anything
    base_info: dict | None = None  # finetune: the base model's model.json
    timings: dict = field(default_factory=lambda: {"feature_extraction_s": 0.0, "training_s": 0.0, "cache_hit": False})
    # Where per-epoch checkpoints go (workers.ml.checkpoint); None: no checkpoints, no resuming.
    checkpoint_dir: Path | None = None
    fingerprint: str = ""  # checkpoint.fingerprint of what this run trains
    # Called once, before training continues, when a checkpoint was resumed: (epochs done, history).
    on_resume: Callable = lambda epoch, history: None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def binary(self) -> bool:
        return is_binary(self.n_classes)

    @property
    def scored(self) -> Split:
        """The split the headline metrics are measured on: test when there is one."""
        return self.test if self.test is not None else self.val

    def targets(self, split: Split) -> np.ndarray:
        if self.binary:
            return split.labels.astype(np.float32).reshape(-1, 1)
        return split.labels


class Monitor(keras.callbacks.Callback):
    """Progress, cancellation, history and best-epoch weights in one callback."""

    def __init__(self, run: Run, batches: int, start: float, end: float):
        super().__init__()
        self.run, self.batches, self.start, self.end = run, batches, start, end
        self.epochs = run.cfg.epochs
        self.epoch = 0
        self.history: list[dict] = []
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_weights = None

    def _check_stop(self):
        if self.run.should_stop():
            self.model.stop_training = True
            # Raising here ends fit() at once instead of after a validation pass.
            raise Cancelled("training was cancelled")

    def on_train_batch_begin(self, batch, logs=None):
        self._check_stop()

    def on_test_batch_begin(self, batch, logs=None):
        self._check_stop()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def _fraction(self, batches_done: int) -> float:
        share = batches_done / max(1, self.epochs * self.batches)
        return self.start + (self.end - self.start) * min(1.0, share)

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution Keras may report an end step past the epoch's last batch.
        batch = min(batch + 1, self.batches)
        done = self.epoch * self.batches + batch
        self.run.on_progress(
            Progress("training", self.epoch + 1, self.epochs, batch, self.batches, self._fraction(done), {})
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {"epoch": epoch + 1}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            row[key] = float(logs[key]) if key in logs else None
        self.history.append(row)
        val_loss = row["val_loss"]
        if val_loss is not None and not math.isnan(val_loss) and val_loss < self.best_loss:
            self.best_loss, self.best_epoch = val_loss, epoch + 1
            self.best_weights = self.model.get_weights()
        elif self.best_weights is None and epoch == 0:
            self.best_epoch, self.best_weights = 1, self.model.get_weights()
        self.run.on_progress(
            Progress(
                "training",
                epoch + 1,
                self.epochs,
                self.batches,
                self.batches,
                self._fraction((epoch + 1) * self.batches),
                dict(row),
            )
        )

    def on_train_end(self, logs=None):
        # Evaluation and the saved model use the best epoch, with or without early stopping.
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def resume(self, state: ckpts.Checkpoint) -> None:
        self.epoch = state.epoch
        self.history = [dict(row) for row in state.history]
        self.best_loss, self.best_epoch, self.best_weights = state.best_loss, state.best_epoch, state.best_weights


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's early stopping on val_loss, whose counter can continue from a checkpoint."""

    def __init__(self, patience: int, state: dict | None = None):
        super().__init__(monitor="val_loss", patience=patience)
        self._resumed = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._resumed:
            self.wait, self.best, self.best_epoch = (self._resumed[k] for k in ("wait", "best", "best_epoch"))

    def state(self) -> dict:
        best = None if self.best is None else float(self.best)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch)}


class Checkpointer(keras.callbacks.Callback):
    """Writes a checkpoint after each epoch; last in the callback list, so that the monitor's
    history and best epoch and the early-stopping counter already count this epoch."""

    def __init__(self, run: Run, monitor: Monitor, early: EarlyStopping | None):
        super().__init__()
        self.run, self.monitor, self.early = run, monitor, early

    def on_epoch_end(self, epoch, logs=None):
        ckpts.save(
            self.run.checkpoint_dir,
            run_fingerprint=self.run.fingerprint,
            epoch=epoch + 1,
            history=self.monitor.history,
            best_loss=self.monitor.best_loss,
            best_epoch=self.monitor.best_epoch,
            stopped=bool(self.model.stop_training),
            early_stopping=self.early.state() if self.early else None,
            variables=[keras.ops.convert_to_numpy(v) for v in self.model.variables],
            optimizer=[keras.ops.convert_to_numpy(v) for v in self.model.optimizer.variables],
            best_weights=self.monitor.best_weights,
        )


def _restore(run: Run, model) -> ckpts.Checkpoint | None:
    """Load the run's checkpoint into ``model`` (compiled, not yet trained); None if there is none
    it can use, and then ``model`` is untouched and the run starts at epoch 1."""
    state = ckpts.load(run.checkpoint_dir, run.fingerprint) if run.checkpoint_dir else None
    if state is None:
        return None
    model.optimizer.build(model.trainable_variables)
    pairs = [
        *zip(model.variables, state.variables, strict=False),
        *zip(model.optimizer.variables, state.optimizer, strict=False),
    ]
    if (
        len(state.variables) != len(model.variables)
        or len(state.optimizer) != len(model.optimizer.variables)
        or any(tuple(v.shape) != a.shape for v, a in pairs)
    ):
        return None  # the fingerprint matched but the graph did not: an engine change; start over
    for variable, value in pairs:
        variable.assign(value)
    ckpts.restore_rng(state.rng)
    return state


def fit(run: Run, model, x, y=None, *, validation_data, batches: int, start: float, end: float) -> Monitor:
    """Train ``model`` on ``x`` (a Split of images, or an array with targets ``y``) for the
    config's epochs, continuing from the run's checkpoint when there is one."""
    cfg = run.cfg
    monitor = Monitor(run, batches, start, end)
    state = _restore(run, model)
    if state is not None:
        monitor.resume(state)
        run.on_resume(state.epoch, [dict(row) for row in state.history])
    first = state.epoch if state else 0
    early = None
    if cfg.early_stopping_patience is not None:
        early = EarlyStopping(cfg.early_stopping_patience, state.early_stopping if state else None)
    callbacks = [
        monitor,
        *([early] if early else []),
        *([Checkpointer(run, monitor, early)] if run.checkpoint_dir else []),
    ]
    started = time.perf_counter()
    if state is not None and (state.stopped or first >= cfg.epochs):
        monitor.set_model(model)  # nothing left to train: only the best epoch's weights to put back
        monitor.on_train_end()
    else:
        # One stream over the remaining epochs, each in an order fixed by (seed, epoch), so that a
        # resumed run sees the batches it would have seen without stopping.
        order = {"seed": cfg.seed, "first_epoch": first, "epochs": cfg.epochs}
        if y is None:
            data = training_batches(x, cfg.image_size, cfg.batch_size, binary=run.binary, **order)
        else:
            data = array_batches(x, y, cfg.batch_size, **order)
        kwargs = {}
        if cfg.class_weight == "balanced":
            kwargs["class_weight"] = balanced_class_weights(run.train.labels, run.n_classes)
        if isinstance(validation_data, tuple):  # arrays (features): read a batch at a time
            validation_data = sequential_batches(*validation_data, VALIDATION_BATCH)
        model.fit(
            data,
            epochs=cfg.epochs,
            initial_epoch=first,
            steps_per_epoch=batches,
            shuffle=False,  # the stream is in its order already
            validation_data=validation_data,
            callbacks=callbacks,
            verbose=0,
            **kwargs,
        )
    run.timings["training_s"] = time.perf_counter() - started
    # The measured speed the new-experiment page estimates durations from (webapp/experiments/estimates.py).
    run.timings.update(epochs_trained=len(monitor.history) - first, images_per_epoch=len(run.train) + len(run.val))
    if run.should_stop():  # asked during the very last batch's callbacks
        raise Cancelled("training was cancelled")
    return monitor


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """n / (classes x count) per class, as scikit-learn's "balanced": the classes weigh the same."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=n_classes).astype(np.float64)
    return {c: float(len(labels) / (n_classes * counts[c])) if counts[c] else 0.0 for c in range(n_classes)}


def predict_batches(model, batches) -> np.ndarray:
    """Outputs of ``model(x, training=False)`` over an iterable of input batches."""
    return np.concatenate([np.asarray(model(x, training=False)) for x in batches])


def image_fit(run: Run, model, augmentation, *, baseline: bool = False):
    """Fit ``model`` behind the training-only ``augmentation`` on image batches.

    Returns the monitor, the validation probabilities of the trained ``model`` and, with
    ``baseline``, those of ``model`` before its first step (None otherwise).
    """
    cfg = run.cfg
    val_ds = make_dataset(run.val, cfg.image_size, cfg.batch_size, binary=run.binary)
    val_images = make_dataset(run.val, cfg.image_size, cfg.batch_size, with_labels=False)
    before = probabilities(predict_batches(model, val_images)) if baseline else None
    training = with_augmentation(model, augmentation)
    compile_model(training, cfg, run.n_classes)
    monitor = fit(
        run,
        training,
        run.train,
        validation_data=val_ds,
        batches=feats.num_batches(len(run.train), cfg.batch_size),
        start=0.0,
        end=0.95,
    )
    return monitor, probabilities(predict_batches(model, val_images)), before
