"""Experiment and model pages: parse input, call one service or selector, render."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from webapp.core.errors import ServiceError
from webapp.projects.models import Dataset
from webapp.projects.selectors import project_for_user

from . import editing, estimates, selectors, services, thresholds
from .checkpoints import checkpoint_epoch
from .clone import clone_initial
from .forms import PRESETS, ExperimentForm
from .jobqueue import BrokerUnavailable


def _experiment(request, project_id, experiment_id):
    experiment = selectors.experiment_for_user(request.user, experiment_id)
    if experiment.project_id != project_id:
        raise Http404("No such experiment in this project.")
    return experiment


def _model(request, project_id, model_id):
    return selectors.model_in_project_for_user(request.user, project_id, model_id)


@login_required
def experiment_list(request, project_id):
    project = project_for_user(request.user, project_id)
    rows = selectors.experiments_for_project(project)
    live = any(row.latest_status in selectors.ACTIVE for row in rows)
    context = {"project": project, "experiments": rows, "live": live}
    # ?rows=1: only the rows, which the page polls while a run is active (templates/experiments/_experiment_rows.html).
    template = "experiments/_experiment_rows.html" if request.GET.get("rows") else "experiments/experiment_list.html"
    return render(request, template, context)


@login_required
def experiment_create(request, project_id):
    project = project_for_user(request.user, project_id)
    datasets = project.datasets.filter(status=Dataset.Status.READY).order_by("-version")
    preset = PRESETS.get(request.GET.get("preset", ""))
    initial = dict(preset["initial"]) if preset else {}
    if request.GET.get("clone"):  # "Clone with changes": the form filled from that experiment
        initial = _clone_initial(request, project)
    bases = selectors.bottleneck_bases_for_project(project)
    if datasets:
        initial.setdefault("dataset", datasets[0].pk)
    if initial.get("mode") == "finetune" and bases:
        initial.setdefault("base_experiment", bases[0].pk)  # the newest trained bottleneck run
    form = ExperimentForm(request.POST or None, initial=initial, project=project, datasets=datasets, bases=bases)
    if request.method == "POST":
        started = _start_from_form(request, project, form)
        if started is not None:
            return started
    context = {
        "project": project,
        "form": form,
        "presets": PRESETS,
        "preset_values": form.preset_values(PRESETS),
        "estimate": estimates.estimate_from_query(project=project, query=form.estimate_query()),
        "has_datasets": datasets.exists(),
    }
    return render(request, "experiments/experiment_form.html", context)


def _start_from_form(request, project, form):
    """Start the form's experiment, or put every error on the form at once: the fields' types, then
    the engine's rules on all that parsed (the page then lists them all). A redirect, or None."""
    form.is_valid()
    config = form.to_config()
    try:
        if form.errors or config is None:
            if config is not None:
                services.experiment_config_validate(config=config)
            return None
        experiment = services.experiment_create(
            project=project,
            dataset=form.cleaned_data["dataset"],
            config=config,
            name=form.cleaned_data["name"],
            notes=form.cleaned_data["notes"],
            user=request.user,
        )
    except BrokerUnavailable as exc:
        messages.error(request, exc.message)
        return redirect("experiments:detail", project_id=project.pk, experiment_id=exc.job.experiment_id)
    except ServiceError as exc:
        form.add_service_error(exc)
        return None
    # No "is queued" message: the page's status banner says so, and changes with the job.
    return redirect("experiments:detail", project_id=project.pk, experiment_id=experiment.pk)


@login_required
@require_GET
def experiment_estimate(request, project_id):
    """How long the new-experiment form's run would take here (an htmx partial beside Start)."""
    project = project_for_user(request.user, project_id)
    estimate = estimates.estimate_from_query(project=project, query=request.GET)
    return render(request, "experiments/_estimate.html", {"estimate": estimate})


