"""The new-experiment form: its config fields are built from the option declarations
(workers/ml/options.py), so ranges, defaults and help texts are those the engine validates with.

Validation of values is the engine's (`parse_config`, via the service); the form only parses
types, so the rules live in one place and errors come back named by config key.
"""

import math

from django import forms

from workers.ml.config import MODE_KEYS
from workers.ml.options import OPTIONS, Option, option, section_options

# Form field name -> the augmentation option it edits (the preview and the template use them).
AUGMENTATION_FIELDS = {o.field_name: o.help for o in section_options("augmentation")}

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
_ERROR_FIELDS = {o.key: o.field_name for o in OPTIONS if o.section in ("head", "early_stopping")}
_ERROR_FIELDS.update({"image_size": "image_height", "config": None})


def _choices(values):
    return [(v, v) for v in values]


def _help(opt: Option) -> str:
    """The declared help, led by the unit and the range where they say something."""
    lead = []
    if opt.unit:
        lead.append(opt.unit[0].upper() + opt.unit[1:])
    if opt.kind in ("int", "number") and opt.lo is not None and abs(opt.hi) < 1e5:
        lead.append(opt.bounds_text())
    return f"{', '.join(lead)}: {opt.help}" if lead else opt.help


def config_field(opt: Option) -> forms.Field:
    """The form field of one declared option (types only: the engine checks values)."""
    common = {"help_text": _help(opt), "label": opt.label or None}
    if opt.kind == "bool":
        return forms.BooleanField(required=False, initial=opt.default, **common)
    if opt.kind == "choice" and opt.nullable:  # "" stands for None: the option is off
        choices = [("", "none")] + _choices(c for c in opt.choices if c is not None)
        return forms.ChoiceField(choices=choices, required=False, initial="", **common)
    if opt.kind == "choice":
        return forms.ChoiceField(choices=_choices(opt.choices), initial=opt.default, **common)
    if opt.kind == "int":
        return forms.IntegerField(required=not opt.nullable, initial=opt.default, **common)
    # number, and zoom as one number (the API also takes a [low, high] pair)
    return forms.FloatField(required=not opt.nullable, initial=opt.default, **common)


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=120)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    dataset = forms.ModelChoiceField(queryset=None, help_text="A ready dataset version of this project.")
    image_height = forms.IntegerField(initial=150, help_text=_help(option("image_size")))
    image_width = forms.IntegerField(initial=150)
    base_experiment = forms.ModelChoiceField(
        queryset=None, required=False, help_text="Finetune only: " + option("base_experiment").help
    )
    unfreeze = forms.CharField(
        required=False, initial="", help_text="Finetune only, comma-separated: " + option("unfreeze").help
    )

    # Options with a field of their own kind above; every other declared option gets config_field().
    _SPECIAL = ("image_size", "base_experiment", "unfreeze")

    def __init__(self, *args, project, datasets, bases, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["dataset"].queryset = datasets
        self.fields["base_experiment"].queryset = bases
        for opt in OPTIONS:
            if opt.key not in self._SPECIAL:
                self.fields[opt.field_name] = config_field(opt)

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
            "device",
            "class_weight",
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
            "device": d["device"],
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
        if d.get("class_weight"):
            config["class_weight"] = d["class_weight"]
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
