"""Likely label errors: out-of-sample probabilities, ranked by confident learning (docs/decisions.md,
"Likely label errors").

    out_of_sample_probabilities(features, labels) -> (N, C) probabilities, each row from a model that
        did not see that image: stratified k-fold over a logistic regression on standardised features
    rank_label_issues(probabilities, labels) -> [LabelIssue], most likely mislabelled first (cleanlab)
    dataset_label_errors(...) -> LabelErrors for a dataset folder: its cached bottleneck features
        (extracted once with the same key as bottleneck training, so a trained experiment's cache is reused)

scikit-learn and cleanlab are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.ml.errors import DatasetError

# Five folds, as cleanlab's own estimate_cv_predicted_probabilities uses; fewer when the smallest
# class has fewer images than that (StratifiedKFold needs one image per class per fold).
FOLDS = 5
# A strong L2 penalty keeps the fit stable when features outnumber images (VGG16's 512 x 4 x 4 at
# 150 px is 8,192 features for a few hundred images); measured on the test set in docs/decisions.md.
REGULARISATION_C = 0.1
MAX_ITER = 500


@dataclass(frozen=True)
class LabelIssue:
    index: int  # into the features / labels given
    given: int
    suggested: int  # the class the out-of-sample model finds most likely
    confidence: float  # the out-of-sample probability of the given label (low: likely wrong)
    suggested_confidence: float


@dataclass(frozen=True)
class LabelErrors:
    """The ranked issues of a dataset's train and validation images, with what they were computed on."""

    class_names: list[str]
    issues: list[dict]  # {path, split, given, suggested, confidence, suggested_confidence}, ranked
    images: int
    folds: int
    cache_hit: bool


def folds_for(labels: np.ndarray) -> int:
    """FOLDS, or the size of the smallest class when it is smaller; DatasetError below 2."""
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min()) if counts.any() else 0
    if (counts > 0).sum() < 2:
        raise DatasetError("finding label errors needs images of at least 2 classes")
    if smallest < 2:
        raise DatasetError("finding label errors needs at least 2 images in every class (one per fold)")
    return min(FOLDS, smallest)


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """(N, C) predicted probabilities where row i comes from a model fitted without image i.

    Stratified k-fold; in each fold the standardisation is fitted on the training part only, so the
    held-out images influence nothing of the model that scores them.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    y = np.asarray(labels, dtype=np.int64)
    n_classes = int(y.max()) + 1
    probabilities = np.zeros((len(y), n_classes), dtype=np.float64)
    folds = StratifiedKFold(n_splits=folds_for(y), shuffle=True, random_state=seed)
    for train, held_out in folds.split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=REGULARISATION_C, max_iter=MAX_ITER))
        model.fit(x[train], y[train])
        probabilities[np.ix_(held_out, model.classes_)] = model.predict_proba(x[held_out])
    return probabilities


def rank_label_issues(probabilities: np.ndarray, labels: np.ndarray) -> list[LabelIssue]:
    """The images cleanlab's confident learning finds mislabelled, lowest confidence in the given label first."""
    from cleanlab.filter import find_label_issues

    labels = np.asarray(labels, dtype=np.int64)
    ranked = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence")
    suggested = probabilities.argmax(axis=1)
    return [
        LabelIssue(
            index=int(i),
            given=int(labels[i]),
            suggested=int(suggested[i]),
            confidence=float(probabilities[i, labels[i]]),
            suggested_confidence=float(probabilities[i, suggested[i]]),
        )
        for i in ranked
    ]


def dataset_label_errors(
    *,
    dataset_dir: Path,
    cache_dir: Path,
    dataset_hash: str,
    backbone: str,
    weights: str,
    image_size: tuple[int, int],
    seed: int,
    weights_dir: Path | None = None,
    on_progress: Callable[[float], None] = lambda fraction: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> LabelErrors:
    """Rank the likely label errors among ``dataset_dir``'s train and validation images.

    The features are the bottleneck cache entry of (dataset, backbone, weights, size): a bottleneck
    experiment with these settings has stored it already, otherwise it is extracted and stored here
    under the same key and meta, so that training reuses it.
    """
    import keras

    from workers.ml import features as feats
    from workers.ml.backbones import build_base, build_preprocess, resolve_weights, weights_identity
    from workers.ml.data import list_classes, list_split, make_dataset

    class_names = list_classes(dataset_dir)
    train = list_split(dataset_dir, "train", class_names)
    val = list_split(dataset_dir, "validation", class_names)
    weights_path = resolve_weights(backbone, weights, weights_dir, image_size)
    key = feats.cache_key(
        dataset_hash=dataset_hash,
        backbone=backbone,
        weights_identity=weights_identity(weights_path, seed),
        image_size=image_size,
    )
    meta = {"class_names": class_names, "train": train.relative, "validation": val.relative}

    def extractor():
        base = build_base(backbone, image_size, weights_path, seed)
        return keras.Sequential([keras.Input((*image_size, 3)), build_preprocess(backbone), base])

    fs = feats.load_or_extract(
        key=key,
        cache_dir=cache_dir,
        meta=meta,
        build_model=extractor,
        train_ds=make_dataset(train, image_size, feats.EXTRACTION_BATCH, with_labels=False),
        val_ds=make_dataset(val, image_size, feats.EXTRACTION_BATCH, with_labels=False),
        counts=(len(train), len(val)),
        on_batch=lambda done, total: on_progress(0.8 * done / total),
        should_stop=should_stop,
    )
    on_progress(0.8)
    x = np.concatenate([fs.train.reshape(len(train), -1), fs.validation.reshape(len(val), -1)])
    y = np.concatenate([train.labels, val.labels])
    paths = train.relative + val.relative
    probabilities = out_of_sample_probabilities(x, y, seed=seed)
    issues = rank_label_issues(probabilities, y)
    on_progress(1.0)
    return LabelErrors(
        class_names=class_names,
        issues=[
            {
                "path": paths[issue.index],
                "split": paths[issue.index].split("/", 1)[0],
                "given": class_names[issue.given],
                "suggested": class_names[issue.suggested],
                "confidence": round(issue.confidence, 4),
                "suggested_confidence": round(issue.suggested_confidence, 4),
            }
            for issue in issues
        ],
        images=len(y),
        folds=folds_for(y),
        cache_hit=fs.cache_hit,
    )
