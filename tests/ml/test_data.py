import numpy as np
import pytest

from workers.ml.data import list_classes, list_split, make_dataset
from workers.ml.errors import DatasetError


def test_it_sorts_classes_and_labels_from_folders(three_class_dir):
    classes = list_classes(three_class_dir)
    assert classes == ["circle", "square", "triangle"]
    split = list_split(three_class_dir, "validation", classes)
    assert split.relative[0] == "validation/circle/000.jpg"
    assert list(np.bincount(split.labels)) == [10, 10, 10]


def test_it_uses_every_image_exactly_once_per_pass(three_class_dir):
    split = list_split(three_class_dir, "train", list_classes(three_class_dir))
    ds = make_dataset(split, (32, 32), 16, shuffle=True, seed=1)
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert len(labels) == 90  # 90 // 16 * 16 would be 80
    assert list(np.bincount(labels)) == [30, 30, 30]


def test_it_keeps_evaluation_order_and_shuffles_training_by_seed(three_class_dir):
    split = list_split(three_class_dir, "train", list_classes(three_class_dir))
    fixed = np.concatenate([y.numpy() for _, y in make_dataset(split, (32, 32), 16)])
    np.testing.assert_array_equal(fixed, split.labels)
    one = np.concatenate([y.numpy() for _, y in make_dataset(split, (32, 32), 16, shuffle=True, seed=4)])
    two = np.concatenate([y.numpy() for _, y in make_dataset(split, (32, 32), 16, shuffle=True, seed=4)])
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, fixed)


def test_it_resizes_to_raw_rgb_floats(two_class_dir):
    split = list_split(two_class_dir, "validation", list_classes(two_class_dir))
    images, labels = next(iter(make_dataset(split, (40, 24), 4, binary=True)))
    assert images.shape == (4, 40, 24, 3) and labels.shape == (4, 1)
    assert images.numpy().max() > 1.5


def test_it_needs_two_classes(tmp_path):
    (tmp_path / "train" / "only").mkdir(parents=True)
    with pytest.raises(DatasetError):
        list_classes(tmp_path)
