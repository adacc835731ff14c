"""Folder uploads from a browser (`<input webkitdirectory>`), sent in batches (DESIGN §7).

Django keeps only the last component of an uploaded file's name, so the browser sends each
file's relative path as its own field; the paths are validated here before anything is written.

    folder_upload_start(*, project, user) -> UploadSession
    folder_upload_add_files(*, session, files: list[tuple[str, UploadedFile]]) -> UploadSession
    folder_upload_finish(*, session) -> Dataset
"""

import os
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from webapp.core import storage
from webapp.core.errors import NotFound, ServiceError

from .datasets import dataset_create, dataset_enqueue_ingest, upload_dir
from .ingest import IngestError, is_ignored, validate_relative_path
from .models import Dataset, Project, UploadSession

STALE_AFTER = timedelta(days=1)


def session_dir(session_id) -> Path:
    return storage.uploads_root() / f"session-{session_id}"


def folder_upload_discard_stale(*, older_than: timedelta = STALE_AFTER) -> int:
    """Delete sessions nobody finished (a closed tab) and their files."""
    stale = list(UploadSession.objects.filter(updated_at__lt=timezone.now() - older_than).values_list("pk", flat=True))
    for pk in stale:
        shutil.rmtree(session_dir(pk), ignore_errors=True)
    UploadSession.objects.filter(pk__in=stale).delete()
    return len(stale)


def folder_upload_start(*, project: Project, user) -> UploadSession:
    """Open a session that batches of files are added to."""
    folder_upload_discard_stale()
    session = UploadSession.objects.create(project=project, created_by=user)
    (session_dir(session.pk) / "files").mkdir(parents=True)
    return session


def _write(uploaded_file, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as out:
        for chunk in uploaded_file.chunks():
            out.write(chunk)


def folder_upload_add_files(*, session: UploadSession, files: list[tuple[str, object]]) -> UploadSession:
    """Store one batch of (relative path, uploaded file); all of it or none of it."""
    if not files:
        raise ServiceError("This batch has no files.", field="files")
    if len(files) > settings.TL_UPLOAD_BATCH_FILES:
        raise ServiceError(f"Send at most {settings.TL_UPLOAD_BATCH_FILES} files per request.", field="files")
    try:
        batch = [(validate_relative_path(path, what="relative path"), f) for path, f in files]
    except IngestError as exc:
        raise ServiceError(f"{exc.message}; nothing from this batch was stored.", field="paths") from None
    batch = [(rel, f) for rel, f in batch if not is_ignored(rel)]
    count, size = len(batch), sum(f.size for _, f in batch)
    # Reserve room under the limits in one conditional UPDATE, so parallel batches cannot overshoot.
    reserved = UploadSession.objects.filter(
        pk=session.pk,
        file_count__lte=settings.TL_ZIP_MAX_ENTRIES - count,
        total_bytes__lte=settings.TL_ZIP_MAX_TOTAL_BYTES - size,
    ).update(file_count=F("file_count") + count, total_bytes=F("total_bytes") + size, updated_at=timezone.now())
    if not reserved:
        if not UploadSession.objects.filter(pk=session.pk).exists():
            raise NotFound("This upload was already finished or has expired; start again.")
        raise ServiceError(
            f"The folder is over the limit of {settings.TL_ZIP_MAX_ENTRIES} files or "
            f"{settings.TL_ZIP_MAX_TOTAL_BYTES} bytes.",
            field="files",
        )
    root = session_dir(session.pk) / "files"
    written: list[Path] = []
    try:
        for rel, uploaded in batch:
            target = root.joinpath(*rel.parts)
            try:
                _write(uploaded, target)
            except FileExistsError:
                raise ServiceError(f"{rel} was already uploaded in this folder.", field="paths") from None
            except (NotADirectoryError, IsADirectoryError):
                raise ServiceError(f"{rel} clashes with a file or folder of the same name.", field="paths") from None
            written.append(target)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        UploadSession.objects.filter(pk=session.pk).update(
            file_count=F("file_count") - count, total_bytes=F("total_bytes") - size
        )
        raise
    session.refresh_from_db()
    return session


def folder_upload_finish(*, session: UploadSession) -> Dataset:
    """Turn the session's files into a new dataset version and enqueue its ingest."""
    session.refresh_from_db()
    if session.file_count == 0:
        raise ServiceError("No files were uploaded (hidden and system files are not sent).")
    with transaction.atomic():
        # Deleting the row is the claim: a second finish (a double click) finds nothing.
        deleted, _ = UploadSession.objects.filter(pk=session.pk).delete()
        if not deleted:
            raise NotFound("This upload was already finished.")
        dataset = dataset_create(
            project=session.project,
            user=session.created_by,
            source=Dataset.Source.FOLDER,
            original_name=f"folder of {session.file_count} files",
        )
        target = upload_dir(dataset.pk)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(session_dir(session.pk), target)
        try:
            dataset_enqueue_ingest(dataset=dataset)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return dataset
