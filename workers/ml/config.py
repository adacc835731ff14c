"""Experiment configuration: parsing, validation and serialisation.

This module must stay free of TensorFlow/Keras imports: the web app validates configs on
the way in and must not pay TF's import cost (DESIGN §7).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from workers.ml.errors import ConfigError

MODES = ("bottleneck", "finetune", "scratch")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
FILL_MODES = ("nearest", "reflect", "wrap", "constant")
POOLINGS = ("flatten", "avg")

# Layer-name prefixes per unfreezable block. Kept here (not in backbones.py) so config
# validation can check block names without importing Keras.
_MOBILENET_BLOCKS = {"stem": ("Conv1", "bn_Conv1", "expanded_conv_")}
_MOBILENET_BLOCKS.update({f"block_{i}": (f"block_{i}_",) for i in range(1, 17)})
_MOBILENET_BLOCKS["top"] = ("Conv_1", "out_relu")
BACKBONE_SPECS = {
    "vgg16": {"min_size": 32, "blocks": {f"block{i}": (f"block{i}_",) for i in range(1, 6)}},
    "mobilenet_v2": {"min_size": 32, "blocks": _MOBILENET_BLOCKS},
}

# Per-mode defaults: the blog's choices, except that fine-tuning uses the slow SGD it
# recommends so the pretrained features are not wrecked by large updates.
MODE_DEFAULTS = {
    "bottleneck": {"optimizer": "rmsprop", "learning_rate": 1e-3, "epochs": 50},
    "finetune": {"optimizer": "sgd", "learning_rate": 1e-4, "epochs": 20},
    "scratch": {"optimizer": "rmsprop", "learning_rate": 1e-3, "epochs": 50},
}


@dataclass(frozen=True)
class AugmentationConfig:
    """ImageDataGenerator's options, with its names and units (DESIGN §5)."""

    rotation_range: float = 0.0  # degrees
    width_shift_range: float = 0.0  # fraction of width
    height_shift_range: float = 0.0  # fraction of height
    shear_range: float = 0.0  # degrees
    zoom_range: float | tuple[float, float] = 0.0  # scale in [1-z, 1+z] or [lo, hi]
    channel_shift_range: float = 0.0  # 0-255 intensity units
    fill_mode: str = "nearest"
    cval: float = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    rescale: float | None = None
    featurewise_center: bool = False
    featurewise_std_normalization: bool = False
    samplewise_center: bool = False
    samplewise_std_normalization: bool = False

    @property
    def zoom_bounds(self) -> tuple[float, float]:
        """The scale range as ImageDataGenerator samples it: ``[1-z, 1+z]`` or ``[lo, hi]``."""
        if isinstance(self.zoom_range, tuple):
            return self.zoom_range
        return (1.0 - self.zoom_range, 1.0 + self.zoom_range)

    @property
    def has_random_transforms(self) -> bool:
        """True when any training-only random transformation is enabled."""
        return bool(
            self.rotation_range
            or self.width_shift_range
            or self.height_shift_range
            or self.shear_range
            or self.zoom_bounds != (1.0, 1.0)
            or self.channel_shift_range
            or self.horizontal_flip
            or self.vertical_flip
        )

    @property
    def has_standardization(self) -> bool:
        """True when any pixel standardisation (applied in training and inference) is set."""
        return bool(
            self.rescale is not None
            or self.featurewise_center
            or self.featurewise_std_normalization
            or self.samplewise_center
            or self.samplewise_std_normalization
        )


