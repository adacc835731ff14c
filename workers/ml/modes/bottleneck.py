"""Bottleneck mode: a frozen base turns every image into features once (cached), a head trains on them."""

from __future__ import annotations

import time
from pathlib import Path

import keras

from workers.ml import features as feats
from workers.ml import precision
from workers.ml.backbones import build_base, build_preprocess, resolve_weights, weights_identity
from workers.ml.data import make_dataset
from workers.ml.fit import Progress, Run, fit, head_steps_per_execution, predict_batches
from workers.ml.models import build_head, build_transfer_model, compile_model, probabilities


def _cached(run: Run, cache_dir: Path, keys: dict, meta: dict, earlier: precision.Choice | None):
    """A stored entry this run can use, with the precision it was computed in; (None, None) if none.

    A named precision takes only its own entry; auto takes any, its host's measured choice first:
    reading stored features beats any extraction.
    """
    wanted = run.cfg.precision
    order = [wanted] if wanted != "auto" else ([earlier.used] if earlier else []) + ["bfloat16", "float32"]
    for name in dict.fromkeys(order):
        found = feats.read_entry(Path(cache_dir) / keys[name], meta)
        if found is not None:
            return found, name
    return None, None


def train_bottleneck(run: Run, weights_dir, cache_dir, dataset_hash, precision_cache: Path | None = None):
    """Train a head on the frozen base's cached features; (saved model, monitor, validation
    probabilities, test probabilities or None). No image goes through the base on a full cache hit."""
    cfg = run.cfg
    weights_path = resolve_weights(cfg.backbone, cfg.weights, weights_dir, cfg.image_size)
    # The base is built even on a cache hit: the saved model must contain it.
    building = time.perf_counter()
    base = build_base(cfg.backbone, cfg.image_size, weights_path, cfg.seed)
    run.timings["base_build_s"] = round(time.perf_counter() - building, 3)
    preprocess = build_preprocess(cfg.backbone)
    identity = weights_identity(weights_path, cfg.seed)
    keys = {
        name: feats.cache_key(
            dataset_hash=dataset_hash,
            backbone=cfg.backbone,
            weights_identity=identity,
            image_size=cfg.image_size,
            precision=name,
        )
        for name in precision.KERAS_POLICIES
    }
    meta = {"class_names": run.class_names, "train": run.train.relative, "validation": run.val.relative}
    measured_key = precision.measurement_key(cfg.backbone, cfg.image_size, identity)
    earlier = precision.stored(precision_cache, measured_key) if cfg.precision == "auto" else None

    fs, used = _cached(run, cache_dir, keys, meta, earlier)
    counts = (len(run.train), len(run.val), len(run.test) if run.test is not None else 0)
    batches = tuple(feats.num_batches(n, feats.EXTRACTION_BATCH) for n in counts)

    # The test split's features are stored beside the entry's (docs/decisions.md, "Test features
    # beside the entry"); an entry written before they were may lack them.
    def test_file(name):
        return feats.test_features_path(Path(cache_dir) / keys[name], run.class_names, run.test.relative)

    test_features = None
    if fs is not None and run.test is not None:
        test_features = feats.read_test_features(test_file(used), counts[2])
    test_missing = run.test is not None and test_features is None
    # One progress bar over every batch this run extracts.
    to_extract = (0 if fs is not None else batches[0] + batches[1]) + (batches[2] if test_missing else 0)

    def report(done, _total=None):
        run.on_progress(Progress("extracting", 0, cfg.epochs, done, to_extract, 0.5 * done / to_extract))

    # The float32 network the saved model holds, which computes validation and test features;
    # unused on a full hit.
    exact = keras.Sequential([keras.Input((*cfg.image_size, 3)), preprocess, base]) if to_extract else None
    if fs is not None:
        choice = precision.Choice(cfg.precision, used, "cached features")
        if earlier is not None:
            choice.images_per_s, choice.relative_error = earlier.images_per_s, earlier.relative_error
    else:

        def extractor():
            return keras.Sequential(
                [
                    keras.Input((*cfg.image_size, 3)),
                    build_preprocess(cfg.backbone),
                    build_base(cfg.backbone, cfg.image_size, weights_path, cfg.seed),
                ]
            )

        low = None  # the bfloat16 copy, once built
        if cfg.precision != "auto":
            choice = precision.Choice(cfg.precision, cfg.precision, "asked")
        elif earlier is not None:
            choice = earlier
        else:
            low = precision.low_precision_copy(exact, extractor, "bfloat16")
            choice = precision.choose_by_measuring(exact, low, cfg.image_size, precision_cache, measured_key)
        if choice.used == "float32":
            train_model = exact
        else:
            train_model = low or precision.low_precision_copy(exact, extractor, choice.used)
        used = choice.used
        fs = feats.extract_entry(
            Path(cache_dir) / keys[used],
            meta,
            train_model=train_model,
            validation_model=exact,
            train_ds=make_dataset(run.train, cfg.image_size, feats.EXTRACTION_BATCH, with_labels=False),
            val_ds=make_dataset(run.val, cfg.image_size, feats.EXTRACTION_BATCH, with_labels=False),
            counts=counts[:2],
            batches=batches[:2],
            on_batch=report,
            should_stop=run.should_stop,
        )
    test_extraction_s = 0.0
    if test_missing:
        # Only the float32 base computes them, whatever the entry's precision (docs/decisions.md,
        # "Precision by measurement": lower precision is for training features only).
        started = time.perf_counter()
        already = 0 if fs.cache_hit else batches[0] + batches[1]
        test_features = feats.extract_test_features(
            test_file(used),
            exact,
            make_dataset(run.test, cfg.image_size, feats.EXTRACTION_BATCH, with_labels=False),
            counts[2],
            on_batch=lambda i: report(already + i),
            should_stop=run.should_stop,
        )
        test_extraction_s = round(time.perf_counter() - started, 3)
    run.timings.update(
        feature_extraction_s=fs.extraction_s,
        cache_hit=fs.cache_hit,
        # Training and validation images, which duration estimates divide feature_extraction_s by.
        extracted_images=0 if fs.cache_hit else counts[0] + counts[1],
        extracted_test_images=counts[2] if test_missing else 0,
        test_extraction_s=test_extraction_s,
        precision=choice.as_dict(),
    )

    keras.utils.set_random_seed(cfg.seed)  # same head init and shuffling, hit or miss
    head = build_head(fs.train.shape[1:], run.n_classes, cfg.head, fs.train)
    batches = feats.num_batches(len(run.train), cfg.batch_size)
    steps = head_steps_per_execution(head, cfg.batch_size, batches)
    # The compiled model is a wrapper over the head's layers (their weights are shared): the head the
    # saved model contains stays uncompiled, so no optimizer is written into the file that serves.
    trainer = keras.Model(head.inputs, head.outputs, name="head_training")
    compile_model(trainer, cfg, run.n_classes, steps_per_execution=steps)
    run.timings["head_steps_per_execution"] = steps
    monitor = fit(
        run,
        trainer,
        fs.train,
        run.targets(run.train),
        validation_data=(fs.validation, run.targets(run.val)),
        batches=batches,
        start=0.0 if to_extract == 0 else 0.5,
        end=0.95,
    )
    probs = probabilities(predict_batches(head, _chunks(fs.validation)))
    # The saved network (preprocess -> base -> head) on the test images, computed in two steps: the
    # float32 base's stored outputs, then the head. None without a test split.
    test_probs = None if test_features is None else probabilities(predict_batches(head, _chunks(test_features)))
    return build_transfer_model(cfg.image_size, preprocess, base, head), monitor, probs, test_probs


def _chunks(rows, size: int = 256):
    """Consecutive slices of a (memory-mapped) feature array, read one at a time."""
    return (rows[i : i + size] for i in range(0, len(rows), size))
