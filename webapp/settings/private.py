"""Files that hold secrets (the generated secret key, the SQLite database) are their owner's alone.

Each is created with mode 0600 (its missing folder 0700) rather than chmod-ed after it was written,
so that there is no moment at which another user can open it; one left readable by an older
version is closed when the settings load.
"""

import os
import stat
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def _close_to_others(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            path.chmod(mode & ~0o077)
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{path} is open to other users (mode {mode:o}) and cannot be made private: {exc}"
            ) from exc


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) as 0700, or take group and other access off it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _close_to_others(path)


def private_file(path: Path) -> None:
    """Create `path` empty as 0600 unless it exists; take group and other access off it and off the
    SQLite companions (`-wal`, `-shm`, `-journal`) beside it."""
    if not path.parent.exists():
        private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        _close_to_others(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _close_to_others(companion)
