"""The new-experiment form: its config fields are built from the option declarations
(workers/ml/options.py), so ranges, defaults, help texts, the modes that use a field and whether
it is "Advanced" are those the engine validates with.

Validation of values is the engine's (`parse_config(..., collect=True)`, via the service); the
form only parses types, so the rules live in one place. Every error comes back at once, each shown
beside its field and listed, under the field's label, in the summary at the top of the page.
"""

import math

from django import forms

from workers.ml.options import MODES, OPTIONS, Option, option, section_options

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
_ERROR_FIELDS = {o.key: o.field_name for o in OPTIONS}
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


def _always_read(opt: Option) -> bool:
    """Whether every config reads ``opt``: only then may the form require it for every mode."""
    return set(opt.modes) == set(MODES) and not opt.requires


def config_field(opt: Option) -> forms.Field:
    """The form field of one declared option (types only: the engine checks values).

    A field that some modes (or optimizers) do not read is not required here: the page disables
    it where it is not read, so it is not sent; ``ExperimentForm.clean`` requires it where it is.
    """
    common = {"help_text": _help(opt), "label": opt.label or None}
    required = not opt.nullable and _always_read(opt)
    if opt.kind == "bool":
        field = forms.BooleanField(required=False, initial=opt.default, **common)
    elif opt.kind == "choice" and opt.nullable:  # "" stands for None: the option is off
        choices = [("", "none")] + _choices(c for c in opt.choices if c is not None)
        field = forms.ChoiceField(choices=choices, required=False, initial="", **common)
    elif opt.kind == "choice":
        field = forms.ChoiceField(choices=_choices(opt.choices), initial=opt.default, required=required, **common)
    elif opt.kind == "int":
        field = forms.IntegerField(required=required, initial=opt.default, **common)
    else:  # number, and zoom as one number (the API also takes a [low, high] pair)
        field = forms.FloatField(required=required, initial=opt.default, **common)
    return _declared(field, opt)


def _declared(field: forms.Field, opt: Option) -> forms.Field:
    """Carry the declaration's modes, requirement and advanced flag to the template (data attributes)."""
    field.modes = "" if set(opt.modes) == set(MODES) else " ".join(opt.modes)
    field.requires = f"{opt.requires[0]}={' '.join(opt.requires[1])}" if opt.requires else ""
    field.advanced = opt.advanced
    return field


class BaseExperimentSelect(forms.Select):
    """Each base carries its dataset, backbone and image size, so the page can list only the bases a
    fine-tune of the chosen dataset and backbone can start from (the service checks it again)."""

    def create_option(self, name, value, *args, **kwargs):
        choice = super().create_option(name, value, *args, **kwargs)
        base = getattr(value, "instance", None)
        if base is not None:
            size = base.config.get("image_size") or []
            choice["attrs"].update(
                {
                    "data-dataset": str(base.dataset_id),
                    "data-backbone": base.backbone,
                    "data-image-size": " ".join(str(v) for v in size),
                }
            )
        return choice


