"""Scratch mode: the post's small convnet, trained on images with augmentation."""

from __future__ import annotations

from workers.ml.augment import build_random_augmentation, build_standardization
from workers.ml.data import make_dataset
from workers.ml.fit import Run, image_fit
from workers.ml.models import build_scratch_model


def train_scratch(run: Run):
    cfg = run.cfg
    aug_cfg = cfg.augmentation
    fit_images = None
    if aug_cfg.featurewise_center or aug_cfg.featurewise_std_normalization:
        fit_images = make_dataset(run.train, cfg.image_size, 64, with_labels=False)
    standardization = build_standardization(aug_cfg, fit_images, default_rescale=1.0 / 255)
    model = build_scratch_model(cfg.image_size, run.n_classes, standardization)
    monitor, probs, _ = image_fit(run, model, build_random_augmentation(aug_cfg, seed=cfg.seed))
    return model, monitor, probs
