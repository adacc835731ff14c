"""Training entry point: bottleneck, finetune and scratch modes.

Paths and dataclasses in, a ``TrainingResult`` out; progress and cancellation go through
the callables the caller passes. The model directory is written to a temporary sibling,
loaded back in a fresh process the way serving loads it (``roundtrip``), and only then
renamed into place, so ``output_dir`` holds a complete, servable model or nothing at all.
"""

from __future__ import annotations

import hashlib
import json
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

from workers.ml import checkpoint
from workers.ml.calibration import apply_temperature, expected_calibration_error, fit_temperature, reliability_diagram
from workers.ml.config import ExperimentConfig, config_to_dict
from workers.ml.data import RESIZE_RULE, Split, has_split, list_classes, list_split, make_dataset
from workers.ml.device import use_device
from workers.ml.errors import MLError
from workers.ml.evaluate import evaluate
from workers.ml.features import EXTRACTION_BATCH
from workers.ml.fit import Monitor, Progress, Run, predict_batches
from workers.ml.hashing import file_sha256
from workers.ml.images import DECODER_VERSION
from workers.ml.layers import TemperatureScaling
from workers.ml.models import probabilities
from workers.ml.modes.bottleneck import train_bottleneck
from workers.ml.modes.finetune import train_finetune
from workers.ml.modes.scratch import train_scratch
from workers.ml.predict import model_inputs
from workers.ml.registry import SPECS
from workers.ml.roundtrip import Verifier, check_round_trip
from workers.ml.stats import evaluation_summary, threshold_curve
from workers.ml.summary import model_summary

MODEL_FORMAT_VERSION = 2  # 2: decoded by workers.ml.images, no augmentation layers inside
# Validation images the saved model is checked on in a fresh process before success.
ROUND_TRIP_IMAGES = 8


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
    # [[confidence, correct], ...] on validation, most confident first (stats.threshold_curve).
    threshold_curve: list = field(default_factory=list)
    # Each scored image's true and predicted class, and a digest of which images they were: two
    # models scored on the same images can be compared pairwise (stats.paired_bootstrap_difference).
    scored: dict = field(default_factory=dict)


def _evaluation(probs: np.ndarray, split: Split, run: Run, *, uncalibrated: np.ndarray | None = None) -> dict:
    """The metrics of ``probs`` on ``split`` with their 95% intervals, labelled with the split they
    were measured on; with ``uncalibrated``, the calibration error before and after."""
    split_name = "test" if split is run.test else "validation"
    evaluation = evaluate(probs, split.labels, run.class_names, split.relative)
    evaluation.update(evaluation_summary(probs, split.labels, run.class_names, split=split_name, seed=run.cfg.seed))
    if uncalibrated is not None:
        evaluation["calibration"] = {
            "ece_before": expected_calibration_error(uncalibrated, split.labels),
            "ece_after": expected_calibration_error(probs, split.labels),
            "reliability_before": reliability_diagram(uncalibrated, split.labels),
            "reliability_after": reliability_diagram(probs, split.labels),
        }
    return evaluation


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


def _round_trip(run: Run, model, model_dir: Path, digest: str, verifier: Verifier) -> dict:
    """Load the saved model in a fresh process as serving does; MLError unless it answers
    as the in-memory model on a few validation images."""
    picked = _round_trip_sample(run.val, ROUND_TRIP_IMAGES)
    paths = [Path(run.val.paths[i]) for i in picked]
    batch = model_inputs([p.read_bytes() for p in paths], run.cfg.image_size).astype(np.float32)

    def expected() -> np.ndarray:  # computed while the verifier loads the file and predicts
        return probabilities(np.asarray(model(batch, training=False)))

    return check_round_trip(model_dir, digest, paths, expected, verifier=verifier).as_dict()


def _model_info(run: Run, monitor: Monitor, evaluation: dict, digest: str, base_evaluation: dict | None = None) -> dict:
    cfg = run.cfg
    best = monitor.history[monitor.best_epoch - 1] if monitor.best_epoch else {}
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
            else SPECS[cfg.backbone].preprocessing,
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


