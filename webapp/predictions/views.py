"""The galleries' Grad-CAM overlays: an image, not a page (docs/decisions.md, "Error analysis").

A mistakes gallery asks for one overlay per image it shows. Each is made from the stored file with
the model from this process's serving cache, as predict uses it, and kept in the cache: a gallery
seen again costs nothing, and the pages themselves never load TensorFlow.
"""

import hashlib

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

from webapp.core import objectstore, storage
from webapp.core.errors import ServiceError
from webapp.experiments.selectors import model_for_user
from webapp.projects.dataset_edits import image_parts

from . import services

CACHE_SECONDS = 24 * 3600


def _stored_bytes(dataset_id: int, path: str) -> bytes:
    try:
        stream, _ = objectstore.open_file(storage.key_of(storage.dataset_dir(dataset_id)), path)
    except objectstore.ObjectMissing:
        raise Http404(f"No image {path!r} in the model's dataset.") from None
    with stream:
        return stream.read()


@login_required
@require_GET
def explanation_image(request, model_id):
    """?path=<split>/<class>/<file> of the model's dataset: a PNG of the image with the heatmap of
    where the model looked for its answer. Another user's model is a 404."""
    model = model_for_user(request.user, model_id)
    path = request.GET.get("path", "")
    try:
        image_parts(path)
    except ServiceError:
        raise Http404("An image path is <split>/<class>/<file>.") from None
    key = "gradcam:" + hashlib.sha256(f"{model.checksum}/{path}".encode()).hexdigest()
    body = cache.get(key)
    if body is None:
        data = _stored_bytes(model.experiment.dataset_id, path)
        with services.predict_work_slot():
            body = services.explanation_png(model=model, data=data)
        cache.set(key, body, CACHE_SECONDS)
    response = HttpResponse(body, content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400, immutable"  # a model and its dataset never change
    return response
