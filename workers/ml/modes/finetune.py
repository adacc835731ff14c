"""Fine-tune mode: continue a trained bottleneck model with its last blocks unfrozen.

A linear base (VGG16) is cut before its first trainable layer: the frozen prefix's outputs do
not change during fine-tuning, so they are computed once per job for validation (and for
training too when there is no random augmentation).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from workers.ml import features as feats
from workers.ml.augment import build_random_augmentation
from workers.ml.backbones import set_trainable_blocks
from workers.ml.data import make_dataset
from workers.ml.errors import MLError
from workers.ml.features import EXTRACTION_BATCH
from workers.ml.fit import Run, fit, image_fit, predict_batches
from workers.ml.models import build_transfer_model, compile_model, probabilities
from workers.ml.predict import load_verified_model
from workers.ml.registry import SPECS

# Fine-tuning keeps the frozen prefix's outputs in memory up to this size (both splits).
PREFIX_MEMORY_BUDGET = 1 << 30


class PrefixTrainer(keras.Model):
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
        images, *rest = data  # (x, y) or, with class weights, (x, y, sample_weight)
        prefix = tf.stop_gradient(self.frozen(images, training=True))  # augmentation on
        return super().train_step((prefix, *rest))


@dataclass
class FrozenSplit:
    prefix: keras.Model  # raw images -> preprocess -> frozen blocks (inference)
    net: keras.Model  # prefix outputs -> trainable blocks -> head


def split_frozen_prefix(run: Run, preprocess, base, head) -> FrozenSplit | None:
    """Cut a linear base (VGG16) before its first trainable layer, or None.

    The frozen prefix's outputs do not change during fine-tuning: validation needs them
    once per job instead of once per epoch, and without random augmentation training
    needs them once too. The cut shares layers with ``base``, so training ``net`` trains
    the saved model's own weights.
    """
    cfg = run.cfg
    if not SPECS[cfg.backbone].linear:  # residual graphs cannot be cut at a single layer
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
    return FrozenSplit(prefix=prefix, net=net)


def prefix_fit(run: Run, split: FrozenSplit, augmentation):
    """``image_fit`` for a base cut at its frozen prefix (same return values, baseline on)."""
    cfg = run.cfg
    started = time.perf_counter()
    val_images = make_dataset(run.val, cfg.image_size, EXTRACTION_BATCH, with_labels=False)
    val_prefix = feats.extract_features(split.prefix, val_images, should_stop=run.should_stop)
    chunks = [val_prefix[i : i + 64] for i in range(0, len(val_prefix), 64)]
    before = probabilities(predict_batches(split.net, chunks))
    batches = feats.num_batches(len(run.train), cfg.batch_size)
    if augmentation is not None:
        image = keras.Input((*cfg.image_size, 3), name="image")
        frozen = keras.Model(image, split.prefix(augmentation(image)), name="augment_prefix")
        model = PrefixTrainer(frozen, split.net, name="prefix_trainer")
        x, y = run.train, None
    else:
        train_images = make_dataset(run.train, cfg.image_size, EXTRACTION_BATCH, with_labels=False)
        model = split.net
        x, y = feats.extract_features(split.prefix, train_images, should_stop=run.should_stop), run.targets(run.train)
    run.timings["frozen_prefix_s"] = time.perf_counter() - started
    compile_model(model, cfg, run.n_classes)
    monitor = fit(
        run, model, x, y, validation_data=(val_prefix, run.targets(run.val)), batches=batches, start=0.0, end=0.95
    )
    return monitor, probabilities(predict_batches(split.net, chunks)), before


def train_finetune(run: Run, base_model_dir: Path | None):
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
    before_test = None
    if run.test is not None:  # the base, scored on the images the fine-tune will be scored on
        test_images = make_dataset(run.test, cfg.image_size, EXTRACTION_BATCH, with_labels=False)
        before_test = probabilities(predict_batches(model, test_images))
    split = split_frozen_prefix(run, preprocess, base, head)
    if split is None:
        monitor, probs, before = image_fit(run, model, augmentation, baseline=True)  # compiles after trainable changed
    else:
        monitor, probs, before = prefix_fit(run, split, augmentation)
    if before_test is not None:
        before = before_test
    return model, monitor, probs, before
