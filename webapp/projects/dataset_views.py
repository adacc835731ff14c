"""Dataset pages: upload (zip or folder, via XHR), ingest progress (htmx) and the report.

Adapters only: parse the request, call one service from webapp.projects.datasets or
folder_uploads, render. Another user's objects are 404 (the selectors filter by owner).
"""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webapp.core import storage
from webapp.core.errors import ServiceError

from . import datasets, folder_uploads, selectors


def _wants_json(request) -> bool:
    return request.headers.get("x-requested-with") == "XMLHttpRequest" or "application/json" in request.headers.get(
        "accept", ""
    )


def _error(exc: ServiceError) -> JsonResponse:
    return JsonResponse({"error": exc.message, "field": exc.field}, status=exc.status_code)


def _accepted(dataset) -> JsonResponse:
    url = reverse("projects:dataset_detail", args=[dataset.pk])
    return JsonResponse(
        {"dataset": dataset.pk, "version": dataset.version, "status": dataset.status, "url": url}, status=202
    )


@login_required
@require_GET
def dataset_upload(request, project_id):
    project = selectors.project_for_user(request.user, project_id)
    return render(request, "projects/dataset_upload.html", {"project": project, "limits": datasets.upload_limits()})


@login_required
@require_POST
def dataset_upload_zip(request, project_id):
    project = selectors.project_for_user(request.user, project_id)
    # Refuse an oversized body before Django reads (and spools) any of it.
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.TL_MAX_UPLOAD_BYTES + 64 * 1024:
        return _error(ServiceError(f"The upload is over the limit of {settings.TL_MAX_UPLOAD_BYTES} bytes."))
    uploaded = request.FILES.get("archive")
    try:
        if uploaded is None:
            raise ServiceError("Choose a zip file to upload.", field="archive")
        dataset = datasets.dataset_create_from_archive(project=project, uploaded_file=uploaded, user=request.user)
    except ServiceError as exc:
        if _wants_json(request):
            return _error(exc)
        return render(
            request,
            "projects/dataset_upload.html",
            {"project": project, "limits": datasets.upload_limits(), "error": exc.message},
            status=exc.status_code,
        )
    if _wants_json(request):
        return _accepted(dataset)
    return redirect("projects:dataset_detail", dataset_id=dataset.pk)


@login_required
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


@login_required
@require_POST
def folder_upload_files(request, project_id, session_id):
    session = selectors.upload_session_for_user(request.user, project_id, session_id)
    paths, files = request.POST.getlist("paths"), request.FILES.getlist("files")
    if len(paths) != len(files):
        return _error(ServiceError(f"Got {len(files)} files but {len(paths)} relative paths.", field="paths"))
    try:
        session = folder_uploads.folder_upload_add_files(session=session, files=list(zip(paths, files, strict=True)))
    except ServiceError as exc:
        return _error(exc)
    return JsonResponse({"file_count": session.file_count, "total_bytes": session.total_bytes})


@login_required
@require_POST
def folder_upload_finish(request, project_id, session_id):
    session = selectors.upload_session_for_user(request.user, project_id, session_id)
    try:
        dataset = folder_uploads.folder_upload_finish(session=session)
    except ServiceError as exc:
        return _error(exc)
    return _accepted(dataset)


def _chart_data(classes) -> dict:
    return {
        "labels": [c.name for c in classes],
        "train": [c.train_count for c in classes],
        "validation": [c.validation_count for c in classes],
    }


@login_required
@require_GET
def dataset_detail(request, dataset_id):
    dataset = selectors.dataset_detail_for_user(request.user, dataset_id)
    thumbs = dataset.report.get("thumbnails", {}) if dataset.is_ready else {}
    rows = list(dataset.classes.all())
    classes = [{"obj": c, "thumbs": range(len(thumbs.get(c.name, [])))} for c in rows]
    context = {"dataset": dataset, "project": dataset.project, "classes": classes, "report": dataset.report}
    if dataset.is_ready:
        context["chart"] = _chart_data(rows)
    return render(request, "projects/dataset_detail.html", context)


@login_required
@require_GET
def dataset_status(request, dataset_id):
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    response = render(request, "projects/_dataset_status.html", {"dataset": dataset})
    if dataset.status != dataset.Status.PROCESSING:
        # The report is a different page shape: reload the whole page once ingest ends.
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_GET
def dataset_thumbnail(request, dataset_id, class_id, index):
    dataset = selectors.dataset_for_user(request.user, dataset_id)
    klass = dataset.classes.filter(pk=class_id).first()
    names = dataset.report.get("thumbnails", {}).get(klass.name, []) if klass and dataset.is_ready else []
    if index >= len(names):
        raise Http404("No such thumbnail.")
    path = storage.dataset_dir(dataset.pk) / "thumbs" / klass.name / names[index]
    if not path.is_file():
        raise Http404("No such thumbnail.")
    response = FileResponse(open(path, "rb"), content_type="image/jpeg")
    # Ready datasets never change, so a thumbnail never changes either.
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response
