"""Rules for names that come from users: zip entry names and browser relative paths."""

import re
from pathlib import PurePosixPath

from workers.ml.images import IMAGE_SUFFIXES

from .errors import IngestError

ARCHIVE_SUFFIXES = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"})
# Files that operating systems and archivers add on their own: ignored without a word.
SYSTEM_NAMES = frozenset({"__macosx", ".ds_store", "thumbs.db", "desktop.ini", ".spotlight-v100", ".trashes"})
MAX_PATH_CHARS = 1024
MAX_COMPONENT_CHARS = 255
_DRIVE = re.compile(r"^[A-Za-z]:")


def validate_relative_path(name: str, *, what: str = "path") -> PurePosixPath:
    """Return `name` as a safe relative POSIX path, or raise IngestError naming it.

    Refuses absolute paths, drive letters, backslashes, NUL and control characters, and `.`/`..`
    components, so that joining the result under a folder can never leave that folder.
    """
    if not name or len(name) > MAX_PATH_CHARS:
        raise IngestError(f"{what} {name!r} is empty or longer than {MAX_PATH_CHARS} characters")
    if "\x00" in name or any(ord(ch) < 32 for ch in name):
        raise IngestError(f"{what} {name!r} contains a NUL or control character")
    if "\\" in name:
        raise IngestError(f"{what} {name!r} contains a backslash")
    if name.startswith("/") or _DRIVE.match(name):
        raise IngestError(f"{what} {name!r} is an absolute path")
    parts = name.rstrip("/").split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise IngestError(f"{what} {name!r} has a {part or 'empty'!r} component")
        if len(part) > MAX_COMPONENT_CHARS:
            raise IngestError(f"{what} {name!r} has a component longer than {MAX_COMPONENT_CHARS} characters")
    return PurePosixPath(*parts)


def is_ignored(relative: PurePosixPath | str) -> bool:
    """Hidden and system files and folders (dotfiles, __MACOSX/, Thumbs.db): skipped quietly."""
    for part in PurePosixPath(relative).parts:
        if part.startswith(".") or part.lower() in SYSTEM_NAMES:
            return True
    return False


def skip_reason_for_suffix(relative: PurePosixPath) -> str | None:
    """Why a file is not even opened as an image, or None when its extension is an image's."""
    suffix = relative.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return None
    if suffix in ARCHIVE_SUFFIXES:
        return "archive inside the upload (inner archives are not opened)"
    return f"not an image file ({suffix or 'no extension'})"
