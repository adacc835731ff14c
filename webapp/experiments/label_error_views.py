"""The "Likely label errors" page of a dataset version, and Retrain (docs/decisions.md, "Likely label
errors" and "Fix and retrain"). Adapters only; another user's datasets and experiments are 404."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webapp.core.errors import ServiceError
from webapp.projects.dataset_edits import dataset_edits_pending, dataset_edits_summary
from webapp.projects.selectors import dataset_for_user

from . import label_errors, selectors
from .retrain import experiment_retrain, retrain_targets

PER_PAGE = 24


def _page_context(request, dataset) -> dict:
    review = label_errors.label_review_for(dataset)
    edits = list(dataset_edits_pending(dataset=dataset, user=request.user))
    context = {
        "dataset": dataset,
        "project": dataset.project,
        "review": review,
        "features_experiment": label_errors.features_experiment(dataset),
        "edits": edits,
        "edits_summary": dataset_edits_summary(edits),
        "no_features": label_errors.NO_FEATURES,
    }
    if review is not None and review.status == review.Status.READY:
        page = Paginator(review.issues, PER_PAGE).get_page(request.GET.get("page"))
        for offset, item in enumerate(page.object_list):
            item["rank"] = page.start_index() + offset
            item["anchor"] = f"issue-{item['rank']}"  # the actions return here
        context["page"] = page
    return context


@login_required
@require_GET
def label_errors_page(request, dataset_id):
    dataset = dataset_for_user(request.user, dataset_id)
    return render(request, "experiments/label_errors.html", _page_context(request, dataset))


@login_required
@require_GET
def label_errors_status(request, dataset_id):
    dataset = dataset_for_user(request.user, dataset_id)
    context = _page_context(request, dataset)
    response = render(request, "experiments/_label_review_status.html", context)
    if context["review"] is None or context["review"].status not in ("queued", "running"):
        response["HX-Refresh"] = "true"  # the queue is a different page shape: reload once it is there
    return response


@login_required
@require_POST
def label_errors_start(request, dataset_id):
    dataset = dataset_for_user(request.user, dataset_id)
    try:
        label_errors.label_review_start(dataset=dataset)
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("experiments:label_errors", dataset_id=dataset.pk)


@login_required
@require_POST
def experiment_retrain_view(request, project_id, experiment_id):
    experiment = selectors.experiment_for_user(request.user, experiment_id)
    targets = {str(d.pk): d for d in retrain_targets(experiment)} if experiment.project_id == project_id else {}
    dataset = targets.get(request.POST.get("dataset", ""))
    detail = reverse("experiments:detail", args=[experiment.project_id, experiment.pk])
    if dataset is None:
        messages.error(request, "Choose a dataset version made from this experiment's version to retrain on.")
        return redirect(detail)
    try:
        created = experiment_retrain(experiment=experiment, dataset=dataset, user=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect(detail)
    messages.success(request, f"{created.name} is queued: the same config on dataset v{dataset.version}.")
    return redirect("experiments:detail", project_id=created.project_id, experiment_id=created.pk)
