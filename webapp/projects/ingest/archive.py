"""Safe zip extraction (docs/decisions.md, "Zip extraction"): every entry is checked before a byte is written.

The sizes in a zip's headers are the attacker's word, so limits are enforced on the bytes
actually written, in chunks; nothing is ever read whole into memory and inner archives are
written as plain files (and later skipped), never opened.
"""

import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import IngestError
from .paths import is_ignored, validate_relative_path

CHUNK = 1 << 20
# Small entries may compress far better than the ratio limit (a blank PNG, a text file) and
# cannot hurt one by one: the per-entry ratio is only enforced past this many bytes. Many such
# entries together can (2,000 zero-filled MiB fit in a 2.3 MB zip), so the ratio is also
# enforced on the archive as a whole, with the same slack for small archives.
RATIO_SLACK_BYTES = 1 << 20
ENCRYPTED_FLAG = 0x1


@dataclass(frozen=True)
class ArchiveLimits:
    max_total_bytes: int
    max_entries: int
    max_ratio: int


@dataclass
class ExtractResult:
    files: int = 0
    bytes_written: int = 0
    ignored: int = 0


def _entry_count_from_end_record(path: Path) -> int | None:
    # Read the count from the end-of-central-directory record before ZipFile loads every
    # header into memory: a forged directory of millions of entries is refused cheaply.
    with open(path, "rb") as fh:
        record = zipfile._EndRecData(fh)  # noqa: SLF001 - stable since Python 2; no public equivalent
    return None if not record else record[zipfile._ECD_ENTRIES_TOTAL]


def check_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    """Refuse unsafe entries: bad names, symlinks, encryption, an impossible compression ratio."""
    name = info.orig_filename
    validate_relative_path(name.rstrip("/") if info.is_dir() else name, what="zip entry")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise IngestError(f"zip entry {name!r} is a symbolic link; links are not allowed")
    if info.flag_bits & ENCRYPTED_FLAG:
        raise IngestError(f"zip entry {name!r} is encrypted; upload an archive without a password")
    if info.file_size > RATIO_SLACK_BYTES and info.file_size > max(info.compress_size, 1) * limits.max_ratio:
        raise IngestError(
            f"zip entry {name!r} expands {info.file_size // max(info.compress_size, 1)}x, "
            f"more than the limit of {limits.max_ratio}x (a zip bomb?)"
        )


def extract_zip(zip_path: Path, dest: Path, *, limits: ArchiveLimits) -> ExtractResult:
    """Extract `zip_path` under `dest` (an empty folder), or raise IngestError naming the entry.

    Hidden and system entries (__MACOSX/, .DS_Store, dotfiles) are not extracted at all. The
    whole archive may expand to at most `max_ratio` times its own size and `max_total_bytes`.
    """
    dest = Path(dest)
    try:
        declared = _entry_count_from_end_record(zip_path)
        if declared is not None and declared > limits.max_entries:
            raise IngestError(f"the archive has {declared} entries, more than the limit of {limits.max_entries}")
        with zipfile.ZipFile(zip_path) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_entries:
                raise IngestError(f"the archive has {len(infos)} entries, more than the limit of {limits.max_entries}")
            for info in infos:
                check_entry(info, limits)
            check_names(infos)
            archive_bytes = Path(zip_path).stat().st_size
            # The headers' sizes first, so an honest bomb is refused before a byte is written;
            # then the bytes actually written, so a lying header cannot get further.
            declared_sizes = _Budget(limits, archive_bytes=archive_bytes)
            for info in infos:
                if not info.is_dir() and not is_ignored(info.orig_filename):
                    declared_sizes.add(info.file_size, info.orig_filename)
            written = _Budget(limits, archive_bytes=archive_bytes)
            result = ExtractResult()
            for info in infos:
                _extract_entry(archive, info, dest, limits, result, written)
            return result
    except zipfile.BadZipFile as exc:
        raise IngestError(f"the upload is not a readable zip archive ({exc})") from None


class _Budget:
    """Bytes the whole archive may expand to: the total limit and the ratio to the zip's own size."""

    def __init__(self, limits: ArchiveLimits, *, archive_bytes: int):
        self.limits, self.archive_bytes, self.used = limits, archive_bytes, 0
        self.ratio_cap = max(archive_bytes * limits.max_ratio, RATIO_SLACK_BYTES)

    def add(self, size: int, name: str) -> None:
        self.used += size
        if self.used > self.limits.max_total_bytes:
            raise IngestError(
                f"the archive expands past the limit of {self.limits.max_total_bytes} bytes (at entry {name!r})"
            )
        if self.used > self.ratio_cap:
            raise IngestError(
                f"the archive expands past {self.limits.max_ratio}x its own size of {self.archive_bytes} bytes "
                f"(at entry {name!r}, {self.used} bytes so far): a zip bomb?"
            )


def check_names(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse two entries for one path, and a file whose path is also a folder of another entry."""
    files: dict[PurePosixPath, str] = {}
    folders: dict[PurePosixPath, str] = {}
    for info in infos:
        name = info.orig_filename
        relative = validate_relative_path(name.rstrip("/"), what="zip entry")
        if is_ignored(relative):
            continue
        implied = list(relative.parents)[:-1] + ([relative] if info.is_dir() else [])
        for folder in implied:
            if folder in files:
                raise IngestError(
                    f"zip entry {name!r} needs a folder {folder.as_posix()!r}, "
                    f"but zip entry {files[folder]!r} is a file of that name"
                )
            folders.setdefault(folder, name)
        if info.is_dir():
            continue
        if relative in files:
            raise IngestError(f"zip entry {name!r} appears more than once in the archive")
        if relative in folders:
            raise IngestError(f"zip entry {name!r} is a file, but zip entry {folders[relative]!r} makes it a folder")
        files[relative] = name


def _extract_entry(archive, info, dest: Path, limits: ArchiveLimits, result: ExtractResult, budget: _Budget) -> None:
    name = info.orig_filename
    relative = validate_relative_path(name.rstrip("/"), what="zip entry")
    if is_ignored(relative):
        result.ignored += not info.is_dir()
        return
    target = dest.joinpath(*relative.parts)
    # Belt and braces: the name checks above already make this impossible.
    if not target.resolve().is_relative_to(dest.resolve()):
        raise IngestError(f"zip entry {name!r} would be written outside the dataset folder")
    try:
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        entry_cap = max(info.compress_size * limits.max_ratio, RATIO_SLACK_BYTES)
        written = 0
        with archive.open(info) as src, open(target, "xb") as out:
            while block := src.read(CHUNK):
                written += len(block)
                result.bytes_written += len(block)
                budget.add(len(block), name)
                if written > entry_cap:
                    raise IngestError(
                        f"zip entry {name!r} expands more than {limits.max_ratio}x its compressed size (a zip bomb?)"
                    )
                out.write(block)
        result.files += 1
    except FileExistsError:
        raise IngestError(f"zip entry {name!r} appears more than once in the archive") from None
    except (NotADirectoryError, IsADirectoryError):
        raise IngestError(f"zip entry {name!r} clashes with a file or folder of the same name") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise IngestError(f"zip entry {name!r} is corrupt ({exc})") from None
    except NotImplementedError as exc:
        raise IngestError(f"zip entry {name!r} uses an unsupported compression method ({exc})") from None
