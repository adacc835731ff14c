"""Every experiment option, declared once: key, kind, range, default, unit, help and the modes
that read it.

``config.parse_config`` validates with these declarations, the web form builds its fields and
help texts from them, and the API documents its request body from them, so a range or a help
text cannot disagree between the three. No TensorFlow here: the web process imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.ml.registry import NAMES as BACKBONES

MODES = ("bottleneck", "finetune", "scratch")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
FILL_MODES = ("nearest", "reflect", "wrap", "constant")
POOLINGS = ("flatten", "avg")
WEIGHTS = ("imagenet", "none")
DEVICES = ("auto", "cpu", "gpu")
PRECISIONS = ("auto", "float32", "bfloat16")

_ALL = MODES
_TRANSFER = ("bottleneck", "finetune")
_AUGMENTING = ("finetune", "scratch")


@dataclass(frozen=True)
class Option:
    """One config key. ``kind`` is int, number, bool, choice, size, zoom, blocks or id."""

    key: str  # dotted, as errors name it: "augmentation.rotation_range"
    kind: str
    default: object
    help: str
    label: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    unit: str = ""
    modes: tuple = _ALL  # the modes that read it; any other mode refuses it
    nullable: bool = False  # None is a value ("off", "not set")
    mode_defaults: dict = field(default_factory=dict)  # mode -> default, where it differs
    # (key, values): read only when that other option has one of these values; refused otherwise.
    requires: tuple = ()
    # Not needed for a first run: the form keeps it under "Advanced".
    advanced: bool = False

    @property
    def name(self) -> str:
        """The last part of the key: the name inside its section."""
        return self.key.rsplit(".", 1)[-1]

    @property
    def section(self) -> str | None:
        """ "head", "augmentation" or "early_stopping"; None for a top-level key."""
        return self.key.rsplit(".", 1)[0] if "." in self.key else None

    @property
    def field_name(self) -> str:
        """The web form's field: augmentation options by their own name, other sections joined."""
        if self.section == "augmentation":
            return self.name
        return self.key.replace(".", "_")

    def default_for(self, mode: str):
        return self.mode_defaults.get(mode, self.default)

    def bounds_text(self) -> str:
        left, right = ("(" if self.lo_open else "["), (")" if self.hi_open else "]")
        return f"{left}{_fmt(self.lo)}, {_fmt(self.hi)}{right}"


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


