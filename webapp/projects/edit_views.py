"""Fix the data from any gallery (docs/decisions.md, "Fix and retrain"): an image's thumbnail by its path,
relabel / exclude / restore it (a pending edit), and a new version with the edits applied.

Adapters only: parse, call one service of dataset_edits.py, redirect back. Another user's datasets are 404.
"""

import io

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from webapp.core import objectstore, storage
from webapp.core.errors import ServiceError

from . import selectors
from .dataset_edits import dataset_create_from_edits, dataset_edit_set, image_parts, restorable
from .ingest.images import THUMB_SIZE, decode_rgb  # Pillow only: no TensorFlow in the web process

ACTION_DONE = {"relabel": "will move to {cls}", "exclude": "will be left out", "restore": "will come back"}


def _back(request, dataset, fragment: str = ""):
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        target = ""
    target = target or reverse("projects:dataset_detail", args=[dataset.pk])
    return redirect(target + (f"#{fragment}" if fragment else ""))


@login_required
@require_POST
def dataset_edit(request, dataset_id):
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    path, action = request.POST.get("path", ""), request.POST.get("action", "")
    try:
        edit = dataset_edit_set(
            dataset=dataset, user=request.user, path=path, action=action, new_class=request.POST.get("class", "")
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        done = ACTION_DONE[edit.action].format(cls=edit.new_class) if edit else "has no pending edit any more"
        messages.success(request, f"{path} {done} in the next version.")
    return _back(request, dataset, request.POST.get("fragment", ""))


@login_required
@require_POST
def dataset_version_create(request, dataset_id):
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    try:
        new = dataset_create_from_edits(dataset=dataset, user=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return _back(request, dataset)
    messages.success(request, f"Dataset v{new.version} is being made from {new.original_name}.")
    return redirect("projects:dataset_detail", dataset_id=new.pk)


@login_required
@require_GET
def dataset_image(request, dataset_id, path):
    """A 128 px JPEG of one stored image of a ready version (or of an image its parent had and it left out)."""
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    try:
        image_parts(path)
    except ServiceError:
        raise Http404("No such image.") from None
    if not dataset.is_ready:
        raise Http404("No such image.")
    source = dataset
    if path in restorable(dataset):
        source = dataset.project.datasets.filter(pk=dataset.report["lineage"]["dataset"]).first() or dataset
    try:
        stream, _ = objectstore.open_file(storage.key_of(storage.dataset_dir(source.pk)), path)
    except objectstore.ObjectMissing:
        raise Http404("No such image.") from None
    with stream:
        data = stream.read()
    image = decode_rgb(data, THUMB_SIZE, max_pixels=settings.TL_IMAGE_MAX_PIXELS)
    image.thumbnail(THUMB_SIZE)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    response = HttpResponse(out.getvalue(), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400, immutable"  # ready datasets never change
    return response
