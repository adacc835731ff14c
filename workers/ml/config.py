"""Experiment configuration: parsing, validation and serialisation.

This module must stay free of TensorFlow/Keras imports: the web app validates configs on
the way in and must not pay TF's import cost (docs/decisions.md, "TensorFlow only in the engine").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from workers.ml.errors import ConfigError
from workers.ml.options import (  # noqa: F401  (re-exported: callers import the vocabulary from here)
    DEVICES,
    FILL_MODES,
    MODES,
    OPTIMIZERS,
    POOLINGS,
    WEIGHTS,
    Option,
    mode_keys,
    option,
    section_options,
    top_level_keys,
)
from workers.ml.registry import SPECS

# Kept for callers that read blocks and minimum sizes by name (the registry is the home).
BACKBONE_SPECS = {name: {"min_size": b.min_size, "blocks": b.blocks} for name, b in SPECS.items()}


def _d(key: str):
    """The declared default of ``key`` (options.py is its one home)."""
    return option(key).default


@dataclass(frozen=True)
class AugmentationConfig:
    """ImageDataGenerator's options, with its names and units (workers/ml/options.py)."""

    rotation_range: float = _d("augmentation.rotation_range")  # degrees
    width_shift_range: float = _d("augmentation.width_shift_range")  # fraction of width
    height_shift_range: float = _d("augmentation.height_shift_range")  # fraction of height
    shear_range: float = _d("augmentation.shear_range")  # degrees
    zoom_range: float | tuple[float, float] = _d("augmentation.zoom_range")  # scale in [1-z, 1+z] or [lo, hi]
    channel_shift_range: float = _d("augmentation.channel_shift_range")  # 0-255 intensity units
    fill_mode: str = _d("augmentation.fill_mode")
    cval: float = _d("augmentation.cval")
    horizontal_flip: bool = _d("augmentation.horizontal_flip")
    vertical_flip: bool = _d("augmentation.vertical_flip")
    rescale: float | None = _d("augmentation.rescale")
    featurewise_center: bool = _d("augmentation.featurewise_center")
    featurewise_std_normalization: bool = _d("augmentation.featurewise_std_normalization")
    samplewise_center: bool = _d("augmentation.samplewise_center")
    samplewise_std_normalization: bool = _d("augmentation.samplewise_std_normalization")

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

    units: int = _d("head.units")
    dropout: float = _d("head.dropout")
    pooling: str = _d("head.pooling")  # the blog's Flatten, or "avg" global average pooling
    normalize: bool = _d("head.normalize")  # standardise features first (docs/decisions.md, "A standardised head")


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment; build it with ``parse_config``."""

    mode: str
    backbone: str = _d("backbone")
    weights: str = _d("weights")
    image_size: tuple[int, int] = _d("image_size")
    epochs: int = _d("epochs")
    batch_size: int = _d("batch_size")
    learning_rate: float = _d("learning_rate")
    optimizer: str = _d("optimizer")
    momentum: float = _d("momentum")  # used by sgd only
    seed: int = _d("seed")
    device: str = _d("device")  # where it trains: auto | cpu | gpu (workers/ml/device.py)
    class_weight: str | None = _d("class_weight")
    head: HeadConfig = field(default_factory=HeadConfig)
    unfreeze: tuple[str, ...] = ("block5",)
    early_stopping_patience: int | None = None
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)


# --- parsing helpers -------------------------------------------------------------------


def _number(value, path, lo, hi, *, integer=False, lo_open=False, hi_open=False):
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or (not integer and not math.isfinite(value)):
        raise ConfigError(path, f"must be {'an integer' if integer else 'a number'}")
    too_low = value <= lo if lo_open else value < lo
    too_high = value >= hi if hi_open else value > hi
    if too_low or too_high:
        left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ConfigError(path, f"must be in {left}{lo}, {hi}{right}, got {value}")
    return int(value) if integer else float(value)


def _value(data: dict, opt: Option, mode: str | None = None):
    """``data``'s value for ``opt`` (keyed by its name in its section), checked against the declaration."""
    value = data.get(opt.name, opt.default_for(mode) if mode else opt.default)
    if value is None and opt.nullable:
        return None
    if opt.kind in ("int", "number"):
        return _number(
            value, opt.key, opt.lo, opt.hi, integer=opt.kind == "int", lo_open=opt.lo_open, hi_open=opt.hi_open
        )
    if opt.kind == "choice":
        if value not in opt.choices:
            raise ConfigError(opt.key, f"must be one of {', '.join(opt.choices)}, got {value!r}")
        return value
    if opt.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(opt.key, "must be true or false")
        return value
    raise ValueError(f"{opt.key}: no plain reader for kind {opt.kind!r}")


def _reject_unknown(data, allowed, prefix=""):
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip(".") or "config", "must be an object")
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{prefix}{key}", "unknown option")


_AUG_FIELDS = tuple(AugmentationConfig.__dataclass_fields__)
# Top-level keys each mode reads (options.py says which); any other key would be silently
# ignored, so it is refused. A fine-tune continues its base: the base fixes head and weights.
MODE_KEYS = {mode: mode_keys(mode) for mode in MODES}
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


_TOP_KEYS = top_level_keys()


