"""Bottleneck mode: a frozen base turns every image into features once (cached), a head trains on them."""

from __future__ import annotations

import keras

from workers.ml import features as feats
from workers.ml.backbones import build_base, build_preprocess, resolve_weights, weights_identity
from workers.ml.data import make_dataset
from workers.ml.fit import EXTRACTION_BATCH, HEAD_STEPS_PER_EXECUTION, Progress, Run, fit, predict_batches
from workers.ml.models import build_head, build_transfer_model, compile_model, probabilities


def train_bottleneck(run: Run, weights_dir, cache_dir, dataset_hash):
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
    extracted = 0 if fs.cache_hit else len(run.train) + len(run.val)
    run.timings.update(feature_extraction_s=fs.extraction_s, cache_hit=fs.cache_hit, extracted_images=extracted)

    keras.utils.set_random_seed(cfg.seed)  # same head init and shuffling, hit or miss
    head = build_head(fs.train.shape[1:], run.n_classes, cfg.head, fs.train)
    compile_model(head, cfg, run.n_classes, steps_per_execution=HEAD_STEPS_PER_EXECUTION)
    monitor = fit(
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
    probs = probabilities(predict_batches(head, chunks))
    return build_transfer_model(cfg.image_size, preprocess, base, head), monitor, probs
