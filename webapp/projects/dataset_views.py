"""Dataset pages: upload (zip or folder, via XHR), ingest progress (htmx), the report, retry and delete.

Adapters only: parse the request, call one service from webapp.projects.datasets or
folder_uploads, render. Another user's objects are 404 (the selectors filter by owner).
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from webapp.core import objectstore, storage
from webapp.core.errors import NotFound, ServiceError
from webapp.core.uploads import limit_upload
from webapp.core.xhr import json_error, login_required_for_scripts, wants_json

from . import datasets, folder_uploads, selectors
from .ingest.build import MAX_TEST_FRACTION, SPLITS
from .without_leaks import dataset_create_without_leaks

# The upload views are csrf_exempt on the outside and csrf_protect on the inside: Django's CSRF
# check reads the whole body, so the upload limit goes in first (webapp/core/uploads.py).


def _error(exc: ServiceError) -> JsonResponse:
    return json_error(exc.message, status=exc.status_code, field=exc.field)


def _accepted(dataset) -> JsonResponse:
    url = reverse("projects:dataset_detail", args=[dataset.pk])
    return JsonResponse(
        {"dataset": dataset.pk, "version": dataset.version, "status": dataset.status, "url": url}, status=202
    )


def _upload_page(request, project, *, error: ServiceError | None = None):
    context = {
        "project": project,
        "limits": datasets.upload_limits(),
        "folder_max_bytes": folder_uploads.folder_byte_limit()[0],
        "error": error.message if error else None,
    }
    return render(request, "projects/dataset_upload.html", context, status=error.status_code if error else 200)


@login_required
@require_GET
def dataset_upload(request, project_id):
    return _upload_page(request, selectors.project_for_user(request.user, project_id))


@csrf_exempt
@login_required_for_scripts
@require_POST
def dataset_upload_zip(request, project_id):
    project = selectors.project_for_user(request.user, project_id)
    try:
        limit_upload(request, limit=settings.TL_MAX_UPLOAD_BYTES, setting="TL_MAX_UPLOAD_BYTES")
        response = _dataset_upload_zip(request, project)
    except ServiceError as exc:
        return _error(exc) if wants_json(request) else _upload_page(request, project, error=exc)
    return response


def _test_fraction(request) -> float | None:
    """The upload form's test split, given in percent; None when the field is absent."""
    raw = request.POST.get("test_percent", "").strip()
    if not raw:
        return None
    try:
        percent = float(raw)
    except ValueError:
        percent = -1.0
    largest = round(MAX_TEST_FRACTION * 100)
    if not 0 <= percent <= largest:
        raise ServiceError(
            f"The test split must be a percentage from 0 to {largest}, got {raw!r}.", field="test_percent"
        )
    return percent / 100


@csrf_protect
def _dataset_upload_zip(request, project):
    uploaded = request.FILES.get("archive")
    if uploaded is None:
        raise ServiceError("Choose a zip file to upload.", field="archive")
    dataset = datasets.dataset_create_from_archive(
        project=project, uploaded_file=uploaded, user=request.user, test_fraction=_test_fraction(request)
    )
    if wants_json(request):
        return _accepted(dataset)
    return redirect("projects:dataset_detail", dataset_id=dataset.pk)


@login_required_for_scripts
@require_POST
def folder_upload_start(request, project_id):
    project = selectors.project_for_user(request.user, project_id)
    session = folder_uploads.folder_upload_start(project=project, user=request.user)
    args = [project.pk, session.pk]
    return JsonResponse(
        {
            "session": str(session.pk),
            "files_url": reverse("projects:folder_upload_files", args=args),
            "finish_url": reverse("projects:folder_upload_finish", args=args),
            "batch_files": settings.TL_UPLOAD_BATCH_FILES,
        },
        status=201,
    )


def _upload_session(request, project_id, session_id):
    try:
        return selectors.upload_session_for_user(request.user, project_id, session_id)
    except Http404:
        raise NotFound("This folder upload has already finished or has expired; start it again.") from None


@csrf_exempt
@login_required_for_scripts
@require_POST
def folder_upload_files(request, project_id, session_id):
    limit, setting = folder_uploads.folder_byte_limit()
    try:
        session = _upload_session(request, project_id, session_id)
        limit_upload(request, limit=limit, setting=setting, what="folder upload", already=session.total_bytes)
        return _folder_upload_files(request, session)
    except ServiceError as exc:
        return _error(exc)


@csrf_protect
def _folder_upload_files(request, session):
    paths, files = request.POST.getlist("paths"), request.FILES.getlist("files")
    if len(paths) != len(files):
        raise ServiceError(f"Got {len(files)} files but {len(paths)} relative paths.", field="paths")
    session = folder_uploads.folder_upload_add_files(session=session, files=list(zip(paths, files, strict=True)))
    return JsonResponse({"file_count": session.file_count, "total_bytes": session.total_bytes})


@login_required_for_scripts
@require_POST
def folder_upload_finish(request, project_id, session_id):
    try:
        session = _upload_session(request, project_id, session_id)
        dataset = folder_uploads.folder_upload_finish(session=session)
    except ServiceError as exc:
        return _error(exc)
    return _accepted(dataset)


