"""The label-error engine on generated shapes with 5 % of the labels flipped on purpose."""

import numpy as np
import pytest

from tests.ml.conftest import write_dataset
from workers.ml.errors import DatasetError
from workers.ml.label_errors import dataset_label_errors, folds_for, out_of_sample_probabilities

CLASSES = ["circle", "square", "triangle"]


def flip_labels(root, fraction: float, seed: int) -> set[str]:
    """Move `fraction` of the images into another class's folder (of the same split); their new paths."""
    rng = np.random.default_rng(seed)
    files = sorted(root.rglob("*.jpg"))
    flipped = set()
    for index in rng.choice(len(files), size=round(fraction * len(files)), replace=False):
        path = files[index]
        other = rng.choice([c for c in CLASSES if c != path.parent.name])
        target = path.parent.parent / other / f"flipped-{path.name}"
        path.rename(target)
        flipped.add(target.relative_to(root).as_posix())
    return flipped


def test_it_ranks_most_flipped_labels_at_the_top_of_the_queue(tmp_path):
    # Features: VGG16 with random weights (weights none) at 32 px, extracted by the engine itself; a linear
    # model on them separates the three coloured shapes (checked below on the clean images' probabilities).
    root = write_dataset(tmp_path / "shapes", CLASSES, 40, 10, seed=3)
    flipped = flip_labels(root, 0.05, seed=0)
    found = dataset_label_errors(
        dataset_dir=root,
        cache_dir=tmp_path / "features",
        dataset_hash="shapes",
        backbone="vgg16",
        weights="none",
        image_size=(32, 32),
        seed=7,
    )
    k = len(flipped)
    ranked = [issue["path"] for issue in found.issues]
    at_k, at_2k = len(set(ranked[:k]) & flipped) / k, len(set(ranked[: 2 * k]) & flipped) / k
    message = f"{k} of {found.images} labels flipped: recall at k={k} is {at_k:.2f}, at 2k={2 * k} is {at_2k:.2f}"
    assert (found.images, k, found.folds, found.cache_hit) == (150, 8, 5, False), message
    assert at_k >= 0.75 and at_2k >= 0.875, message
    top = {issue["path"]: issue for issue in found.issues[:k]}
    for path in set(top) & flipped:  # the suggestion is the class the image was drawn as
        assert top[path]["suggested"] != top[path]["given"], top[path]
    # The features were stored under the bottleneck cache's key: a second look extracts nothing.
    again = dataset_label_errors(
        dataset_dir=root, cache_dir=tmp_path / "features", dataset_hash="shapes", backbone="vgg16",
        weights="none", image_size=(32, 32), seed=7,
    )  # fmt: skip
    assert again.cache_hit and [i["path"] for i in again.issues] == ranked


def test_out_of_sample_probabilities_never_see_the_image_they_score():
    # A feature that copies the label: in-sample, any model would be certain; out of sample the lone
    # contradicting image (index 0) cannot vouch for itself.
    labels = np.array([0] * 10 + [1] * 10)
    features = labels[:, None].astype(np.float32) + np.random.default_rng(0).normal(0, 0.01, (20, 1))
    features[0] = 1.0
    probabilities = out_of_sample_probabilities(features, labels)
    assert probabilities.shape == (20, 2) and np.allclose(probabilities.sum(axis=1), 1)
    assert probabilities[0, 0] < 0.5 < probabilities[1, 0]


def test_it_uses_fewer_folds_for_tiny_classes_and_refuses_a_class_of_one():
    assert folds_for(np.array([0] * 10 + [1] * 3)) == 3
    with pytest.raises(DatasetError, match="at least 2 images in every class"):
        folds_for(np.array([0] * 10 + [1]))
