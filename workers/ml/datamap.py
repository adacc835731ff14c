"""A map of a dataset as a trained model sees it: every image's features and probabilities, laid out in 2-D.

The features are the backbone's output (the last convolutional maps of the small convnet),
averaged over space: what the pretrained base says about an image before the head learned the
labels, so an image that looks like another class lands among that class's images whatever its
label says. The layout is PCA to at most 50 dimensions, then t-SNE (scikit-learn), both seeded:
the same model and images give the same map (docs/decisions.md, "Error analysis").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.ml.data import has_split, list_split, make_dataset
from workers.ml.errors import MLError

SPLITS = ("train", "validation", "test")
BATCH = 32
PCA_COMPONENTS = 50


@dataclass
class DataMap:
    """One entry per image of the dataset, in split, class, file order."""

    paths: list[str]  # relative to the dataset folder: <split>/<class>/<file>
    labels: list[int]  # indices into class_names
    class_names: list[str]
    probabilities: np.ndarray  # (N, n_classes), calibrated, as predict answers them
    coordinates: np.ndarray  # (N, 2)


def _feature_model(model):
    """A callable image batch -> (features (N, D), probabilities (N, C)) in one pass of ``model``."""
    import keras

    layers = list(model.layers)
    nested = [layer for layer in layers if isinstance(layer, keras.Model)]
    backbone = next(
        (m for m in nested if any("Conv" in type(inner).__name__ for inner in m.layers)),
        None,
    )
    if backbone is not None:  # a transfer model: input -> preprocess -> backbone -> head -> calibration

        def run(x):
            features = None
            for layer in layers[1:]:
                x = layer(x, training=False)
                if layer is backbone:
                    features = x
            return features, x

        return run
    convs = [layer for layer in layers if "Conv" in type(layer).__name__]
    if not convs:
        raise MLError("the model has no convolutional layer to take features from")
    both = keras.Model(model.inputs, [convs[-1].output, model.outputs[0]])
    return lambda x: both(x, training=False)


def features_and_probabilities(model, batches) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D) float32, probabilities (N, C)) of ``model`` over uint8 image batches."""
    from workers.ml.models import probabilities

    run = _feature_model(model)
    features, probs = [], []
    for batch in batches:
        maps, out = run(np.asarray(batch, np.float32))
        maps = np.asarray(maps, np.float32)
        features.append(maps.mean(axis=(1, 2)) if maps.ndim == 4 else maps.reshape(len(maps), -1))
        probs.append(probabilities(np.asarray(out)))
    if not features:
        raise MLError("the dataset has no images to map")
    return np.concatenate(features), np.concatenate(probs)


def layout(features: np.ndarray, *, seed: int) -> np.ndarray:
    """(N, 2) coordinates: standardised features, PCA to at most 50 dimensions, then t-SNE, all seeded.

    Perplexity is 30 (scikit-learn's default) or less for small sets, where t-SNE needs it below N.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 3:
        raise MLError(f"a map needs at least 3 images, the dataset has {n}")
    x = np.asarray(features, np.float64)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
    components = min(PCA_COMPONENTS, n, x.shape[1])
    reduced = PCA(n_components=components, random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
    return coords.astype(np.float32)


def map_dataset(*, model_dir: Path, sha256: str, dataset_dir: Path, seed: int = 0) -> DataMap:
    """Load the saved model (checksum verified), score and embed every image of ``dataset_dir`` and lay them out."""
    from workers.ml.predict import LoadedModel

    loaded = LoadedModel.load(Path(model_dir), expected_sha256=sha256)
    names = loaded.class_names
    splits = [list_split(Path(dataset_dir), s, names) for s in SPLITS if has_split(Path(dataset_dir), s)]
    batches = (batch for split in splits for batch in make_dataset(split, loaded.image_size, BATCH, with_labels=False))
    features, probs = features_and_probabilities(loaded.keras_model, batches)
    return DataMap(
        paths=[p for split in splits for p in split.relative],
        labels=[int(v) for split in splits for v in split.labels],
        class_names=list(names),
        probabilities=probs,
        coordinates=layout(features, seed=seed),
    )