# A [low, high] zoom scale: both above 0 (a scale of 0 is no image), at most 10x out.
ZOOM_PAIR_BOUNDS = (0, 10)


def _parse_zoom(value, opt: Option):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(opt.key, "must be a number or a pair [low, high]")
        lo, hi = (_number(v, opt.key, *ZOOM_PAIR_BOUNDS, lo_open=True) for v in value)
        if lo > hi:
            raise ConfigError(opt.key, "low must not exceed high")
        return (lo, hi)
    return _number(value, opt.key, opt.lo, opt.hi, lo_open=opt.lo_open, hi_open=opt.hi_open)


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
    values = {}
    for opt in section_options("augmentation"):
        values[opt.name] = (
            _parse_zoom(data.get(opt.name, opt.default), opt) if opt.kind == "zoom" else _value(data, opt)
        )
    if values["rescale"] == 0:
        raise ConfigError(p + "rescale", "must not be 0")
    aug = AugmentationConfig(**values)
    if mode != "scratch":
        # A pretrained backbone expects raw 0-255 pixels through its own preprocess_input;
        # rescaling or standardising in front of it measured at chance level (docs/decisions.md, "Preprocessing inside the model").
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
    options = section_options("head")
    _reject_unknown(data, tuple(o.name for o in options), "head.")
    return HeadConfig(**{o.name: _value(data, o) for o in options})


def _parse_image_size(value, min_size):
    opt = option("image_size")
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(opt.key, "must be [height, width]")
    return tuple(_number(v, opt.key, max(min_size, opt.lo), opt.hi, integer=True) for v in value)


def parse_config(data: dict) -> ExperimentConfig:
    """Validate a JSON experiment config (workers/ml/options.py) into an ``ExperimentConfig``.

    Unknown keys and out-of-range values raise ``ConfigError`` naming the dotted key, e.g.
    ``augmentation.rotaton_range: unknown option``. ``base_experiment`` is accepted and
    ignored (the platform turns it into ``base_model_dir``).
    """
    _reject_unknown(data, _TOP_KEYS)
    if "mode" not in data:
        raise ConfigError("mode", f"is required (one of {', '.join(MODES)})")
    mode = _value(data, option("mode"))
    _refuse_unused(data, mode)
    backbone = _value(data, option("backbone"))
    spec = BACKBONE_SPECS[backbone]
    unfreeze = data.get("unfreeze") or [SPECS[backbone].default_unfreeze]
    if isinstance(unfreeze, str):
        unfreeze = [unfreeze]
    if not isinstance(unfreeze, (list, tuple)) or not all(isinstance(u, str) for u in unfreeze):
        raise ConfigError("unfreeze", "must be a block name or a list of block names")
    for name in unfreeze:
        if name not in spec["blocks"]:
            raise ConfigError("unfreeze", f"unknown block {name!r} for {backbone}; one of {', '.join(spec['blocks'])}")
    optimizer = _value(data, option("optimizer"), mode)
    if "momentum" in data and optimizer != "sgd":
        raise ConfigError("momentum", f"only the sgd optimizer uses momentum (this config uses {optimizer}); remove it")
    early = data.get("early_stopping")
    patience = None
    if early is not None:
        _reject_unknown(early, ("patience",), "early_stopping.")
        patience = _value(early, option("early_stopping.patience"))
    plain = {key: _value(data, option(key), mode) for key in ("weights", "epochs", "batch_size", "learning_rate")}
    return ExperimentConfig(
        mode=mode,
        backbone=backbone,
        image_size=_parse_image_size(data.get("image_size", option("image_size").default), spec["min_size"]),
        optimizer=optimizer,
        momentum=_value(data, option("momentum")),
        seed=_value(data, option("seed")),
        device=_value(data, option("device")),
        class_weight=_value(data, option("class_weight")),
        head=_parse_head(data.get("head")),
        unfreeze=tuple(unfreeze),
        early_stopping_patience=patience,
        augmentation=parse_augmentation(data.get("augmentation"), mode),
        **plain,
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

# float32 values kept per input pixel by the scratch convnet (backbones: registry.py).
_SCRATCH_ACTIVATIONS = {"infer": 64, "train": 80}
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
        terms["activations"] = ("batch_size", cfg.batch_size * _SCRATCH_ACTIVATIONS["train"] * pixels * 4)
        terms["dense weights"] = ("image_size", flat * 64 * 4 * 4)
        return terms
    backbone = SPECS[cfg.backbone]
    stride, channels = backbone.stride, backbone.channels
    features = -(-h // stride) * -(-w // stride) * channels
    head_inputs = channels if cfg.head.pooling == "avg" else features
    terms["head weights"] = ("head.units", head_inputs * cfg.head.units * 4 * 4)
    if cfg.mode == "bottleneck":
        per_pixel = backbone.activations["infer"]
        terms["feature extraction"] = ("image_size", _EXTRACTION_BATCH * per_pixel * pixels * 4)
        terms["cached features"] = ("image_size", n_images * features * 4)
        terms["head batch"] = ("batch_size", cfg.batch_size * (features + 2 * cfg.head.units) * 4)
    else:
        per_pixel = backbone.activations["train"]
        terms["activations"] = ("batch_size", cfg.batch_size * per_pixel * pixels * 4)
        terms["base weights"] = ("backbone", backbone.params * 4 * 4)
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
