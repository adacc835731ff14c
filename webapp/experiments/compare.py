"""Compare experiments of one project: overlaid curves, the config keys that differ, final metrics."""

import json

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from webapp.projects.selectors import project_for_user

from . import selectors
from .models import EpochMetric, TrainingJob

# Colours for the overlaid curves, in selection order (colour-blind friendly, Okabe-Ito).
PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"]
MAX_COMPARED = len(PALETTE)
_MISSING = object()


def flatten_config(config: dict, prefix: str = "") -> dict:
    """`{"augmentation": {"rotation_range": 40}}` -> `{"augmentation.rotation_range": 40}`.

    Lists stay whole (an image size is one value); an empty dict is kept as a value.
    """
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_diff(configs: list[dict]) -> list[dict]:
    """The flattened keys whose values are not all equal, as rows `{"key", "values"}` sorted by key.

    `values` has one entry per config, in order; a key a config lacks is None there. Equal
    numbers of different types (1 and 1.0) count as equal; True and 1 do not.
    """
    flats = [flatten_config(config or {}) for config in configs]
    keys = sorted({key for flat in flats for key in flat})
    rows = []
    for key in keys:
        raw = [flat.get(key, _MISSING) for flat in flats]
        if len({_comparable(value) for value in raw}) > 1:
            rows.append({"key": key, "values": [None if value is _MISSING else value for value in raw]})
    return rows


def _comparable(value):
    if value is _MISSING:
        return ("missing",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, list):
        return ("list", tuple(_comparable(item) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _comparable(v)) for k, v in value.items())))
    return (type(value).__name__, value)


def format_value(value) -> str:
    """A config value as the table shows it: strings bare, everything else as JSON, missing as a dash."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _selected_ids(request) -> list[int]:
    ids = []
    for raw in request.GET.getlist("experiment"):
        if raw.isdigit() and int(raw) not in ids:
            ids.append(int(raw))
    return ids


def _latest_jobs(experiments) -> dict[int, TrainingJob]:
    """Each experiment's latest job, as selectors.experiments_for_project chose it (one rule for "latest")."""
    jobs = TrainingJob.objects.in_bulk([e.latest_job_id for e in experiments if e.latest_job_id])
    return {e.pk: jobs[e.latest_job_id] for e in experiments if e.latest_job_id in jobs}


def _histories(jobs) -> dict[int, list[dict]]:
    histories = {job.pk: [] for job in jobs}
    rows = EpochMetric.objects.filter(job__in=jobs).order_by("job_id", "epoch")
    for row in rows.values("job_id", "epoch", "loss", "accuracy", "val_loss", "val_accuracy"):
        histories[row.pop("job_id")].append(row)
    return histories


def _final_metrics(job: TrainingJob | None, history: list[dict]) -> dict:
    last = history[-1] if history else {}
    result = (job.result if job else None) or {}
    evaluation = result.get("evaluation") or {}
    return {
        "status": job.status if job else "not run",
        "epochs": len(history),
        "best_epoch": result.get("best_epoch"),
        "loss": last.get("loss"),
        "accuracy": last.get("accuracy"),
        "val_loss": last.get("val_loss"),
        "val_accuracy": last.get("val_accuracy"),
        "eval_accuracy": evaluation.get("accuracy"),
        "versus_base": selectors.versus_base(job),
    }


def paired_differences(columns: list[dict]) -> list[dict]:
    """Each experiment against the first one picked, where both were scored on the same images:
    the accuracy difference with a paired bootstrap 95% interval (workers.ml.stats)."""
    from workers.ml.stats import describe_difference, paired_bootstrap_difference

    scored = [((c["job"].result or {}).get("scored") if c["job"] else None) for c in columns]
    first = scored[0] if scored else None
    rows = []
    for column, other in zip(columns[1:], scored[1:], strict=True):
        name_a, name_b = columns[0]["experiment"].name, column["experiment"].name
        same = bool(first and other and first["images"] == other["images"] and first["truth"] == other["truth"])
        if not same:
            rows.append({"experiment": column["experiment"], "text": None, "clear": None})
            continue
        result = paired_bootstrap_difference(first["truth"], first["predicted"], other["predicted"], seed=0)
        text = describe_difference(result, a=name_a, b=name_b)
        rows.append({"experiment": column["experiment"], "text": text, "clear": result["clear"], **result})
    return rows


@login_required
def compare(request, project_id):
    """Pick experiments (checkboxes, GET `experiment=<id>` repeated) and compare them."""
    project = project_for_user(request.user, project_id)
    experiments = selectors.experiments_for_project(project)
    by_id = {experiment.pk: experiment for experiment in experiments}
    wanted = _selected_ids(request)
    selected = [by_id[pk] for pk in wanted if pk in by_id][:MAX_COMPARED]
    too_many = len([pk for pk in wanted if pk in by_id]) > MAX_COMPARED

    latest = _latest_jobs(selected)
    histories = _histories(list(latest.values()))
    series, columns = [], []
    for index, experiment in enumerate(selected):
        job = latest.get(experiment.pk)
        history = histories.get(job.pk, []) if job else []
        color = PALETTE[index]
        series.append({"id": experiment.pk, "name": experiment.name, "color": color, "history": history})
        columns.append({"experiment": experiment, "job": job, "color": color, "metrics": _final_metrics(job, history)})
    # The dataset version is not part of the config but changes results as much as any key.
    configs = [{"dataset": f"v{e.dataset.version}", **(e.config or {})} for e in selected]
    diff = config_diff(configs) if len(selected) > 1 else []
    for row in diff:
        row["shown"] = [format_value(value) for value in row["values"]]
    context = {
        "project": project,
        "experiments": experiments,
        "selected_ids": {experiment.pk for experiment in selected},
        "columns": columns,
        "series": series,
        "diff": diff,
        "differences": paired_differences(columns) if len(columns) > 1 else [],
        "too_many": too_many,
        "max_compared": MAX_COMPARED,
    }
    return render(request, "experiments/compare.html", context)
