"""Training entry point: bottleneck, finetune and scratch modes.

Paths and dataclasses in, a ``TrainingResult`` out; progress and cancellation go through
the callables the caller passes (STYLE habit 5). The model directory is written to a
temporary sibling and renamed into place, so ``output_dir`` holds a complete model or
nothing at all.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from workers.ml import features as feats
from workers.ml.augment import build_random_augmentation, build_standardization
from workers.ml.backbones import (
    build_base,
    build_preprocess,
    resolve_weights,
    set_trainable_blocks,
    weights_identity,
)
from workers.ml.config import ExperimentConfig, config_to_dict
from workers.ml.data import RESIZE_RULE, Split, list_classes, list_split, make_dataset
from workers.ml.errors import Cancelled, MLError
from workers.ml.evaluate import evaluate
from workers.ml.images import DECODER_VERSION
from workers.ml.models import (
    build_head,
    build_scratch_model,
    build_transfer_model,
    compile_model,
    is_binary,
    probabilities,
    with_augmentation,
)
from workers.ml.predict import file_sha256, load_verified_model, model_inputs
from workers.ml.roundtrip import check_round_trip

EXTRACTION_BATCH = 32  # independent of the head's batch size: bigger keeps the base busy
# Batches per compiled call of head training. More would cut per-step Python overhead on the
# millisecond steps of a head, but batch callbacks then fire once per call, and the contract
# is that should_stop is polled after every batch (a stop ends training within one batch).
HEAD_STEPS_PER_EXECUTION = 1
# Fine-tuning keeps the frozen prefix's outputs in memory up to this size (both splits).
PREFIX_MEMORY_BUDGET = 1 << 30
MODEL_FORMAT_VERSION = 2  # 2: decoded by workers.ml.images, no augmentation layers inside
# Validation images the saved model is checked on in a fresh process before success.
ROUND_TRIP_IMAGES = 8


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
class TrainingResult:
    """What a finished training run produced."""

    class_names: list[str]
    history: list[dict]
    best_epoch: int
    evaluation: dict
    timings: dict
    model_dir: Path
    model_bytes: int
    sha256: str
    model_info: dict = field(default_factory=dict)  # the contents of model.json
    # Fine-tune only: its base model evaluated on the same validation images before epoch 1.
    base_evaluation: dict | None = None
    round_trip: dict = field(default_factory=dict)  # RoundTrip.as_dict()


@dataclass
class _Run:
    cfg: ExperimentConfig
    dataset_dir: Path
    class_names: list[str]
    train: Split
    val: Split
    on_progress: Callable
    should_stop: Callable
    base_info: dict | None = None  # finetune: the base model's model.json
    timings: dict = field(default_factory=lambda: {"feature_extraction_s": 0.0, "training_s": 0.0, "cache_hit": False})

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def binary(self) -> bool:
        return is_binary(self.n_classes)

    def targets(self, split: Split) -> np.ndarray:
        if self.binary:
            return split.labels.astype(np.float32).reshape(-1, 1)
        return split.labels


class _Monitor(keras.callbacks.Callback):
    """Progress, cancellation, history and best-epoch weights in one callback."""

    def __init__(self, run: _Run, batches: int, start: float, end: float):
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


def _fit(run: _Run, model, x, y=None, *, validation_data, batches: int, start: float, end: float) -> _Monitor:
    monitor = _Monitor(run, batches, start, end)
    callbacks = [monitor]
    if run.cfg.early_stopping_patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=run.cfg.early_stopping_patience))
    started = time.perf_counter()
    # Arrays are shuffled by fit; datasets are shuffled (seeded) by the pipeline itself.
    kwargs = {"batch_size": run.cfg.batch_size, "shuffle": y is not None}
    if y is None:
        del kwargs["batch_size"]
    model.fit(x, y, epochs=run.cfg.epochs, validation_data=validation_data, callbacks=callbacks, verbose=0, **kwargs)
    run.timings["training_s"] = time.perf_counter() - started
    if run.should_stop():  # asked during the very last batch's callbacks
        raise Cancelled("training was cancelled")
    return monitor


def _predict_batches(model, batches) -> np.ndarray:
    """Outputs of ``model(x, training=False)`` over an iterable of input batches."""
    return np.concatenate([np.asarray(model(x, training=False)) for x in batches])


def _train_bottleneck(run: _Run, weights_dir, cache_dir, dataset_hash):
    cfg = run.cfg
    weights_path = resolve_weights(cfg.backbone, cfg.weights, weights_dir, cfg.image_size)
    # The base is built even on a cache hit: the saved model must contain it.
    base = build_base(cfg.backbone, cfg.image_size, weights_path, cfg.seed)
    preprocess = build_preprocess(cfg.backbone)
    key = feats.cache_key(
        dataset_hash=dataset_hash,
        backbone=cfg.backbone,
        weights_identity=weights_identity(weights_path, cfg.seed),
        image_size=cfg.image_size,
    )
    meta = {"class_names": run.class_names, "train": run.train.relative, "validation": run.val.relative}
    train_batches = feats.num_batches(len(run.train), EXTRACTION_BATCH)
    val_batches = feats.num_batches(len(run.val), EXTRACTION_BATCH)

    def report(done, total):
        run.on_progress(Progress("extracting", 0, cfg.epochs, done, total, 0.5 * done / total))

    def extractor():
        return keras.Sequential([keras.Input((*cfg.image_size, 3)), preprocess, base])

    fs = feats.load_or_extract(
        key=key,
        cache_dir=cache_dir,
        meta=meta,
        build_model=extractor,
        train_ds=make_dataset(run.train, cfg.image_size, EXTRACTION_BATCH, with_labels=False),
        val_ds=make_dataset(run.val, cfg.image_size, EXTRACTION_BATCH, with_labels=False),
        train_batches=train_batches,
        val_batches=val_batches,
        on_batch=report,
        should_stop=run.should_stop,
    )
    run.timings.update(feature_extraction_s=fs.extraction_s, cache_hit=fs.cache_hit)

    keras.utils.set_random_seed(cfg.seed)  # same head init and shuffling, hit or miss
    head = build_head(fs.train.shape[1:], run.n_classes, cfg.head, fs.train)
    compile_model(head, cfg, run.n_classes, steps_per_execution=HEAD_STEPS_PER_EXECUTION)
    monitor = _fit(
        run,
        head,
        fs.train,
        run.targets(run.train),
        validation_data=(fs.validation, run.targets(run.val)),
        batches=feats.num_batches(len(run.train), cfg.batch_size),
        start=0.0 if fs.cache_hit else 0.5,
        end=0.95,
    )
    chunks = [fs.validation[i : i + 256] for i in range(0, len(fs.validation), 256)]
    probs = probabilities(_predict_batches(head, chunks))
    return build_transfer_model(cfg.image_size, preprocess, base, head), monitor, probs


def _image_fit(run: _Run, model, augmentation, *, baseline: bool = False):
    """Fit ``model`` behind the training-only ``augmentation`` on image batches.

    Returns the monitor, the validation probabilities of the trained ``model`` and, with
    ``baseline``, those of ``model`` before its first step (None otherwise).
    """
    cfg = run.cfg
    train_ds = make_dataset(run.train, cfg.image_size, cfg.batch_size, shuffle=True, seed=cfg.seed, binary=run.binary)
    val_ds = make_dataset(run.val, cfg.image_size, cfg.batch_size, binary=run.binary)
    val_images = make_dataset(run.val, cfg.image_size, cfg.batch_size, with_labels=False)
    before = probabilities(_predict_batches(model, val_images)) if baseline else None
    training = with_augmentation(model, augmentation)
    compile_model(training, cfg, run.n_classes)
    monitor = _fit(
        run,
        training,
        train_ds,
        validation_data=val_ds,
        batches=feats.num_batches(len(run.train), cfg.batch_size),
        start=0.0,
        end=0.95,
    )
    return monitor, probabilities(_predict_batches(model, val_images)), before


def _train_scratch(run: _Run):
    cfg = run.cfg
    aug_cfg = cfg.augmentation
    fit_images = None
    if aug_cfg.featurewise_center or aug_cfg.featurewise_std_normalization:
        fit_images = make_dataset(run.train, cfg.image_size, 64, with_labels=False)
    standardization = build_standardization(aug_cfg, fit_images, default_rescale=1.0 / 255)
    model = build_scratch_model(cfg.image_size, run.n_classes, standardization)
    monitor, probs, _ = _image_fit(run, model, build_random_augmentation(aug_cfg, seed=cfg.seed))
    return model, monitor, probs


class _PrefixTrainer(keras.Model):
    """Trains ``net`` (unfrozen blocks + head, on frozen-prefix outputs) from raw images.

    ``train_step`` runs augmentation and the frozen prefix (inference mode, no gradient)
    on each image batch, then a normal step of ``net`` on the result; ``call`` and
    therefore validation and prediction take prefix outputs directly, so validation
    can run on prefix outputs computed once per job.
    """

    def __init__(self, frozen: keras.Model, net: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.frozen = frozen
        self.net = net

    def call(self, inputs, training=False):
        return self.net(inputs, training=training)

    def train_step(self, data):
        images, y = data
        prefix = tf.stop_gradient(self.frozen(images, training=True))  # augmentation on
        return super().train_step((prefix, y))


@dataclass
class _Split:
    prefix: keras.Model  # raw images -> preprocess -> frozen blocks (inference)
    net: keras.Model  # prefix outputs -> trainable blocks -> head


def _split_frozen_prefix(run: _Run, preprocess, base, head) -> _Split | None:
    """Cut a linear base (VGG16) before its first trainable layer, or None.

    The frozen prefix's outputs do not change during fine-tuning: validation needs them
    once per job instead of once per epoch, and without random augmentation training
    needs them once too. The cut shares layers with ``base``, so training ``net`` trains
    the saved model's own weights.
    """
    cfg = run.cfg
    if cfg.backbone != "vgg16":  # residual graphs cannot be cut at a single layer
        return None
    layers = base.layers
    first = next((i for i, layer in enumerate(layers) if layer.trainable and layer.weights), None)
    if first is None or first < 2:
        return None
    cut = layers[first - 1]
    n_values = int(np.prod(cut.output.shape[1:]))
    if (len(run.train) + len(run.val)) * n_values * 4 > PREFIX_MEMORY_BUDGET:
        return None
    prefix_base = keras.Model(base.inputs, cut.output, name="frozen_prefix")
    image = keras.Input((*cfg.image_size, 3), name="image")
    prefix = keras.Model(image, prefix_base(preprocess(image), training=False), name="prefix")
    features = keras.Input(cut.output.shape[1:], name="prefix_features")
    x = features
    for layer in layers[first:]:
        x = layer(x)
    net = keras.Model(features, head(x), name="trainable")
    return _Split(prefix=prefix, net=net)


def _prefix_fit(run: _Run, split: _Split, augmentation):
    """``_image_fit`` for a base cut at its frozen prefix (same return values, baseline on)."""
    cfg = run.cfg
    started = time.perf_counter()
    val_images = make_dataset(run.val, cfg.image_size, EXTRACTION_BATCH, with_labels=False)
    val_prefix = feats.extract_features(split.prefix, val_images, should_stop=run.should_stop)
    chunks = [val_prefix[i : i + 64] for i in range(0, len(val_prefix), 64)]
    before = probabilities(_predict_batches(split.net, chunks))
    batches = feats.num_batches(len(run.train), cfg.batch_size)
    if augmentation is not None:
        image = keras.Input((*cfg.image_size, 3), name="image")
        frozen = keras.Model(image, split.prefix(augmentation(image)), name="augment_prefix")
        model = _PrefixTrainer(frozen, split.net, name="prefix_trainer")
        x, y = (
            make_dataset(run.train, cfg.image_size, cfg.batch_size, shuffle=True, seed=cfg.seed, binary=run.binary),
            None,
        )
    else:
        train_images = make_dataset(run.train, cfg.image_size, EXTRACTION_BATCH, with_labels=False)
        model = split.net
        x, y = feats.extract_features(split.prefix, train_images, should_stop=run.should_stop), run.targets(run.train)
    run.timings["frozen_prefix_s"] = time.perf_counter() - started
    compile_model(model, cfg, run.n_classes)
    monitor = _fit(
        run, model, x, y, validation_data=(val_prefix, run.targets(run.val)), batches=batches, start=0.0, end=0.95
    )
    return monitor, probabilities(_predict_batches(split.net, chunks)), before


def _train_finetune(run: _Run, base_model_dir: Path | None):
    cfg = run.cfg
    needs = "fine-tuning needs a trained bottleneck head: run a bottleneck experiment first and fine-tune from it"
    info_path = Path(base_model_dir) / "model.json" if base_model_dir else None
    if info_path is None or not info_path.is_file():
        raise MLError(f"{needs} (no trained model found)")
    info = json.loads(info_path.read_text())
    if info.get("mode") not in ("bottleneck", "finetune"):
        raise MLError(f"{needs} (the base experiment is a {info.get('mode')} model)")
    for key, want in (
        ("backbone", cfg.backbone),
        ("class_names", run.class_names),
        ("image_size", list(cfg.image_size)),
    ):
        if info.get(key) != want:
            raise MLError(
                f"{needs} with the same {key.replace('_', ' ')} (base has {info.get(key)}, this experiment {want})"
            )
    run.base_info = info
    loaded = load_verified_model(Path(base_model_dir), info.get("sha256"))
    preprocess = loaded.get_layer("preprocess")
    base = loaded.get_layer(cfg.backbone)
    head = loaded.get_layer("head")
    set_trainable_blocks(base, cfg.backbone, cfg.unfreeze)
    augmentation = build_random_augmentation(cfg.augmentation, seed=cfg.seed)
    model = build_transfer_model(cfg.image_size, preprocess, base, head)
    split = _split_frozen_prefix(run, preprocess, base, head)
    if split is None:
        monitor, probs, before = _image_fit(run, model, augmentation, baseline=True)  # compiles after trainable changed
    else:
        monitor, probs, before = _prefix_fit(run, split, augmentation)
    return model, monitor, probs, before


def _round_trip_sample(split: Split, k: int) -> list[int]:
    """Up to ``k`` indices of ``split``, taken from each class in turn (deterministic)."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(split.labels):
        by_class.setdefault(int(label), []).append(i)
    picked, queues = [], [list(v) for _, v in sorted(by_class.items())]
    while len(picked) < k and any(queues):
        for queue in queues:
            if queue and len(picked) < k:
                picked.append(queue.pop(0))
    return picked


