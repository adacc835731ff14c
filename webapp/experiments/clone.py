"""'Clone with changes': the new-experiment form's initial values taken from an experiment's stored config.

The config (workers.ml.config.config_to_dict) names options by key; the form names its fields by
`Option.field_name`, so the mapping is the option declarations' own (workers/ml/options.py).
"""

from workers.ml.options import OPTIONS

from .models import Experiment

# Options the form shows with fields of a kind of their own (see forms.ExperimentForm._SPECIAL).
_SPECIAL = ("image_size", "base_experiment", "unfreeze")


def clone_initial(experiment: Experiment) -> tuple[dict, list[str]]:
    """The form's initial values for a copy of `experiment`, named "<name> (copy)", and notes on
    what the form cannot carry over (to show to the user)."""
    config = experiment.config or {}
    name = f"{experiment.name} (copy)"
    initial = {
        "name": name if len(name) <= 120 else experiment.name[: 120 - len(" (copy)")].rstrip() + " (copy)",
        "notes": experiment.notes,
        "dataset": experiment.dataset_id,
    }
    size = config.get("image_size")
    if isinstance(size, list) and len(size) == 2:
        initial["image_height"], initial["image_width"] = size
    if experiment.base_experiment_id:
        initial["base_experiment"] = experiment.base_experiment_id
    if config.get("unfreeze"):
        initial["unfreeze"] = ", ".join(config["unfreeze"])
    left_out = []
    for opt in OPTIONS:
        source = config.get(opt.section) if opt.section else config
        if opt.key in _SPECIAL or not isinstance(source, dict) or opt.name not in source:
            continue
        value = source[opt.name]
        if opt.kind == "zoom" and isinstance(value, list):
            # The form takes one zoom fraction; a [low, high] pair is an API-only setting.
            left_out.append(f"{opt.key} {value} (the form takes one fraction: set it again)")
            continue
        initial[opt.field_name] = "" if value is None and opt.kind == "choice" else value
    return initial, left_out