def _fingerprint(config: ExperimentConfig, dataset_hash: str, class_names: list[str], base_model_dir) -> str:
    base = None
    if base_model_dir is not None and (Path(base_model_dir) / "model.json").is_file():
        base = json.loads((Path(base_model_dir) / "model.json").read_text()).get("sha256")
    return checkpoint.fingerprint(config_to_dict(config), dataset_hash, class_names, base)


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
    checkpoint_dir: Path | None = None,
    on_resume: Callable[[int, list[dict]], None] = lambda epoch, history: None,
    precision_cache: Path | None = None,
    verifier: Verifier | None = None,
) -> TrainingResult:
    """Train ``config`` on ``dataset_dir`` and save the model into ``output_dir``.

    Raises MLError subclasses for user-actionable failures (Cancelled when
    ``should_stop()`` returns True, polled before every batch). Nothing is left under
    ``output_dir`` unless training succeeds. With ``checkpoint_dir``, a checkpoint is written
    there after every epoch, and a run that finds one of the same config and data continues
    after its epoch (``on_resume(epochs_done, history)`` is called first); the caller
    removes the folder once the job has ended. ``precision_cache`` is the JSON file where this
    host keeps its measured precision choices (workers/ml/precision.py); None measures every time.
    ``verifier`` is a waiting process that loads the saved model back (a warm worker keeps one for
    many runs); None starts one for this run and ends it after.
    """
    dataset_dir, output_dir = Path(dataset_dir), Path(output_dir)
    use_device(config.device)  # before TensorFlow touches a device
    if output_dir.exists() and any(output_dir.iterdir()):
        raise MLError(f"the model folder {output_dir} already exists and is not empty")
    class_names = list_classes(dataset_dir)
    run = Run(
        config,
        dataset_dir,
        class_names,
        list_split(dataset_dir, "train", class_names),
        list_split(dataset_dir, "validation", class_names),
        on_progress,
        should_stop,
        test=list_split(dataset_dir, "test", class_names) if has_split(dataset_dir, "test") else None,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
        fingerprint=_fingerprint(config, dataset_hash, class_names, base_model_dir),
        on_resume=on_resume,
    )
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.parent / f".{output_dir.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    # The process that will load the saved model back, importing TensorFlow while this one trains.
    own = Verifier() if verifier is None else None
    verifier = verifier or own
    try:
        before = test_probs = None
        if config.mode == "bottleneck":
            model, monitor, probs, test_probs = train_bottleneck(
                run, weights_dir, cache_dir, dataset_hash, precision_cache
            )
        elif config.mode == "finetune":
            model, monitor, probs, before = train_finetune(run, base_model_dir)
        else:
            model, monitor, probs = train_scratch(run)
        on_progress(Progress("evaluating", len(monitor.history), config.epochs, 0, 0, 0.97))
        finishing = time.perf_counter()
        scored = run.scored
        # Temperature scaling, fitted on validation, becomes the saved model's last layer.
        temperature = fit_temperature(probs, run.val.labels)
        trained = model
        model = keras.Model(trained.inputs[0], TemperatureScaling(temperature, name="calibration")(trained.outputs[0]))
        raw = probs
        if run.test is not None:  # the model as it will be saved, once, on images nothing was chosen on
            if test_probs is None:  # fine-tune and scratch: the whole model over the test images
                test_images = make_dataset(run.test, config.image_size, EXTRACTION_BATCH, with_labels=False)
                test_probs = probabilities(predict_batches(trained, test_images))
            # Bottleneck: its head on the float32 base's stored test features, the same network in two
            # steps, with no image through the base on a cache hit (docs/decisions.md, "Test features
            # beside the entry").
            raw = test_probs
        calibrated = apply_temperature(raw, temperature)
        evaluation = _evaluation(calibrated, scored, run, uncalibrated=raw)
        evaluation["calibration"]["temperature"] = temperature
        # Validation (never test) is where a confidence threshold may be chosen.
        curve = threshold_curve(apply_temperature(probs, temperature), run.val.labels)
        images = hashlib.sha256("\n".join(scored.relative).encode()).hexdigest()
        scored_predictions = {
            "split": evaluation["split"],
            "images": images,
            "truth": [int(v) for v in scored.labels],
            "predicted": [int(v) for v in raw.argmax(axis=1)],
            # The pages' galleries: each image's file and calibrated probabilities, rounded (4 places
            # keep every shown percentage and the order of any two images that differ visibly).
            "paths": list(scored.relative),
            "probabilities": np.round(calibrated, 4).tolist(),
        }
        base_evaluation = None
        if before is not None:
            base_evaluation = _evaluation(before, scored, run)
            base_evaluation.pop("confident_mistakes", None)
        model_path = tmp / "model.keras"
        saving = time.perf_counter()
        model.save(model_path)
        digest = file_sha256(model_path)
        info = _model_info(run, monitor, evaluation, digest, base_evaluation)
        # As model.summary() shows it; in bottleneck mode the backbone only computed the cached features.
        summary = model_summary(model, backbone_frozen=config.mode == "bottleneck")
        info["summary"] = {**summary, "file_bytes": model_path.stat().st_size}
        (tmp / "model.json").write_text(json.dumps(info, indent=2))
        on_progress(Progress("verifying", len(monitor.history), config.epochs, 0, 0, 0.98))
        verifying = time.perf_counter()
        round_trip = _round_trip(run, model, tmp, digest, verifier)
        # Where the time after training went: scoring and calibrating, writing the file, loading it back.
        run.timings.update(
            evaluation_s=round(saving - finishing, 3),
            save_s=round(verifying - saving, 3),
            round_trip_s=round(time.perf_counter() - verifying, 3),
        )
        if output_dir.exists():
            output_dir.rmdir()  # empty (checked above); rename cannot replace it portably
        tmp.rename(output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if own is not None:
            own.close()
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
        threshold_curve=curve,
        scored=scored_predictions,
    )
