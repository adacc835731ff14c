"""Experiment configuration: parsing, validation and serialisation.

This module must stay free of TensorFlow/Keras imports: the web app validates configs on
the way in and must not pay TF's import cost (docs/decisions.md, "TensorFlow only in the engine").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from workers.ml.errors import ConfigError, ConfigErrors
from workers.ml.options import (  # noqa: F401  (re-exported: callers import the vocabulary from here)
    DEVICES,
    FILL_MODES,
    MODES,
    OPTIMIZERS,
    OPTIONS,
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
    precision: str = _d(
        "precision"
    )  # the frozen base's arithmetic: auto | float32 | bfloat16 (workers/ml/precision.py)
    class_weight: str | None = _d("class_weight")
    head: HeadConfig = field(default_factory=HeadConfig)
    unfreeze: tuple[str, ...] = ("block5",)
    early_stopping_patience: int | None = None
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)


# --- parsing helpers -------------------------------------------------------------------


class _Errors:
    """Where parsing puts each ConfigError: raised at once, or kept to report every one together
    (``parse_config(..., collect=True)``, which the form uses to show all of them at once)."""

    def __init__(self, collect: bool):
        self.collect = collect
        self.items: list[ConfigError] = []

    def add(self, exc: ConfigError) -> None:
        if not self.collect:
            raise exc
        self.items.append(exc)

    def check(self, fn, *args, fallback=None, **kwargs):
        """``fn(*args, **kwargs)``; on a ConfigError, record it and go on with ``fallback``."""
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            self.add(exc)
            return fallback


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


def _reject_unknown(data, allowed, prefix="", errors: _Errors | None = None) -> bool:
    """Record each key of ``data`` not in ``allowed``; False (nothing else to read) when it is no object."""
    errors = errors or _Errors(collect=False)
    if not isinstance(data, dict):
        errors.add(ConfigError(prefix.rstrip(".") or "config", "must be an object"))
        return False
    for key in data:
        if key not in allowed:
            errors.add(ConfigError(f"{prefix}{key}", "unknown option"))
    return True


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


def _refuse_unused(data: dict, mode: str, errors: _Errors) -> None:
    for key in data:
        if key in _TOP_KEYS and key not in MODE_KEYS[mode]:
            why_weights = (
                "a fine-tune continues its base model's weights"
                if mode == "finetune"
                else "scratch mode starts from random weights"
            )
            reason = _UNUSED_BECAUSE[key].format(mode=mode, why_weights=why_weights)
            errors.add(ConfigError(key, f"not used in {mode} mode ({reason}); remove it"))


def _refuse_unrequired(data: dict, values: dict, errors: _Errors) -> None:
    """Options read only when another has given values (options.py ``requires``, e.g. sgd's momentum)."""
    for opt in OPTIONS:
        if opt.requires and opt.section is None and opt.key in data:
            other, allowed = opt.requires
            if values.get(other) not in allowed:
                errors.add(
                    ConfigError(
                        opt.key,
                        f"only the {' or '.join(allowed)} {other} uses {opt.name} "
                        f"(this config uses {values.get(other)}); remove it",
                    )
                )


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


def _unused_augmentation(opt: Option, mode: str) -> str:
    if opt.modes == ("scratch",):
        # A pretrained backbone expects raw 0-255 pixels through its own preprocess_input;
        # rescaling or standardising in front of it measured at chance level (docs/decisions.md, "Preprocessing inside the model").
        return (
            f"not allowed in {mode} mode: the backbone applies its own preprocessing to raw 0-255 pixels; "
            "use it in scratch mode only"
        )
    return "bottleneck mode computes features once, so it cannot augment; use finetune or scratch mode for augmentation"


def parse_augmentation(data: dict | None, mode: str, *, errors: _Errors | None = None) -> AugmentationConfig:
    """Validate the ``augmentation`` section; mode decides which options are allowed."""
    errors = errors or _Errors(collect=False)
    data = {} if data is None else data
    p = "augmentation."
    for key in ("zca_whitening", "zca_epsilon"):
        if isinstance(data, dict) and key in data:
            errors.add(
                ConfigError(
                    p + key,
                    "ZCA whitening is not supported (Keras 3 has no layer for "
                    "it and it does not scale to full-size images); remove it",
                )
            )
    if not _reject_unknown(data, (*_AUG_FIELDS, "zca_whitening", "zca_epsilon"), p, errors):
        return AugmentationConfig()
    values = {}
    for opt in section_options("augmentation"):
        if opt.kind == "zoom":
            values[opt.name] = errors.check(_parse_zoom, data.get(opt.name, opt.default), opt, fallback=opt.default)
        else:
            values[opt.name] = errors.check(_value, data, opt, fallback=opt.default)
    if values["rescale"] == 0:
        errors.add(ConfigError(p + "rescale", "must not be 0"))
        values["rescale"] = None
    default = AugmentationConfig()
    for opt in section_options("augmentation"):
        # An option this mode would ignore, changed from its default, is refused rather than dropped.
        value = values[opt.name]
        unchanged = (
            AugmentationConfig(zoom_range=value).zoom_bounds == default.zoom_bounds
            if opt.kind == "zoom"
            else value == getattr(default, opt.name)
        )
        if mode not in opt.modes and opt.name in data and not unchanged:
            errors.add(ConfigError(opt.key, _unused_augmentation(opt, mode)))
    return AugmentationConfig(**values)


def _parse_head(data: dict | None, errors: _Errors) -> HeadConfig:
    data = {} if data is None else data
    options = section_options("head")
    if not _reject_unknown(data, tuple(o.name for o in options), "head.", errors):
        return HeadConfig()
    return HeadConfig(**{o.name: errors.check(_value, data, o, fallback=o.default) for o in options})


def _parse_image_size(value, min_size):
    opt = option("image_size")
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(opt.key, "must be [height, width]")
    return tuple(_number(v, opt.key, max(min_size, opt.lo), opt.hi, integer=True) for v in value)


def _parse_unfreeze(data: dict, backbone: str) -> tuple[str, ...]:
    unfreeze = data.get("unfreeze") or [SPECS[backbone].default_unfreeze]
    if isinstance(unfreeze, str):
        unfreeze = [unfreeze]
    if not isinstance(unfreeze, (list, tuple)) or not all(isinstance(u, str) for u in unfreeze):
        raise ConfigError("unfreeze", "must be a block name or a list of block names")
    blocks = BACKBONE_SPECS[backbone]["blocks"]
    for name in unfreeze:
        if name not in blocks:
            raise ConfigError("unfreeze", f"unknown block {name!r} for {backbone}; one of {', '.join(blocks)}")
    return tuple(unfreeze)


def _parse_early_stopping(early, errors: _Errors) -> int | None:
    if early is None or not _reject_unknown(early, ("patience",), "early_stopping.", errors):
        return None
    return errors.check(_value, early, option("early_stopping.patience"))


def parse_config(data: dict, *, collect: bool = False) -> ExperimentConfig:
    """Validate a JSON experiment config (workers/ml/options.py) into an ``ExperimentConfig``.

    Unknown keys and out-of-range values raise ``ConfigError`` naming the dotted key, e.g.
    ``augmentation.rotaton_range: unknown option``. With ``collect``, every problem is found
    before raising ``ConfigErrors``, whose ``errors`` lists them all (one per key and problem).
    ``base_experiment`` is accepted and ignored (the platform turns it into ``base_model_dir``).
    """
    errors = _Errors(collect)
    cfg = _parse(data, errors)
    if errors.items:
        raise ConfigErrors(errors.items)
    return cfg


def _parse(data, errors: _Errors) -> ExperimentConfig | None:
    if not _reject_unknown(data, _TOP_KEYS, "", errors):
        return None
    if "mode" not in data:
        errors.add(ConfigError("mode", f"is required (one of {', '.join(MODES)})"))
        return None
    mode = errors.check(_value, data, option("mode"))
    if mode is None:
        return None  # every other rule depends on the mode
    _refuse_unused(data, mode, errors)

    def read(key: str):
        opt = option(key)
        return errors.check(_value, data, opt, mode, fallback=opt.default_for(mode))

    backbone = read("backbone")
    optimizer = read("optimizer")
    _refuse_unrequired(data, {"optimizer": optimizer}, errors)
    size_default = option("image_size").default
    return ExperimentConfig(
        mode=mode,
        backbone=backbone,
        weights=read("weights"),
        image_size=errors.check(
            _parse_image_size, data.get("image_size", size_default), SPECS[backbone].min_size, fallback=size_default
        ),
        epochs=read("epochs"),
        batch_size=read("batch_size"),
        learning_rate=read("learning_rate"),
        optimizer=optimizer,
        momentum=read("momentum"),
        seed=read("seed"),
        device=read("device"),
        precision=read("precision"),
        class_weight=read("class_weight"),
        head=_parse_head(data.get("head"), errors),
        unfreeze=errors.check(_parse_unfreeze, data, backbone, fallback=(SPECS[backbone].default_unfreeze,)),
        early_stopping_patience=_parse_early_stopping(data.get("early_stopping"), errors),
        augmentation=parse_augmentation(data.get("augmentation"), mode, errors=errors),
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