def _clone_initial(request, project) -> dict:
    raw = request.GET["clone"]
    source = project.experiments.select_related("dataset").filter(pk=int(raw) if raw.isdigit() else 0).first()
    if source is None:
        raise Http404("No such experiment in this project to clone.")
    initial, left_out = clone_initial(source)
    if request.method == "GET":
        messages.info(request, f"The form holds the settings of {source.name}: change what you want and start it.")
        for note in left_out:
            messages.warning(request, f"Not carried over: {note}.")
    return initial


def _status_context(experiment):
    # One read of the runs for the badge, the banner and the runs table, so they cannot disagree.
    jobs = list(selectors.experiment_jobs(experiment))
    job = jobs[0] if jobs else None
    return {
        "experiment": experiment,
        "project": experiment.project,
        "jobs": jobs,
        "job": job,
        "eta": job.eta() if job else None,
        "resumable": selectors.job_resumable(job),
        # A queued run that will continue from a checkpoint says so (its banner is the only message).
        "continues_from": checkpoint_epoch(job.pk) if job and job.status == job.Status.QUEUED else None,
        "evaluation": selectors.job_evaluation(job),
        "precision": selectors.job_precision(job),
    }


@login_required
def experiment_detail(request, project_id, experiment_id):
    experiment = _experiment(request, project_id, experiment_id)
    context = _status_context(experiment)
    context["config_json"] = json.dumps(experiment.config, indent=2, sort_keys=True)
    return render(request, "experiments/experiment_detail.html", context)


@login_required
@require_GET
def experiment_status(request, project_id, experiment_id):
    """The live part of the experiment page, polled by htmx while the job is not finished."""
    experiment = _experiment(request, project_id, experiment_id)
    context = _status_context(experiment)
    # The runs table lives outside the polled block; send it along out of band so a run's end
    # shows there too without a reload.
    context["oob"] = True
    return render(request, "experiments/_status.html", context)


@login_required
@require_GET
def experiment_metrics(request, project_id, experiment_id):
    """Curves' data for Chart.js: the latest job's epochs so far."""
    experiment = _experiment(request, project_id, experiment_id)
    job = selectors.latest_job(experiment)
    return JsonResponse(
        {
            "job": job.pk if job else None,
            "status": job.status if job else None,
            "epochs": job.epochs if job else 0,
            "finished": bool(job and job.is_terminal),
            "history": selectors.job_history(job) if job else [],
        }
    )


