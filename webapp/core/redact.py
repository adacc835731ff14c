"""Server paths out of the texts users see.

Error messages quote exceptions, and exceptions name files: Keras's "File not found:
filepath=/srv/.../model.keras", an OSError's "[Errno 28] ...: '/var/...'", Redis's "unix socket:
/.../redis.sock". The log keeps the full text; what users see keeps only the file's own name.
"""

import re
import sys
import tempfile
from functools import cache
from pathlib import Path

from django.conf import settings

# A path ends inside a message at whitespace, a quote, a bracket, a comma or a semicolon.
_PATH_CHAR = r"[^\s'\"`()\[\]{}<>,;]"


@cache
def _pattern(roots: tuple[str, ...]) -> re.Pattern:
    # Longest first, so that /srv/app/var/storage is taken whole rather than as /srv/app plus a tail.
    alternatives = "|".join(re.escape(root) for root in sorted(roots, key=len, reverse=True))
    # The root ends where the text does, at a "/" or at a character a path cannot hold (so that a
    # root /srv/app leaves /srv/application alone).
    return re.compile(rf"(?:{alternatives})(?:/{_PATH_CHAR}*|(?=\.*(?!{_PATH_CHAR})))")


def _roots() -> tuple[str, ...]:
    candidates = [
        settings.BASE_DIR,
        settings.VAR_DIR,
        settings.TL_STORAGE_ROOT,
        settings.TL_WEIGHTS_DIR,
        settings.FILE_UPLOAD_TEMP_DIR,
        tempfile.gettempdir(),
        sys.prefix,
        Path.home(),
    ]
    roots = set()
    for candidate in filter(None, candidates):
        for form in (Path(candidate), Path(candidate).resolve()):
            text = str(form).rstrip("/")
            if len(Path(text).parts) > 1:  # never "/" itself: every path starts there
                roots.add(text)
    return tuple(roots)


def without_server_paths(text: str) -> str:
    """`text` with every path under a server folder (storage, temp, the code) cut to its last part."""
    if not text or "/" not in text:
        return text
    return _pattern(_roots()).sub(_last_part, text)


def _last_part(match: re.Match) -> str:
    path = match.group(0)
    # A full stop after a path ends the sentence, it is not part of the file's name.
    stem = path.rstrip(".")
    return Path(stem.rstrip("/")).name + path[len(stem) :]
