"""Find the images of an upload and decide which split and class each belongs to.

Accepted shapes: `train/` + `validation/` (+ optionally `test/`) with class folders; the same
inside one wrapping folder (`data/train/...`, which is also what a browser folder pick sends);
class folders only, split later by a validation fraction (and a test fraction).
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import IngestError
from .paths import is_ignored

TRAIN_NAMES = frozenset({"train", "training"})
VALIDATION_NAMES = frozenset({"validation", "val", "valid"})
TEST_NAMES = frozenset({"test", "testing"})
SPLIT_NAMES = {**dict.fromkeys(TRAIN_NAMES, "train"), **dict.fromkeys(VALIDATION_NAMES, "validation")}
SPLIT_NAMES.update(dict.fromkeys(TEST_NAMES, "test"))
MAX_UNWRAP = 3
_UNSAFE = re.compile(r"[^\w.\-]+")


@dataclass(frozen=True)
class Item:
    relative: PurePosixPath  # as uploaded, for reports
    split: str | None  # "train" | "validation" | "test" | None (to be split by fraction)
    class_name: str
    output_name: str  # file name under <split>/<class>/, without suffix


@dataclass
class Plan:
    kind: str  # "splits" | "train-only" | "class-folders"
    wrapper: str  # folders stripped from the front, e.g. "data"
    items: list[Item] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Scan:
    files: list[PurePosixPath]
    ignored: int
    skipped: list[tuple[str, str]]


def scan_folder(root: Path) -> Scan:
    """Every regular file under `root`, sorted; hidden ones counted, links skipped."""
    files, skipped, ignored = [], [], 0
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        base = PurePosixPath(Path(folder).relative_to(root).as_posix())
        kept = []
        for d in dirnames:
            if is_ignored(d):
                ignored += sum(len(names) for _, _, names in os.walk(os.path.join(folder, d)))
                continue
            if os.path.islink(os.path.join(folder, d)):
                skipped.append((str(base / d), "symbolic link to a folder (not followed)"))
                continue
            kept.append(d)
        dirnames[:] = sorted(kept)
        for name in filenames:
            relative = base / name if str(base) != "." else PurePosixPath(name)
            if is_ignored(relative):
                ignored += 1
            elif os.path.islink(os.path.join(folder, name)):
                skipped.append((str(relative), "symbolic link (not followed)"))
            else:
                files.append(relative)
    files.sort()
    return Scan(files=files, ignored=ignored, skipped=skipped)


def _strip_wrappers(files: list[PurePosixPath]) -> tuple[list[PurePosixPath], list[str]]:
    stripped: list[str] = []
    for _ in range(MAX_UNWRAP):
        tops = {f.parts[0] for f in files}
        if len(tops) != 1:
            break
        top = next(iter(tops))
        if top.lower() in SPLIT_NAMES or not any(len(f.parts) >= 3 for f in files):
            break
        stripped.append(top)
        files = [PurePosixPath(*f.parts[1:]) for f in files]
    return files, stripped


def _output_name(inside_class: PurePosixPath) -> str:
    stem = "__".join([*inside_class.parts[:-1], inside_class.stem])
    return _UNSAFE.sub("_", stem)[:180] or "image"


def plan_layout(files: list[PurePosixPath]) -> Plan:
    """Assign each file a split (or None) and a class; list files that fit nowhere."""
    if not files:
        raise IngestError("the upload contains no files (hidden and system files are ignored)")
    inner, stripped = _strip_wrappers(files)
    tops = {f.parts[0].lower() for f in inner if len(f.parts) > 1}
    has_train, has_validation = bool(tops & TRAIN_NAMES), bool(tops & VALIDATION_NAMES)
    if (has_validation or tops & TEST_NAMES) and not has_train:
        raise IngestError("the upload has a validation/ or test/ folder but no train/ folder")
    kind = "class-folders" if not has_train else ("splits" if has_validation else "train-only")
    plan = Plan(kind=kind, wrapper="/".join(stripped))
    used: set[tuple[str | None, str, str]] = set()
    for original, rel in zip(files, inner, strict=True):
        shown = str(original)
        if kind == "class-folders":
            split, rest = None, rel.parts
        else:
            top = rel.parts[0].lower()
            if len(rel.parts) == 1 or top not in SPLIT_NAMES:
                plan.skipped.append((shown, "outside the train/, validation/ and test/ folders"))
                continue
            split, rest = SPLIT_NAMES[top], rel.parts[1:]
        if len(rest) < 2:
            plan.skipped.append((shown, "not inside a class folder"))
            continue
        class_name = rest[0]
        name = _output_name(PurePosixPath(*rest[1:]))
        candidate, n = name, 1
        while (split, class_name, candidate.lower()) in used:
            n += 1
            candidate = f"{name}-{n}"
        used.add((split, class_name, candidate.lower()))
        plan.items.append(Item(relative=original, split=split, class_name=class_name, output_name=candidate))
    return plan
