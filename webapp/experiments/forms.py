"""The new-experiment form: one field per config option (DESIGN §5), turned into the config dict.

Validation of values is the engine's (`parse_config`, via the service); the form only parses
types, so the rules live in one place and errors come back named by config key.
"""

import math

from django import forms

from workers.ml.config import BACKBONE_SPECS, FILL_MODES, MODE_KEYS, MODES, OPTIMIZERS

AUGMENTATION_FIELDS = {
    "rotation_range": "Degrees, 0-360: images are rotated by a random angle in ±this.",
    "width_shift_range": "Fraction of the width, 0-1: random horizontal shift.",
    "height_shift_range": "Fraction of the height, 0-1: random vertical shift.",
    "shear_range": "Degrees, 0-80: random shear angle, converted for Keras. Keras 1 and 2 took radians: "
    "the blog's shear_range=0.2 is 11.46 degrees.",
    "zoom_range": "0-1: random zoom in [1-z, 1+z].",
    "channel_shift_range": "0-255: random shift of each colour channel's intensity.",
    "fill_mode": "How pixels outside the shifted or rotated image are filled.",
    "cval": "Fill value when fill mode is 'constant'.",
    "horizontal_flip": "Randomly mirror images left-right.",
    "vertical_flip": "Randomly flip images upside down.",
    "rescale": "Multiply pixels by this (e.g. 0.00392 for 1/255). Scratch mode only: pretrained "
    "backbones preprocess raw 0-255 pixels themselves.",
    "featurewise_center": "Subtract the training set's mean pixel (scratch mode only).",
    "featurewise_std_normalization": "Divide by the training set's std (scratch mode only).",
    "samplewise_center": "Subtract each image's own mean (scratch mode only).",
    "samplewise_std_normalization": "Divide each image by its own std (scratch mode only).",
}
_AUG_BOOLEANS = {k for k in AUGMENTATION_FIELDS if k.endswith(("_flip", "_center", "_normalization"))}

# The blog's scripts as published (Keras 1): classifier_from_little_data_script_1.py (small
# convnet), _2.py (bottleneck features) and _3.py (fine-tuning). Its ImageDataGenerator took
# shear_range in radians; ours is in degrees, so 0.2 rad is written as its degrees here.
BLOG_SHEAR_DEGREES = round(math.degrees(0.2), 4)

PRESETS = {
    "blog-bottleneck": {
        "label": "Blog: bottleneck features",
        "initial": {
            "name": "Bottleneck features",
            "mode": "bottleneck",
            "backbone": "vgg16",
            "weights": "imagenet",
            "epochs": 50,
            "batch_size": 16,
            "learning_rate": 1e-3,
            "optimizer": "rmsprop",
            "head_units": 256,
            "head_dropout": 0.5,
        },
    },
    "blog-finetune": {
        "label": "Blog: fine-tune the top block",
        "initial": {
            "name": "Fine-tune block5",
            "mode": "finetune",
            "backbone": "vgg16",
            "weights": "imagenet",
            "epochs": 50,
            "batch_size": 16,
            "learning_rate": 1e-4,
            "optimizer": "sgd",
            "momentum": 0.9,
            "unfreeze": "block5",
            "shear_range": BLOG_SHEAR_DEGREES,
            "zoom_range": 0.2,
            "horizontal_flip": True,
        },
    },
    "blog-scratch": {
        "label": "Blog: small convnet from scratch",
        "initial": {
            "name": "Small convnet",
            "mode": "scratch",
            "epochs": 50,
            "batch_size": 16,
            "learning_rate": 1e-3,
            "optimizer": "rmsprop",
            "rescale": round(1 / 255, 8),
            "shear_range": BLOG_SHEAR_DEGREES,
            "zoom_range": 0.2,
            "horizontal_flip": True,
        },
    },
}

# Config keys (as ConfigError names them) to the form field that shows the error.
_ERROR_FIELDS = {
    "image_size": "image_height",
    "head.units": "head_units",
    "head.dropout": "head_dropout",
    "head.pooling": "head_pooling",
    "head.normalize": "head_normalize",
    "early_stopping.patience": "early_stopping_patience",
    "config": None,
}