OPTIONS: tuple[Option, ...] = (
    Option("mode", "choice", None, "bottleneck: train a head on cached features of a frozen base; finetune: "
           "continue a bottleneck model with its top blocks unfrozen; scratch: a small convnet, no pretrained "
           "base.", choices=MODES),
    Option("backbone", "choice", "vgg16", "The pretrained convolutional base.", choices=BACKBONES, modes=_TRANSFER),
    Option("weights", "choice", "imagenet", "imagenet: pretrained (from TL_WEIGHTS_DIR or downloaded); none: "
           "random.", choices=WEIGHTS, modes=("bottleneck",)),
    Option("image_size", "size", (150, 150), "Every image is resized to [height, width] (or one number for a "
           "square).", lo=32, hi=1024, unit="pixels"),
    Option("epochs", "int", 50, "Passes over the training images.", lo=1, hi=1000,
           mode_defaults={"finetune": 20}),
    Option("batch_size", "int", 16, "Images per training step.", lo=1, hi=1024),
    Option("learning_rate", "number", 1e-3, "Step size of the optimizer.", lo=0, hi=1, lo_open=True,
           mode_defaults={"finetune": 1e-4}),
    Option("optimizer", "choice", "rmsprop", "The blog's rmsprop; fine-tuning's slow sgd keeps pretrained "
           "features intact.", choices=OPTIMIZERS, mode_defaults={"finetune": "sgd"}),
    Option("momentum", "number", 0.9, "SGD only.", lo=0, hi=1, hi_open=True, requires=("optimizer", ("sgd",))),
    Option("class_weight", "choice", None, "balanced: each class weighs as much in the loss as the others "
           "together, whatever its number of images (n / (classes x count)); empty: every image weighs the same.",
           choices=(None, "balanced"), nullable=True, advanced=True),
    Option("device", "choice", "auto", "gpu: wait for a GPU worker (queue training-gpu) and fail if it sees no "
           "GPU; cpu: train on a CPU worker with GPUs hidden; auto: the CPU queue, using whatever the worker "
           "sees.", choices=DEVICES, advanced=True),
    Option("precision", "choice", "auto", "Arithmetic of the frozen base while it computes the training images' "
           "features. auto: the worker times float32 and bfloat16 once per backbone and image size and takes the "
           "faster one whose features stay within 5% of float32's (against how much they vary between images). Validation and test features, the head and the "
           "saved model are always float32.", choices=PRECISIONS, modes=("bottleneck",), advanced=True),
    Option("seed", "int", 1337, "Same seed, same data and settings: same result.", lo=0, hi=2**31 - 1,
           advanced=True),
    Option("head.units", "int", 256, "Units of the head's dense layer.", label="Head units", lo=1, hi=8192,
           modes=("bottleneck",)),
    Option("head.dropout", "number", 0.5, "Dropout before the output layer.", label="Head dropout", lo=0, hi=1,
           hi_open=True, modes=("bottleneck",)),
    Option("head.pooling", "choice", "flatten", "flatten is the blog's; avg (global average) has far fewer "
           "weights.", label="Head pooling", choices=POOLINGS, modes=("bottleneck",), advanced=True),
    Option("head.normalize", "bool", True, "Recommended: raw VGG16 features are large and heavy-tailed.",
           label="Normalise features before the head", modes=("bottleneck",), advanced=True),
    Option("unfreeze", "blocks", None, "Blocks fine-tuning trains (vgg16: block1-block5; mobilenet_v2: stem, "
           "block_1-block_16, top). Empty: the backbone's last block (vgg16 block5, mobilenet_v2 top).",
           modes=("finetune",)),
    Option("base_experiment", "id", None, "A succeeded bottleneck experiment on the same dataset, backbone and "
           "image size.", modes=("finetune",), nullable=True),
    Option("early_stopping.patience", "int", None, "Stop after this many epochs without a better validation "
           "loss; the best epoch is kept. Empty: off.", lo=1, hi=1000, nullable=True, advanced=True),
    Option("augmentation.rotation_range", "number", 0.0, "Images are rotated by a random angle in \u00b1this.",
           lo=0, hi=360, unit="degrees", modes=_AUGMENTING),
    Option("augmentation.width_shift_range", "number", 0.0, "Random horizontal shift.", lo=0, hi=1,
           hi_open=True, unit="fraction of the width", modes=_AUGMENTING),
    Option("augmentation.height_shift_range", "number", 0.0, "Random vertical shift.", lo=0, hi=1,
           hi_open=True, unit="fraction of the height", modes=_AUGMENTING),
    Option("augmentation.shear_range", "number", 0.0, "Random shear angle, converted for Keras. Keras 1 and 2 "
           "took radians: the blog's shear_range=0.2 is 11.46 degrees.", lo=0, hi=80, unit="degrees",
           modes=_AUGMENTING),
    Option("augmentation.zoom_range", "zoom", 0.0, "Random zoom: scale in [1-z, 1+z], or [low, high].", lo=0,
           hi=1, hi_open=True, modes=_AUGMENTING),
    Option("augmentation.channel_shift_range", "number", 0.0, "Random shift of each image's intensity.", lo=0,
           hi=255, unit="0-255 intensity", modes=_AUGMENTING, advanced=True),
    Option("augmentation.fill_mode", "choice", "nearest", "How pixels outside the shifted or rotated image are "
           "filled.", choices=FILL_MODES, modes=_AUGMENTING, advanced=True),
    Option("augmentation.cval", "number", 0.0, "Fill value when fill mode is 'constant'.", lo=-1e6, hi=1e6,
           modes=_AUGMENTING, advanced=True),
    Option("augmentation.horizontal_flip", "bool", False, "Randomly mirror images left-right.",
           modes=_AUGMENTING),
    Option("augmentation.vertical_flip", "bool", False, "Randomly flip images upside down.", modes=_AUGMENTING),
    Option("augmentation.rescale", "number", None, "Multiply pixels by this (e.g. 0.00392 for 1/255; not 0). "
           "Scratch mode only: pretrained backbones preprocess raw 0-255 pixels themselves.", lo=-1e6, hi=1e6,
           nullable=True, modes=("scratch",)),
    Option("augmentation.featurewise_center", "bool", False, "Subtract the training set's mean pixel.",
           modes=("scratch",), advanced=True),
    Option("augmentation.featurewise_std_normalization", "bool", False, "Divide by the training set's std.",
           modes=("scratch",), advanced=True),
    Option("augmentation.samplewise_center", "bool", False, "Subtract each image's own mean.",
           modes=("scratch",), advanced=True),
    Option("augmentation.samplewise_std_normalization", "bool", False, "Divide each image by its own std.",
           modes=("scratch",), advanced=True),
)  # fmt: skip

BY_KEY = {option.key: option for option in OPTIONS}
SECTIONS = ("head", "augmentation", "early_stopping")


def option(key: str) -> Option:
    return BY_KEY[key]


def section_options(section: str) -> tuple[Option, ...]:
    return tuple(o for o in OPTIONS if o.section == section)


def top_level_keys() -> tuple[str, ...]:
    """Keys allowed at the top of a config: plain options and the sections."""
    keys = [o.key for o in OPTIONS if o.section is None]
    return (*keys, *SECTIONS)


def mode_keys(mode: str) -> tuple[str, ...]:
    """Top-level keys that ``mode`` reads (a section counts when any of its options does).

    ``augmentation`` is allowed in every mode: its options are checked one by one, with the
    reason a mode cannot use each (bottleneck mode computes features once, a pretrained
    backbone preprocesses raw pixels itself).
    """
    keys = [o.key for o in OPTIONS if o.section is None and mode in o.modes]
    keys += [s for s in SECTIONS if s == "augmentation" or any(mode in o.modes for o in section_options(s))]
    return tuple(keys)