def _round_trip(run: _Run, model, model_dir: Path, digest: str) -> dict:
    """Load the saved model in a fresh process as serving does; MLError unless it answers
    as the in-memory model on a few validation images."""
    picked = _round_trip_sample(run.val, ROUND_TRIP_IMAGES)
    paths = [Path(run.val.paths[i]) for i in picked]
    batch = model_inputs([p.read_bytes() for p in paths], run.cfg.image_size).astype(np.float32)
    expected = probabilities(np.asarray(model(batch, training=False)))
    return check_round_trip(model_dir, digest, paths, expected).as_dict()


def _model_info(
    run: _Run, monitor: _Monitor, evaluation: dict, digest: str, base_evaluation: dict | None = None
) -> dict:
    cfg = run.cfg
    best = monitor.history[monitor.best_epoch - 1] if monitor.best_epoch else {}
    in_model = {
        "vgg16": "vgg16 preprocess_input (caffe: RGB->BGR, ImageNet mean subtracted, no scaling)",
        "mobilenet_v2": "mobilenet_v2 preprocess_input (scaled to [-1, 1])",
    }
    return {
        "format_version": MODEL_FORMAT_VERSION,
        "class_names": run.class_names,
        "image_size": list(cfg.image_size),
        "mode": cfg.mode,
        "backbone": None if cfg.mode == "scratch" else cfg.backbone,
        "weights": None if cfg.mode == "scratch" else (run.base_info or {}).get("weights", cfg.weights),
        "output": "sigmoid" if run.binary else "softmax",
        "preprocessing": {
            "decoder": DECODER_VERSION,
            "resize": RESIZE_RULE,
            "in_model": "rescale/standardisation (random augmentation is training-only, not saved)"
            if cfg.mode == "scratch"
            else in_model[cfg.backbone],
        },
        "metrics": {
            "best_epoch": monitor.best_epoch,
            "best_val_loss": best.get("val_loss"),
            "best_val_accuracy": best.get("val_accuracy"),
            "accuracy": evaluation["accuracy"],
            "base_accuracy": None if base_evaluation is None else base_evaluation["accuracy"],
        },
        "config": config_to_dict(cfg),
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "created_at": datetime.now(UTC).isoformat(),
        "sha256": digest,
    }


