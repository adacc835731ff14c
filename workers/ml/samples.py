"""The Keras sample datasets as class folders, so that a newcomer without photos can start.

``keras.datasets.<name>.load_data()`` loads the arrays (Keras downloads its file once into its
cache, ``$KERAS_HOME/datasets``, ``~/.keras/datasets`` by default); ``write_sample`` writes them as
``train/``, ``validation/`` and ``test/`` folders of PNG files named by class, which the app then
ingests like any upload. The dataset's own test split becomes our test split; validation is held
out of its training split, stratified and seeded. Grayscale images are written as RGB (the grey
value in all three channels), and images smaller than ``MIN_SIZE`` are resized up with Pillow's
bilinear filter, because the backbones refuse smaller inputs; the rule is returned for the report.
Offline, loading fails with the file Keras needed and where to put it, as the weights do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from workers.ml.errors import MLError

MIN_SIZE = 32  # the smallest input VGG16 and MobileNetV2 accept
PER_CLASS_CHOICES = (100, 500, None)  # None: every image
VALIDATION_FRACTION = 0.2  # of the training images taken per class, held out as validation

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_FINE = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television "
    "tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
CIFAR100_COARSE = (
    "aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices "
    "household_furniture insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes "
    "large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people reptiles small_mammals trees "
    "vehicles_1 vehicles_2"
).split()
FASHION = ("t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
DIGITS = tuple(str(d) for d in range(10))

_KERAS_DATA = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
SHAPES_TRAIN, SHAPES_TEST = 300, 60  # generated per class; nothing is downloaded


@dataclass(frozen=True)
class Sample:
    key: str
    label: str
    class_names: tuple[str, ...]
    # (what Keras downloads, where its cache keeps it, relative to $KERAS_HOME/datasets)
    files: tuple[tuple[str, str], ...]
    loader: Callable[[], tuple]
    description: str


def _cifar100(label_mode: str):
    import keras

    return keras.datasets.cifar100.load_data(label_mode=label_mode)


def _shapes():
    from workers.ml.shapes import shapes_arrays

    return shapes_arrays(train=SHAPES_TRAIN, test=SHAPES_TEST, size=64, seed=0)


def _load(name: str):
    import keras

    return getattr(keras.datasets, name).load_data()


SAMPLES: dict[str, Sample] = {
    s.key: s
    for s in (
        Sample("cifar10", "CIFAR-10", CIFAR10,
               (("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-batches-py-target_archive"),),
               lambda: _load("cifar10"), "60,000 colour photos at 32x32 in 10 classes (airplane ... truck)."),
        Sample("cifar100", "CIFAR-100 (100 fine classes)", tuple(CIFAR100_FINE),
               (("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python-target_archive"),),
               lambda: _cifar100("fine"), "60,000 colour photos at 32x32 in 100 classes."),
        Sample("cifar100_coarse", "CIFAR-100 (20 coarse classes)", tuple(CIFAR100_COARSE),
               (("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python-target_archive"),),
               lambda: _cifar100("coarse"), "The CIFAR-100 photos in its 20 superclasses."),
        Sample("mnist", "MNIST digits", DIGITS, ((f"{_KERAS_DATA}mnist.npz", "mnist.npz"),),
               lambda: _load("mnist"), "70,000 handwritten digits, 28x28 grayscale."),
        Sample("fashion_mnist", "Fashion-MNIST", FASHION,
               tuple((f"{_KERAS_DATA}{name}", f"fashion-mnist/{name}") for name in (
                   "train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
                   "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")),
               lambda: _load("fashion_mnist"), "70,000 Zalando article images, 28x28 grayscale, 10 classes."),
        Sample("shapes", "Shapes (generated, no download)",
               ("ellipse", "rectangle", "triangle", "cross", "ring"), (), _shapes,
               "Coloured shapes on noisy backgrounds at 64x64, made on the spot: try TransferLab offline."),
    )
}  # fmt: skip


class SampleUnavailable(MLError):
    """Keras could not load the sample (offline, or a damaged file); ``str(e)`` says what to do."""


def load_arrays(key: str):
    """``((x_train, y_train), (x_test, y_test))`` of a sample, from Keras's cache or downloaded by Keras."""
    sample = SAMPLES.get(key)
    if sample is None:
        raise MLError(f"unknown sample {key!r}; choose one of {', '.join(SAMPLES)}")
    try:
        return sample.loader()
    except Exception as exc:  # noqa: BLE001 - Keras raises a bare Exception for a failed download
        # Named relative to Keras's datasets folder: users read this message, and it must not show a
        # server path (docs/decisions.md, "Errors are JSON, with a request id"); an administrator knows
        # the folder from KERAS_HOME.
        needed = "; ".join(f"{url} saved as {cached}" for url, cached in sample.files)
        raise SampleUnavailable(
            f"{sample.label} is not in Keras's cache and could not be downloaded ({str(exc).splitlines()[0][:200]}). "
            f"On a machine with internet, download {needed}, in Keras's datasets folder on the server "
            "($KERAS_HOME/datasets; ~/.keras/datasets when KERAS_HOME is unset); or run once where Keras can "
            "download it, then copy that folder to the server."
        ) from exc


