"""Error-analysis pages: a confusion cell's images, the mistakes, a class's images by the model's
confidence in their label, and the data map. Reads only (webapp/experiments/galleries.py): no page
here loads TensorFlow; the Grad-CAM overlays are images the predictions app serves."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from webapp.core.errors import ServiceError

from . import datamaps, galleries
from .views import _experiment

KINDS = ("cell", "mistakes", "class")


def _label(value: str | None, labels: list[str], what: str) -> str | None:
    if not value:
        return None
    if value not in labels:
        raise Http404(f"No class named {value!r} for the {what}.")
    return value


def _analysis(request, project_id, experiment_id):
    experiment = _experiment(request, project_id, experiment_id)
    job = galleries.analysed_job(experiment)
    context = {"project": experiment.project, "experiment": experiment, "job": job}
    context["scored"] = galleries.scored_images(job)
    context["labels"] = list(job.model.class_names) if job else []
    context["data_map"] = galleries.data_map_for(job)
    return context


def _render_gallery(request, context, items, kind, title):
    context.update(kind=kind, title=title, page=galleries.page_of(items, request.GET.get("page")), total=len(items))
    query = request.GET.copy()
    query.pop("page", None)
    context["query"] = query.urlencode()
    return render(request, "experiments/gallery.html", context)


@login_required
@require_GET
def cell_gallery(request, project_id, experiment_id):
    """?true=<class>&predicted=<class>: the images of one confusion-matrix cell (either side may be left out)."""
    context = _analysis(request, project_id, experiment_id)
    labels = context["labels"]
    true = _label(request.GET.get("true"), labels, "true class")
    predicted = _label(request.GET.get("predicted"), labels, "predicted class")
    items = galleries.cell(context["scored"] or [], true=true, predicted=predicted)
    if true and predicted:
        title = f"Labelled {true}, predicted {predicted}"
    elif true or predicted:
        title = f"Labelled {true}" if true else f"Predicted {predicted}"
    else:
        title = "Every scored image"
    context.update(true=true, predicted=predicted)
    return _render_gallery(request, context, items, "cell", title)


@login_required
@require_GET
def mistakes_gallery(request, project_id, experiment_id):
    context = _analysis(request, project_id, experiment_id)
    items = galleries.mistakes(context["scored"] or [])
    return _render_gallery(request, context, items, "mistakes", "Mistakes, most confident first")


@login_required
@require_GET
def class_gallery(request, project_id, experiment_id):
    """?label=<class>&order=least|most: a class's images by the model's confidence in their label; every
    image of the dataset once the model's data map is ready, the scored ones until then."""
    context = _analysis(request, project_id, experiment_id)
    labels = context["labels"]
    label = _label(request.GET.get("label"), labels, "class gallery") or (labels[0] if labels else None)
    most = request.GET.get("order") == "most"
    everything = galleries.map_images(context["data_map"])
    source = everything if everything is not None else (context["scored"] or [])
    items = galleries.of_class(source, label, least_confident_first=not most) if label else []
    context.update(label=label, most_first=most, whole_dataset=everything is not None)
    order = "most confident first" if most else "least confident first"
    return _render_gallery(request, context, items, "class", f"Class {label}: {order}")


@login_required
@require_http_methods(["GET", "POST"])
def data_map(request, project_id, experiment_id):
    """The 2-D map of the dataset's features (GET), or asking for it to be computed (POST)."""
    context = _analysis(request, project_id, experiment_id)
    job = context["job"]
    if request.method == "POST":
        if job is None:
            raise Http404("This experiment has no trained model to map the dataset with.")
        try:
            datamaps.data_map_request(model=job.model)
        except ServiceError as exc:
            messages.error(request, exc.message)
        return redirect("experiments:data_map", project_id=project_id, experiment_id=experiment_id)
    data_map = context["data_map"]
    if request.GET.get("status"):
        response = render(request, "experiments/_data_map_status.html", context)
        if data_map is None or data_map.status in (data_map.Status.READY, data_map.Status.FAILED):
            response["HX-Refresh"] = "true"  # the finished map is a different page shape
        return response
    if data_map is not None and data_map.status == data_map.Status.READY:
        points = galleries.map_points(data_map)
        context["points"] = points
        context["chart"] = {"labels": context["labels"], "points": points}
        by_confidence = sorted(points, key=lambda p: (p["p"], p["path"]))
        context["table"] = galleries.page_of(by_confidence, request.GET.get("page"))
    return render(request, "experiments/data_map.html", context)