@dataclass(frozen=True)
class HeadConfig:
    """Classifier head on top of the backbone."""

    units: int = 256
    dropout: float = 0.5
    pooling: str = "flatten"  # the blog's Flatten, or "avg" global average pooling
    normalize: bool = True  # standardise features first (DESIGN §7: raw VGG16 features)


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment; build it with ``parse_config``."""

    mode: str
    backbone: str = "vgg16"
    weights: str = "imagenet"
    image_size: tuple[int, int] = (150, 150)
    epochs: int = 50
    batch_size: int = 16
    learning_rate: float = 1e-3
    optimizer: str = "rmsprop"
    momentum: float = 0.9  # used by sgd only
    seed: int = 1337
    head: HeadConfig = field(default_factory=HeadConfig)
    unfreeze: tuple[str, ...] = ("block5",)
    early_stopping_patience: int | None = None
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)


# --- parsing helpers -------------------------------------------------------------------


def _number(data, key, path, default, lo, hi, *, integer=False, lo_open=False, hi_open=False):
    value = data.get(key, default)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or (not integer and not math.isfinite(value)):
        raise ConfigError(path, f"must be {'an integer' if integer else 'a number'}")
    too_low = value <= lo if lo_open else value < lo
    too_high = value >= hi if hi_open else value > hi
    if too_low or too_high:
        left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ConfigError(path, f"must be in {left}{lo}, {hi}{right}, got {value}")
    return int(value) if integer else float(value)


def _choice(data, key, path, default, choices):
    value = data.get(key, default)
    if value not in choices:
        raise ConfigError(path, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _bool(data, key, path, default):
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(path, "must be true or false")
    return value


def _reject_unknown(data, allowed, prefix=""):
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip(".") or "config", "must be an object")
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{prefix}{key}", "unknown option")


_AUG_FIELDS = tuple(AugmentationConfig.__dataclass_fields__)
# Top-level keys each mode reads; any other key would be silently ignored, so it is refused.
# A fine-tune continues its base model: the base fixes the head and the backbone's weights.
_COMMON_KEYS = (
    "mode",
    "image_size",
    "epochs",
    "batch_size",
    "learning_rate",
    "optimizer",
    "momentum",
    "seed",
    "early_stopping",
    "augmentation",
)
MODE_KEYS = {
    "bottleneck": (*_COMMON_KEYS, "backbone", "weights", "head"),
    "finetune": (*_COMMON_KEYS, "backbone", "unfreeze", "base_experiment"),
    "scratch": _COMMON_KEYS,
}
_UNUSED_BECAUSE = {
    "head": "the {mode} model has no configurable head",
    "backbone": "scratch mode trains the small convnet, no backbone",
    "weights": "{why_weights}",
    "unfreeze": "only finetune mode unfreezes blocks",
    "base_experiment": "only finetune mode starts from a base experiment",
}


def _refuse_unused(data: dict, mode: str) -> None:
    for key in data:
        if key in _TOP_KEYS and key not in MODE_KEYS[mode]:
            why_weights = (
                "a fine-tune continues its base model's weights"
                if mode == "finetune"
                else "scratch mode starts from random weights"
            )
            reason = _UNUSED_BECAUSE[key].format(mode=mode, why_weights=why_weights)
            raise ConfigError(key, f"not used in {mode} mode ({reason}); remove it")


_TOP_KEYS = (
    "mode",
    "backbone",
    "weights",
    "image_size",
    "epochs",
    "batch_size",
    "learning_rate",
    "optimizer",
    "momentum",
    "seed",
    "head",
    "unfreeze",
    "early_stopping",
    "augmentation",
    "base_experiment",  # the platform resolves it to base_model_dir; ignored here
)


def _parse_zoom(value, path):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(path, "must be a number or a pair [low, high]")
        pair = {"lo": value[0], "hi": value[1]}
        lo = _number(pair, "lo", path, 0, 0, 10, lo_open=True)
        hi = _number(pair, "hi", path, 0, 0, 10, lo_open=True)
        if lo > hi:
            raise ConfigError(path, "low must not exceed high")
        return (lo, hi)
    return _number({"z": value}, "z", path, 0, 0, 1, hi_open=True)


def parse_augmentation(data: dict | None, mode: str) -> AugmentationConfig:
    """Validate the ``augmentation`` section; mode decides which options are allowed."""
    data = {} if data is None else data
    p = "augmentation."
    if "zca_whitening" in data or "zca_epsilon" in data:
        key = "zca_whitening" if "zca_whitening" in data else "zca_epsilon"
        raise ConfigError(
            p + key,
            "ZCA whitening is not supported (Keras 3 has no layer for "
            "it and it does not scale to full-size images); remove it",
        )
    _reject_unknown(data, _AUG_FIELDS, p)
    rescale = data.get("rescale")
    if rescale is not None:
        rescale = _number(data, "rescale", p + "rescale", None, -1e6, 1e6)
        if rescale == 0:
            raise ConfigError(p + "rescale", "must not be 0")
    aug = AugmentationConfig(
        rotation_range=_number(data, "rotation_range", p + "rotation_range", 0.0, 0, 360),
        width_shift_range=_number(data, "width_shift_range", p + "width_shift_range", 0.0, 0, 1, hi_open=True),
        height_shift_range=_number(data, "height_shift_range", p + "height_shift_range", 0.0, 0, 1, hi_open=True),
        # tan() of the angle is what Keras' RandomShear takes; 80° keeps it finite and sane.
        shear_range=_number(data, "shear_range", p + "shear_range", 0.0, 0, 80),
        zoom_range=_parse_zoom(data.get("zoom_range", 0.0), p + "zoom_range"),
        channel_shift_range=_number(data, "channel_shift_range", p + "channel_shift_range", 0.0, 0, 255),
        fill_mode=_choice(data, "fill_mode", p + "fill_mode", "nearest", FILL_MODES),
        cval=_number(data, "cval", p + "cval", 0.0, -1e6, 1e6),
        horizontal_flip=_bool(data, "horizontal_flip", p + "horizontal_flip", False),
        vertical_flip=_bool(data, "vertical_flip", p + "vertical_flip", False),
        rescale=rescale,
        featurewise_center=_bool(data, "featurewise_center", p + "featurewise_center", False),
        featurewise_std_normalization=_bool(
            data, "featurewise_std_normalization", p + "featurewise_std_normalization", False
        ),
        samplewise_center=_bool(data, "samplewise_center", p + "samplewise_center", False),
        samplewise_std_normalization=_bool(
            data, "samplewise_std_normalization", p + "samplewise_std_normalization", False
        ),
    )
    if mode != "scratch":
        # A pretrained backbone expects raw 0-255 pixels through its own preprocess_input;
        # rescaling or standardising in front of it measured at chance level (DESIGN §7).
        for name in (
            "rescale",
            "featurewise_center",
            "featurewise_std_normalization",
            "samplewise_center",
            "samplewise_std_normalization",
        ):
            if data.get(name) not in (None, False):
                raise ConfigError(
                    p + name,
                    f"not allowed in {mode} mode: the backbone applies "
                    "its own preprocessing to raw 0-255 pixels; use it in "
                    "scratch mode only",
                )
    if mode == "bottleneck" and aug.has_random_transforms:
        name = next(k for k in _AUG_FIELDS if k in data and data[k] != getattr(AugmentationConfig(), k))
        raise ConfigError(
            p + name,
            "bottleneck mode computes features once, so it cannot "
            "augment; use finetune or scratch mode for augmentation",
        )
    return aug


def _parse_head(data: dict | None) -> HeadConfig:
    data = {} if data is None else data
    _reject_unknown(data, ("units", "dropout", "pooling", "normalize"), "head.")
    return HeadConfig(
        units=_number(data, "units", "head.units", 256, 1, 8192, integer=True),
        dropout=_number(data, "dropout", "head.dropout", 0.5, 0, 1, hi_open=True),
        pooling=_choice(data, "pooling", "head.pooling", "flatten", POOLINGS),
        normalize=_bool(data, "normalize", "head.normalize", True),
    )


def _parse_image_size(value, min_size):
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError("image_size", "must be [height, width]")
    pair = {"height": value[0], "width": value[1]}
    return (
        _number(pair, "height", "image_size", 0, min_size, 1024, integer=True),
        _number(pair, "width", "image_size", 0, min_size, 1024, integer=True),
    )


def parse_config(data: dict) -> ExperimentConfig:
    """Validate a JSON experiment config (DESIGN §5) into an ``ExperimentConfig``.

    Unknown keys and out-of-range values raise ``ConfigError`` naming the dotted key, e.g.
    ``augmentation.rotaton_range: unknown option``. ``base_experiment`` is accepted and
    ignored (the platform turns it into ``base_model_dir``).
    """
    _reject_unknown(data, _TOP_KEYS)
    if "mode" not in data:
        raise ConfigError("mode", f"is required (one of {', '.join(MODES)})")
    mode = _choice(data, "mode", "mode", None, MODES)
    _refuse_unused(data, mode)
    defaults = MODE_DEFAULTS[mode]
    backbone = _choice(data, "backbone", "backbone", "vgg16", tuple(BACKBONE_SPECS))
    spec = BACKBONE_SPECS[backbone]
    unfreeze = data.get("unfreeze", ["block5"] if backbone == "vgg16" else ["top"])
    if isinstance(unfreeze, str):
        unfreeze = [unfreeze]
    if not isinstance(unfreeze, (list, tuple)) or not all(isinstance(u, str) for u in unfreeze):
        raise ConfigError("unfreeze", "must be a block name or a list of block names")
    for name in unfreeze:
        if name not in spec["blocks"]:
            raise ConfigError("unfreeze", f"unknown block {name!r} for {backbone}; one of {', '.join(spec['blocks'])}")
    optimizer = _choice(data, "optimizer", "optimizer", defaults["optimizer"], OPTIMIZERS)
    if "momentum" in data and optimizer != "sgd":
        raise ConfigError("momentum", f"only the sgd optimizer uses momentum (this config uses {optimizer}); remove it")
    early = data.get("early_stopping")
    patience = None
    if early is not None:
        _reject_unknown(early, ("patience",), "early_stopping.")
        if early.get("patience") is not None:
            patience = _number(early, "patience", "early_stopping.patience", 0, 1, 1000, integer=True)
    return ExperimentConfig(
        mode=mode,
        backbone=backbone,
        weights=_choice(data, "weights", "weights", "imagenet", ("imagenet", "none")),
        image_size=_parse_image_size(data.get("image_size", [150, 150]), spec["min_size"]),
        epochs=_number(data, "epochs", "epochs", defaults["epochs"], 1, 1000, integer=True),
        batch_size=_number(data, "batch_size", "batch_size", 16, 1, 1024, integer=True),
        learning_rate=_number(data, "learning_rate", "learning_rate", defaults["learning_rate"], 0, 1, lo_open=True),
        optimizer=optimizer,
        momentum=_number(data, "momentum", "momentum", 0.9, 0, 1, hi_open=True),
        seed=_number(data, "seed", "seed", 1337, 0, 2**31 - 1, integer=True),
        head=_parse_head(data.get("head")),
        unfreeze=tuple(unfreeze),
        early_stopping_patience=patience,
        augmentation=parse_augmentation(data.get("augmentation"), mode),
    )


def config_to_dict(cfg: ExperimentConfig) -> dict:
    """A JSON-serialisable dict, with only the keys ``cfg.mode`` uses, that ``parse_config``
    turns back into ``cfg``."""
    data = asdict(cfg)
    data["image_size"] = list(cfg.image_size)
    data["unfreeze"] = list(cfg.unfreeze)
    patience = data.pop("early_stopping_patience")
    data["early_stopping"] = None if patience is None else {"patience": patience}
    aug = data["augmentation"]
    if isinstance(cfg.augmentation.zoom_range, tuple):
        aug["zoom_range"] = list(cfg.augmentation.zoom_range)
    if cfg.optimizer != "sgd":
        data.pop("momentum")
    return {k: v for k, v in data.items() if k in MODE_KEYS[cfg.mode]}


# --- memory estimate -------------------------------------------------------------------------

# float32 values kept per input pixel by one image's pass through each network: "infer" is the
# peak of a forward pass (two neighbouring layers live), "train" keeps every activation for the
# backward pass. VGG16: 2x64 + 64/4 + 2x128/4 + ... channels, summed over its blocks.
_ACTIVATIONS_PER_PIXEL = {
    "vgg16": {"infer": 128, "train": 301},
    "mobilenet_v2": {"infer": 120, "train": 260},
    "scratch": {"infer": 64, "train": 80},
}
_BASE_OUTPUT = {"vgg16": (32, 512), "mobilenet_v2": (32, 1280)}  # stride, channels
_BASE_PARAMS = {"vgg16": 14_714_688, "mobilenet_v2": 2_257_984}
_EXTRACTION_BATCH = 32  # train.EXTRACTION_BATCH, without importing TensorFlow here
_GIB = 1024**3


def estimate_training_memory(cfg: ExperimentConfig, n_images: int = 0) -> dict[str, tuple[str, int]]:
    """Rough peak bytes of training ``cfg`` by what dominates it: {term: (config key, bytes)}.

    Weights count four times (value, gradient and two optimizer slots). ``n_images`` (train
    plus validation) adds the cached bottleneck features, which the head trains on in memory.
    An estimate to refuse hopeless settings before a worker runs out of memory, not a budget.
    """
    h, w = cfg.image_size
    pixels = h * w
    terms: dict[str, tuple[str, int]] = {}
    if cfg.mode == "scratch":
        flat = (((h - 2) // 2 - 2) // 2 - 2) // 2 * ((((w - 2) // 2 - 2) // 2 - 2) // 2) * 64
        terms["activations"] = ("batch_size", cfg.batch_size * _ACTIVATIONS_PER_PIXEL["scratch"]["train"] * pixels * 4)
        terms["dense weights"] = ("image_size", flat * 64 * 4 * 4)
        return terms
    stride, channels = _BASE_OUTPUT[cfg.backbone]
    features = -(-h // stride) * -(-w // stride) * channels
    head_inputs = channels if cfg.head.pooling == "avg" else features
    terms["head weights"] = ("head.units", head_inputs * cfg.head.units * 4 * 4)
    if cfg.mode == "bottleneck":
        per_pixel = _ACTIVATIONS_PER_PIXEL[cfg.backbone]["infer"]
        terms["feature extraction"] = ("image_size", _EXTRACTION_BATCH * per_pixel * pixels * 4)
        terms["cached features"] = ("image_size", n_images * features * 4)
        terms["head batch"] = ("batch_size", cfg.batch_size * (features + 2 * cfg.head.units) * 4)
    else:
        per_pixel = _ACTIVATIONS_PER_PIXEL[cfg.backbone]["train"]
        terms["activations"] = ("batch_size", cfg.batch_size * per_pixel * pixels * 4)
        terms["base weights"] = ("backbone", _BASE_PARAMS[cfg.backbone] * 4 * 4)
    return terms


def check_training_memory(cfg: ExperimentConfig, budget_bytes: int, n_images: int = 0) -> int:
    """The estimated peak bytes; ConfigError naming the key that dominates when over budget."""
    terms = estimate_training_memory(cfg, n_images)
    total = sum(size for _, size in terms.values())
    if total > budget_bytes:
        name, (key, size) = max(terms.items(), key=lambda item: item[1][1])
        parts = ", ".join(f"{term} {b / _GIB:.1f} GiB" for term, (_, b) in terms.items() if b >= 0.05 * _GIB)
        raise ConfigError(
            key,
            f"this experiment would need about {total / _GIB:.1f} GiB of memory to train ({parts}), "
            f"more than the training worker's budget of {budget_bytes / _GIB:.1f} GiB "
            f"(TL_TRAINING_MEMORY_BYTES); {name} is the largest part: lower {key}",
        )
    return total