def _pick(labels: np.ndarray, n_classes: int, count: int | None, rng: np.random.Generator) -> list[np.ndarray]:
    """Per class, the indices of up to ``count`` images in a seeded random order (all when None)."""
    picked = []
    for c in range(n_classes):
        indices = np.flatnonzero(labels == c)
        rng.shuffle(indices)
        picked.append(indices if count is None else indices[:count])
    return picked


def _as_rgb(image: np.ndarray) -> Image.Image:
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    elif image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    picture = Image.fromarray(image, "RGB")
    if min(picture.size) < MIN_SIZE:
        scale = MIN_SIZE / min(picture.size)
        picture = picture.resize(
            (round(picture.width * scale), round(picture.height * scale)), Image.Resampling.BILINEAR
        )
    return picture


def write_sample(arrays, sample: Sample, out_dir: Path, *, per_class: int | None, seed: int = 0,
                 on_progress: Callable[[float], None] | None = None) -> dict:  # fmt: skip
    """Write ``out_dir/{train,validation,test}/<class>/<n>.png`` from Keras's arrays; returns the
    counts per split and the conversion rule applied (for the dataset's report).

    Per class: ``per_class`` training images, ``VALIDATION_FRACTION`` of that again as validation
    (other images of Keras's training split) and as test (from Keras's test split); with
    ``per_class=None`` everything, 20 % of the training split held out as validation.
    """
    (x_train, y_train), (x_test, y_test) = arrays
    y_train, y_test = np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)
    n_classes = len(sample.class_names)
    if y_train.size and int(y_train.max()) >= n_classes:
        raise MLError(f"{sample.label}: label {int(y_train.max())} has no class name ({n_classes} known)")
    rng = np.random.default_rng(seed)
    if per_class is None:
        shuffled = _pick(y_train, n_classes, None, rng)
        held = [max(1, round(len(i) * VALIDATION_FRACTION)) for i in shuffled]
        splits = {
            "train": [i[h:] for i, h in zip(shuffled, held, strict=True)],
            "validation": [i[:h] for i, h in zip(shuffled, held, strict=True)],
            "test": _pick(y_test, n_classes, None, rng),
        }
    else:
        extra = max(1, round(per_class * VALIDATION_FRACTION))
        taken = _pick(y_train, n_classes, per_class + extra, rng)
        splits = {
            "train": [i[:per_class] for i in taken],
            "validation": [i[per_class:] for i in taken],
            "test": _pick(y_test, n_classes, extra, rng),
        }
    sources = {"train": x_train, "validation": x_train, "test": x_test}
    total = sum(len(i) for groups in splits.values() for i in groups) or 1
    done, counts = 0, {}
    for split, groups in splits.items():
        counts[split] = {}
        for name, indices in zip(sample.class_names, groups, strict=True):
            folder = Path(out_dir) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in indices:
                _as_rgb(sources[split][index]).save(folder / f"{int(index):05d}.png", format="PNG", compress_level=1)
            counts[split][name] = len(indices)
            done += len(indices)
            if on_progress is not None:
                on_progress(done / total)
    height, width = np.asarray(x_train).shape[1:3]
    rule = []
    if np.asarray(x_train).ndim == 3 or np.asarray(x_train).shape[-1] == 1:
        rule.append("grayscale written as RGB (the grey value in all three channels)")
    if min(height, width) < MIN_SIZE:
        rule.append(f"{width}x{height} resized up to at least {MIN_SIZE} px (bilinear), the smallest size every "
                    "backbone accepts")  # fmt: skip
    return {"sample": sample.key, "label": sample.label, "per_class": per_class, "counts": counts,
            "image_size": [int(height), int(width)], "conversion": rule}  # fmt: skip