def _chart_data(classes) -> dict:
    return {
        "labels": [c.name for c in classes],
        "train": [c.train_count for c in classes],
        "validation": [c.validation_count for c in classes],
        "test": [c.test_count for c in classes],
    }


def _picture_groups(report: dict, ready: bool) -> dict[str, list[dict]]:
    """The report's leakage and duplicate groups for the page: each file with its split and the
    index of its thumbnail (None when it has none, or the version is not ready)."""
    thumbs = report.get("group_thumbnails", {}) if ready else {}

    def group(entry: dict, files: list[tuple[str, str]]) -> dict:
        members = [{"split": split, "file": f, "thumb": thumbs.get(f)} for split, f in files]
        return {"kind": entry.get("kind", "identical"), "distance": entry.get("distance", 0), "members": members}

    leakage = report.get("leakage", {}).get("items", [])
    duplicates = report.get("duplicates", {}).get("items", [])
    return {
        "leakage": [group(g, [(s, f) for s in SPLITS for f in g.get(s, [])]) for g in leakage],
        "duplicates": [group(g, [(g["split"], f) for f in g["files"]]) for g in duplicates],
    }


@login_required
@require_GET
def dataset_detail(request, dataset_id):
    dataset = selectors.dataset_detail_for_user(request.user, dataset_id)
    thumbs = dataset.report.get("thumbnails", {}) if dataset.is_ready else {}
    rows = list(dataset.classes.all())
    classes = [{"obj": c, "thumbs": range(len(thumbs.get(c.name, [])))} for c in rows]
    context = {"dataset": dataset, "project": dataset.project, "classes": classes, "report": dataset.report}
    context["groups"] = _picture_groups(dataset.report, dataset.is_ready)
    if dataset.is_ready:
        context["chart"] = _chart_data(rows)
    if dataset.status == dataset.Status.FAILED:
        context["upload_kept"] = datasets.upload_kept(dataset.pk)
    return render(request, "projects/dataset_detail.html", context)


@login_required
@require_POST
def dataset_retry(request, dataset_id):
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    try:
        datasets.dataset_retry(dataset=dataset)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Dataset v{dataset.version} is being checked and stored again.")
    return redirect("projects:dataset_detail", dataset_id=dataset.pk)


@login_required
@require_POST
def dataset_without_leaks(request, dataset_id):
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    try:
        new = dataset_create_without_leaks(dataset=dataset, user=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("projects:dataset_detail", dataset_id=dataset.pk)
    messages.success(
        request, f"Dataset v{new.version} is being made from v{dataset.version} without its leaked images."
    )
    return redirect("projects:dataset_detail", dataset_id=new.pk)


@login_required
def dataset_delete(request, dataset_id):
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    if request.method != "POST":
        return render(request, "projects/dataset_confirm_delete.html", {"dataset": dataset, "project": dataset.project})
    try:
        datasets.dataset_delete(dataset=dataset)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("projects:dataset_detail", dataset_id=dataset.pk)
    messages.success(request, f"Dataset v{dataset.version} and its files were deleted.")
    return redirect("projects:detail", project_id=dataset.project_id)


@login_required
@require_GET
def dataset_status(request, dataset_id):
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    response = render(request, "projects/_dataset_status.html", {"dataset": dataset})
    if dataset.status != dataset.Status.PROCESSING:
        # The report is a different page shape: reload the whole page once ingest ends.
        response["HX-Refresh"] = "true"
    return response


def _stored_image(dataset, name: str) -> FileResponse:
    """A JPEG of the dataset's report, read from storage (the object store's copy is streamed, not fetched)."""
    try:
        stream, size = objectstore.open_file(storage.key_of(storage.dataset_dir(dataset.pk)), name)
    except objectstore.ObjectMissing:
        raise Http404("No such thumbnail.") from None
    response = FileResponse(stream, content_type="image/jpeg")
    response["Content-Length"] = size
    return response


@login_required
@require_GET
def dataset_thumbnail(request, dataset_id, class_id, index):
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    klass = dataset.classes.filter(pk=class_id).first()
    names = dataset.report.get("thumbnails", {}).get(klass.name, []) if klass and dataset.is_ready else []
    if index >= len(names):
        raise Http404("No such thumbnail.")
    response = _stored_image(dataset, f"thumbs/{klass.name}/{names[index]}")
    # Ready datasets never change, so a thumbnail never changes either.
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


@login_required
@require_GET
def dataset_group_thumbnail(request, dataset_id, index):
    """A thumbnail of an image in a listed duplicate or leakage group (report["group_thumbnails"])."""
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    shown = dataset.report.get("group_thumbnails", {}).values() if dataset.is_ready else ()
    if index not in shown:
        raise Http404("No such thumbnail.")
    response = _stored_image(dataset, f"groups/{index}.jpg")
    response["Cache-Control"] = "private, max-age=86400, immutable"  # ready datasets never change
    return response