@login_required
@require_GET
def experiment_history_csv(request, project_id, experiment_id):
    """The latest run's history as CSV (one row per epoch), as the notebook's history.history was saved."""
    import csv

    experiment = _experiment(request, project_id, experiment_id)
    job = selectors.latest_job(experiment)
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    slug = slugify(experiment.name) or f"experiment-{experiment.pk}"
    response["Content-Disposition"] = f'attachment; filename="{slug}-history.csv"'
    writer = csv.DictWriter(response, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in selectors.job_history(job) if job else []:
        writer.writerow({key: "" if row[key] is None else row[key] for key in columns})
    return response


def _job_action(request, project_id, job_id, action):
    job = selectors.job_for_user(request.user, job_id)
    if job.experiment.project_id != project_id:
        raise Http404("No such job in this project.")
    try:
        action(job=job)
    except BrokerUnavailable as exc:
        messages.error(request, exc.message)
    except ServiceError as exc:
        messages.error(request, exc.message)
    # Success says nothing here: the status block's banner shows the job's new state, from its row,
    # and changes with it; a flash message ("A new run is queued.") would go stale above it.
    return redirect("experiments:detail", project_id=project_id, experiment_id=job.experiment_id)


@login_required
@require_POST
def job_cancel(request, project_id, job_id):
    return _job_action(request, project_id, job_id, services.training_job_cancel)


@login_required
@require_POST
def job_retry(request, project_id, job_id):
    return _job_action(request, project_id, job_id, services.training_job_retry)


@login_required
@require_POST
def job_resume(request, project_id, job_id):
    return _job_action(request, project_id, job_id, services.training_job_resume)


@login_required
def model_list(request, project_id):
    project = project_for_user(request.user, project_id)
    models = selectors.models_for_project(project)
    live = selectors.project_has_active_runs(project)
    if request.GET.get("rows"):  # the table alone, polled while a run is active (_model_rows.html)
        return render(request, "experiments/_model_rows.html", {"project": project, "models": models, "live": live})
    context = {
        "project": project,
        "live": live,
        "models": models,
        "thresholds": thresholds.threshold_controls(models),
        "has_published": any(m.published for m in models),
    }
    return render(request, "experiments/model_list.html", context)


def _threshold_from_percent(raw: str) -> float:
    try:
        percent = float(raw)
    except ValueError:
        percent = None
    if percent is None or not 0 <= percent <= 100:
        raise ServiceError(f"The threshold is a percentage from 0 to 100, got {raw!r}.", field="threshold")
    # The validation curve stores confidences to 6 decimals; so does the threshold, so that a threshold
    # picked at an image's confidence keeps that image.
    return round(percent / 100, 6)


@login_required
@require_POST
def model_threshold(request, project_id, model_id):
    model = _model(request, project_id, model_id)
    try:
        threshold = None if "clear" in request.POST else _threshold_from_percent(request.POST.get("threshold", ""))
        thresholds.trained_model_threshold_set(model=model, threshold=threshold)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        if threshold is None:
            messages.success(request, f"Model v{model.version} has no threshold: every prediction is accepted.")
        else:
            messages.success(
                request,
                f"Model v{model.version} now accepts predictions from {threshold:.1%} confidence; "
                "less confident ones answer accepted: false.",
            )
    return redirect(reverse("experiments:models", args=[project_id]) + f"#threshold-{model.pk}")


@login_required
@require_POST
def model_publish(request, project_id, model_id):
    model = _model(request, project_id, model_id)
    try:
        services.trained_model_publish(model=model)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Model v{model.version} is now served by this project's predict endpoint.")
    return redirect("experiments:models", project_id=project_id)


@login_required
@require_POST
def model_unpublish(request, project_id, model_id):
    model = get_object_or_404(selectors.models_for_project(project_for_user(request.user, project_id)), pk=model_id)
    services.trained_model_unpublish(model=model)
    messages.success(request, f"Model v{model.version} is no longer served.")
    return redirect("experiments:models", project_id=project_id)


# --- rename, notes, delete (docs/decisions.md, "Deleting experiments and models") -----------------


@login_required
@require_POST
def experiment_edit(request, project_id, experiment_id):
    experiment = _experiment(request, project_id, experiment_id)
    try:
        editing.experiment_update(
            experiment=experiment, name=request.POST.get("name", ""), notes=request.POST.get("notes", "")
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Experiment {experiment.name} saved.")
    return redirect("experiments:detail", project_id=project_id, experiment_id=experiment.pk)


@login_required
def experiment_delete(request, project_id, experiment_id):
    """GET: what the delete removes, or why it is refused; POST: delete."""
    experiment = _experiment(request, project_id, experiment_id)
    if request.method == "POST":
        try:
            editing.experiment_delete(experiment=experiment)
        except ServiceError as exc:
            messages.error(request, exc.message)
            return redirect("experiments:detail", project_id=project_id, experiment_id=experiment.pk)
        messages.success(request, f"Experiment {experiment.name}, its runs and models were deleted.")
        return redirect("experiments:list", project_id=project_id)
    context = {
        "project": experiment.project,
        "experiment": experiment,
        "refusal": editing.experiment_delete_refusal(experiment),
        "runs": experiment.jobs.count(),
        "models": list(experiment.models.order_by("-version")),
    }
    return render(request, "experiments/experiment_confirm_delete.html", context)


@login_required
def model_delete(request, project_id, model_id):
    """GET: what the delete removes, or why it is refused; POST: delete."""
    model = _model(request, project_id, model_id)
    if request.method == "POST":
        try:
            editing.trained_model_delete(model=model)
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Model v{model.version}, its files and exports were deleted.")
        return redirect("experiments:models", project_id=project_id)
    context = {
        "project": model.project,
        "model": model,
        "refusal": editing.trained_model_delete_refusal(model),
        "exports": model.exports.count(),
    }
    return render(request, "experiments/model_confirm_delete.html", context)