class BaseExperimentField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        size = "\u00d7".join(str(v) for v in obj.config.get("image_size") or [])
        return f"{obj.name} (dataset v{obj.dataset.version}, {obj.backbone}, {size})"


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=120)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    dataset = forms.ModelChoiceField(queryset=None, help_text="A ready dataset version of this project.")
    image_height = forms.IntegerField(initial=150, help_text=_help(option("image_size")))
    image_width = forms.IntegerField(initial=150)
    base_experiment = _declared(
        BaseExperimentField(
            queryset=None,
            required=False,
            widget=BaseExperimentSelect,
            help_text=option("base_experiment").help + " Only those on the chosen dataset are listed.",
        ),
        option("base_experiment"),
    )
    unfreeze = _declared(
        forms.CharField(required=False, initial="", help_text="Comma-separated: " + option("unfreeze").help),
        option("unfreeze"),
    )

    # Options with a field of their own kind above; every other declared option gets config_field().
    _SPECIAL = ("image_size", "base_experiment", "unfreeze")
    _EXPERIMENT = ("name", "dataset", "mode", "backbone", "weights", "base_experiment", "unfreeze")

    def __init__(self, *args, project, datasets, bases, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["dataset"].queryset = datasets
        self.fields["base_experiment"].queryset = bases
        for opt in OPTIONS:
            if opt.key not in self._SPECIAL:
                self.fields[opt.field_name] = config_field(opt)

    # --- the page's sections, in page order ---------------------------------------------------

    def experiment_fields(self):
        return [self[k] for k in self._EXPERIMENT]

    def training_fields(self):
        names = ["image_height", "image_width"] + [
            o.field_name
            for o in OPTIONS
            if o.section != "augmentation" and not o.advanced and o.field_name not in (*self._EXPERIMENT, "image_size")
        ]
        return [self[k] for k in names]

    def augmentation_fields(self):
        return [self[o.field_name] for o in section_options("augmentation") if not o.advanced]

    def augmentation_modes(self) -> str:
        """The modes that take any augmentation option: the section shows only in those."""
        return " ".join(m for m in MODES if any(m in o.modes for o in section_options("augmentation")))

    def advanced_fields(self):
        return [self["notes"]] + [self[o.field_name] for o in OPTIONS if o.advanced]

    def estimate_query(self) -> dict:
        """The values the duration estimate reads, as the page shows them now."""
        names = ("mode", "backbone", "image_height", "image_width", "epochs", "dataset")
        values = {name: self[name].value() for name in names}
        values["mode"] = values["mode"] or self.fields["mode"].choices[0][0]  # what the select shows
        return values

    def advanced_has_errors(self) -> bool:
        return any(f.errors for f in self.advanced_fields())

    def error_summary(self) -> list[dict]:
        """Every error, in page order: {"id": the field's input id (None: the whole form), "label", "message"}."""
        items = [{"id": None, "label": "", "message": m} for m in self.non_field_errors()]
        for section in (self.experiment_fields, self.training_fields, self.augmentation_fields, self.advanced_fields):
            for field in section():
                items += [{"id": field.id_for_label, "label": field.label, "message": m} for m in field.errors]
        return items

    def preset_values(self, presets: dict) -> dict:
        """Each preset as every field's value (the page fills the form in place from it); the dataset
        and notes stay as chosen, and the name too once one is typed."""
        values = {}
        for key, preset in presets.items():
            shown = ExperimentForm(
                initial=preset["initial"],
                project=self.project,
                datasets=self.fields["dataset"].queryset,
                bases=self.fields["base_experiment"].queryset,
            )
            fields = {
                name: shown[name].value()
                for name in shown.fields
                if name not in ("dataset", "base_experiment", "notes")
            }
            values[key] = {k: ("" if v is None else v) for k, v in fields.items()}
        return values

    # --- validation --------------------------------------------------------------------------

    @staticmethod
    def _reads(opt: Option, mode: str, data: dict) -> bool:
        """Whether a config of ``mode`` (with ``data``'s other values) reads ``opt``."""
        if mode not in opt.modes:
            return False
        return not opt.requires or data.get(opt.requires[0]) in opt.requires[1]

    def clean(self):
        data = super().clean()
        mode = data.get("mode")
        for opt in OPTIONS:
            name = opt.field_name
            if not mode or opt.key in self._SPECIAL or _always_read(opt) or opt.nullable or opt.kind == "bool":
                continue
            if name not in self.errors and data.get(name) in (None, "") and self._reads(opt, mode, data):
                self.add_error(name, self.fields[name].error_messages["required"])
        return data

    def to_config(self) -> dict | None:
        """The config of the chosen mode from the fields that parsed (None without a mode).

        Fields the mode does not read are left out; one that was sent changed from what the page
        showed is an error beside it (the engine would refuse the key), never silently dropped.
        Augmentation options all go to the engine, which says why a mode refuses each.
        """
        d = self.cleaned_data
        mode = d.get("mode")
        if not mode:
            return None
        config = {"mode": mode}
        if d.get("image_height") is not None and d.get("image_width") is not None:
            config["image_size"] = [d["image_height"], d["image_width"]]
        for opt in OPTIONS:
            name = opt.field_name
            if opt.key == "mode" or opt.key == "image_size":
                continue
            if opt.section != "augmentation" and not self._reads(opt, mode, d):
                if mode not in opt.modes and self._sent(name) and self._changed_from_default(name):
                    self.add_error(name, f"Not used in {mode} mode; leave it at its default or pick another mode.")
                continue
            value = d.get(name)
            if value is None or value == "":
                continue
            if opt.key == "unfreeze":
                value = [b.strip() for b in value.split(",") if b.strip()]
                if not value:
                    continue
            elif opt.key == "base_experiment":
                value = value.pk
            if opt.section:
                config.setdefault(opt.section, {})[opt.name] = value
            else:
                config[opt.key] = value
        return config

    def _sent(self, name: str) -> bool:
        return self.add_prefix(name) in self.data

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
        """Show a ServiceError beside the field it names, or each of its ``errors`` beside theirs
        (config keys mapped to form fields); one the form has no field for goes to the top."""
        for item in getattr(exc, "errors", None) or [{"field": exc.field, "message": exc.message}]:
            key = _ERROR_FIELDS.get(item["field"], item["field"])
            name = key if key in self.fields else None
            if name and self.has_error(name) and item["message"] in self.errors[name]:
                continue
            named = name or not item["field"]
            self.add_error(name, item["message"] if named else f"{item['field']}: {item['message']}")