def train(
    *,
    config: ExperimentConfig,
    dataset_dir: Path,
    output_dir: Path,
    cache_dir: Path,
    dataset_hash: str,
    weights_dir: Path | None = None,
    base_model_dir: Path | None = None,
    on_progress: Callable[[Progress], None] = lambda p: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainingResult:
    """Train ``config`` on ``dataset_dir`` and save the model into ``output_dir``.

    Raises MLError subclasses for user-actionable failures (Cancelled when
    ``should_stop()`` returns True, polled before every batch). Nothing is left under
    ``output_dir`` unless training succeeds.
    """
    dataset_dir, output_dir = Path(dataset_dir), Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise MLError(f"the model folder {output_dir} already exists and is not empty")
    class_names = list_classes(dataset_dir)
    run = _Run(
        config,
        dataset_dir,
        class_names,
        list_split(dataset_dir, "train", class_names),
        list_split(dataset_dir, "validation", class_names),
        on_progress,
        should_stop,
    )
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.parent / f".{output_dir.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        before = None
        if config.mode == "bottleneck":
            model, monitor, probs = _train_bottleneck(run, weights_dir, cache_dir, dataset_hash)
        elif config.mode == "finetune":
            model, monitor, probs, before = _train_finetune(run, base_model_dir)
        else:
            model, monitor, probs = _train_scratch(run)
        on_progress(Progress("evaluating", len(monitor.history), config.epochs, 0, 0, 0.97))
        evaluation = evaluate(probs, run.val.labels, class_names, run.val.relative)
        base_evaluation = None
        if before is not None:
            base_evaluation = evaluate(before, run.val.labels, class_names, run.val.relative)
            base_evaluation.pop("confident_mistakes", None)
        model_path = tmp / "model.keras"
        model.save(model_path)
        digest = file_sha256(model_path)
        info = _model_info(run, monitor, evaluation, digest, base_evaluation)
        (tmp / "model.json").write_text(json.dumps(info, indent=2))
        on_progress(Progress("verifying", len(monitor.history), config.epochs, 0, 0, 0.98))
        round_trip = _round_trip(run, model, tmp, digest)
        if output_dir.exists():
            output_dir.rmdir()  # empty (checked above); rename cannot replace it portably
        tmp.rename(output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    on_progress(Progress("evaluating", len(monitor.history), config.epochs, 0, 0, 1.0))
    return TrainingResult(
        class_names=class_names,
        history=monitor.history,
        best_epoch=monitor.best_epoch,
        evaluation=evaluation,
        timings=dict(run.timings),
        model_dir=output_dir,
        model_bytes=(output_dir / "model.keras").stat().st_size,
        sha256=digest,
        model_info=info,
        base_evaluation=base_evaluation,
        round_trip=round_trip,
    )
