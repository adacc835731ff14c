"""Folder uploads from a browser (`<input webkitdirectory>`), sent in batches (docs/decisions.md, "Folder uploads").

Django keeps only the last component of an uploaded file's name, so the browser sends each
file's relative path as its own field; the paths are validated here before anything is written.

    folder_upload_start(*, project, user) -> UploadSession
    folder_upload_add_files(*, session, files: list[tuple[str, UploadedFile]]) -> UploadSession
    folder_upload_finish(*, session) -> Dataset
    folder_byte_limit() -> (bytes, setting name)
"""

import os
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from webapp.core import objectstore, storage
from webapp.core.errors import Conflict, NotFound, ServiceError
from webapp.core.uploads import UploadTooLarge

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


def folder_byte_limit() -> tuple[int, str]:
    """The most bytes one folder upload may total, and the setting that says so.

    A folder is both an upload (TL_MAX_UPLOAD_BYTES) and, unlike a zip, already what ingest
    unpacks (TL_ZIP_MAX_TOTAL_BYTES): the smaller limit applies, over all its batches.
    """
    return min(
        (settings.TL_MAX_UPLOAD_BYTES, "TL_MAX_UPLOAD_BYTES"),
        (settings.TL_ZIP_MAX_TOTAL_BYTES, "TL_ZIP_MAX_TOTAL_BYTES"),
    )


def _check_room(session: UploadSession, batch: list) -> None:
    """Raise naming the limit the batch would break (returns when a parallel batch just gave room back)."""
    current = UploadSession.objects.filter(pk=session.pk).values_list("file_count", "total_bytes").first()
    if current is None:
        raise NotFound("This upload was already finished or has expired; start again.")
    file_count, total = current
    if file_count + len(batch) > settings.TL_ZIP_MAX_ENTRIES:
        raise ServiceError(
            f"The folder has more than {settings.TL_ZIP_MAX_ENTRIES} files (TL_ZIP_MAX_ENTRIES); "
            "nothing from this batch was stored.",
            field="files",
        )
    limit, setting = folder_byte_limit()
    for rel, uploaded in batch:
        total += uploaded.size
        if total > limit:
            raise UploadTooLarge(
                f"{rel} takes the folder upload past the limit of {limit} bytes ({setting}); "
                "nothing from this batch was stored.",
                field="files",
            )


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
    for _attempt in range(3):
        reserved = UploadSession.objects.filter(
            pk=session.pk,
            file_count__lte=settings.TL_ZIP_MAX_ENTRIES - count,
            total_bytes__lte=folder_byte_limit()[0] - size,
        ).update(file_count=F("file_count") + count, total_bytes=F("total_bytes") + size, updated_at=timezone.now())
        if reserved:
            break
        _check_room(session, batch)
    else:
        raise Conflict("Other batches of this folder kept changing its size; send this batch again.", field="files")
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
            # The ingest worker may run on another host (docs/architecture.md, "Object storage").
            objectstore.publish(storage.key_of(target), keep_copy=False)
            dataset_enqueue_ingest(dataset=dataset)
        except BaseException:
            storage.remove(target)
            raise
    return dataset