def _choices(values):
    return [(v, v) for v in values]


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=120)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    dataset = forms.ModelChoiceField(queryset=None, help_text="A ready dataset version of this project.")
    mode = forms.ChoiceField(
        choices=_choices(MODES),
        help_text="bottleneck: train a head on cached features of a "
        "frozen base; finetune: continue a bottleneck model with its top blocks unfrozen; "
        "scratch: a small convnet, no pretrained base.",
    )
    backbone = forms.ChoiceField(choices=_choices(BACKBONE_SPECS), initial="vgg16")
    weights = forms.ChoiceField(
        choices=_choices(["imagenet", "none"]),
        initial="imagenet",
        help_text="imagenet: pretrained (from TL_WEIGHTS_DIR or downloaded); none: random.",
    )
    image_height = forms.IntegerField(initial=150, help_text="Pixels; every image is resized to this (min 32).")
    image_width = forms.IntegerField(initial=150)
    epochs = forms.IntegerField(initial=50)
    batch_size = forms.IntegerField(initial=16)
    learning_rate = forms.FloatField(initial=1e-3)
    optimizer = forms.ChoiceField(choices=_choices(OPTIMIZERS), initial="rmsprop")
    momentum = forms.FloatField(initial=0.9, help_text="SGD only.")
    seed = forms.IntegerField(initial=1337, help_text="Same seed, same data and settings: same result.")
    head_units = forms.IntegerField(initial=256, label="Head units")
    head_dropout = forms.FloatField(initial=0.5, label="Head dropout")
    head_pooling = forms.ChoiceField(
        choices=_choices(["flatten", "avg"]),
        initial="flatten",
        help_text="flatten is the blog's; avg (global average) has far fewer weights.",
    )
    head_normalize = forms.BooleanField(
        initial=True,
        required=False,
        label="Normalise features before the head",
        help_text="Recommended: raw VGG16 features are large and heavy-tailed.",
    )
    base_experiment = forms.ModelChoiceField(
        queryset=None,
        required=False,
        help_text="Finetune only: a succeeded bottleneck experiment on the same dataset, backbone and image size.",
    )
    unfreeze = forms.CharField(
        required=False,
        initial="",
        help_text="Finetune only: comma-separated blocks to train (vgg16: block1-block5; mobilenet_v2: stem, "
        "block_1-block_16, top). Empty: the backbone's last block (vgg16 block5, mobilenet_v2 top).",
    )
    early_stopping_patience = forms.IntegerField(
        required=False,
        help_text="Stop after this many epochs without a better validation loss; the best epoch is kept. Empty: off.",
    )

    def __init__(self, *args, project, datasets, bases, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["dataset"].queryset = datasets
        self.fields["base_experiment"].queryset = bases
        for key, help_text in AUGMENTATION_FIELDS.items():
            if key in _AUG_BOOLEANS:
                field = forms.BooleanField(required=False, help_text=help_text)
            elif key == "fill_mode":
                field = forms.ChoiceField(choices=_choices(FILL_MODES), initial="nearest", help_text=help_text)
            elif key == "rescale":
                field = forms.FloatField(required=False, help_text=help_text)
            else:
                field = forms.FloatField(initial=0.0, help_text=help_text)
            self.fields[key] = field

    def experiment_fields(self):
        names = ["name", "notes", "dataset", "mode", "backbone", "weights", "base_experiment", "unfreeze"]
        return [self[k] for k in names]

    def training_fields(self):
        names = [
            "image_height",
            "image_width",
            "epochs",
            "batch_size",
            "learning_rate",
            "optimizer",
            "momentum",
            "seed",
            "early_stopping_patience",
            "head_units",
            "head_dropout",
            "head_pooling",
            "head_normalize",
        ]
        return [self[k] for k in names]

    def augmentation_fields(self):
        return [self[k] for k in AUGMENTATION_FIELDS]

    # Form fields behind each config key that a mode may not use (see MODE_KEYS).
    _FIELDS_OF_KEY = {
        "backbone": ("backbone",),
        "weights": ("weights",),
        "head": ("head_units", "head_dropout", "head_pooling", "head_normalize"),
        "unfreeze": ("unfreeze",),
        "base_experiment": ("base_experiment",),
    }

    def to_config(self) -> dict:
        """The config of the chosen mode: fields the mode does not use are left out.

        A field that the mode does not use but that was changed from its default is an error
        beside that field (the engine would refuse the key), never silently dropped.
        """
        d = self.cleaned_data
        mode = d["mode"]
        config = {
            "mode": mode,
            "backbone": d["backbone"],
            "weights": d["weights"],
            "image_size": [d["image_height"], d["image_width"]],
            "epochs": d["epochs"],
            "batch_size": d["batch_size"],
            "learning_rate": d["learning_rate"],
            "optimizer": d["optimizer"],
            "seed": d["seed"],
            "head": {
                "units": d["head_units"],
                "dropout": d["head_dropout"],
                "pooling": d["head_pooling"],
                "normalize": d["head_normalize"],
            },
            "augmentation": {k: d[k] for k in AUGMENTATION_FIELDS if d.get(k) is not None},
        }
        if d["optimizer"] == "sgd":
            config["momentum"] = d["momentum"]
        if d["early_stopping_patience"] is not None:
            config["early_stopping"] = {"patience": d["early_stopping_patience"]}
        unfreeze = [b.strip() for b in (d["unfreeze"] or "").split(",") if b.strip()]
        if unfreeze:
            config["unfreeze"] = unfreeze
        if d["base_experiment"]:
            config["base_experiment"] = d["base_experiment"].pk
        for key, fields in self._FIELDS_OF_KEY.items():
            if key in MODE_KEYS[mode]:
                continue
            config.pop(key, None)
            for name in fields:
                if self._changed_from_default(name):
                    self.add_error(name, f"Not used in {mode} mode; leave it at its default or pick another mode.")
        return config

    def _changed_from_default(self, name: str) -> bool:
        """True when the user changed ``name`` from what the page showed (a preset's value or
        the field's default)."""
        value = self.cleaned_data.get(name)
        initial = self.get_initial_for_field(self.fields[name], name)
        value, initial = getattr(value, "pk", value), getattr(initial, "pk", initial)
        if value in (None, "") and initial in (None, ""):
            return False
        return value != initial

    def add_service_error(self, exc) -> None:
        """Show a ServiceError beside the field it names (config keys mapped to form fields)."""
        key = exc.field
        if key and key.startswith("augmentation."):
            key = key.split(".", 1)[1]
        key = _ERROR_FIELDS.get(key, key)
        self.add_error(key if key in self.fields else None, exc.message)
