"""Pure-Python dataset ingest: safe zip extraction, layout detection, image checks, the report.

No Django here: paths and plain values in, dataclasses out, so the same code serves the web
upload, the Celery task and the import command, and is tested without a database.
"""

from .archive import ArchiveLimits, extract_zip
from .build import BuildOptions, BuildResult, build_dataset
from .errors import IngestError
from .paths import is_ignored, validate_relative_path

__all__ = [
    "ArchiveLimits",
    "BuildOptions",
    "BuildResult",
    "IngestError",
    "build_dataset",
    "extract_zip",
    "is_ignored",
    "validate_relative_path",
]
