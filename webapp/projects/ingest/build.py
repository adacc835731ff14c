"""Turn a folder of uploaded files into the canonical dataset layout plus a report.

Each accepted image is stored as the user's own bytes (see ingest/images.py). Duplicates and
leakage are found by the SHA-256 of the decoded RGB pixels (the same picture in two lossless
formats or with other metadata) and by perceptual fingerprints (a re-encoded, resized or slightly
cropped copy; ingest/findings.py). Copies of one picture always land in one split when this code
splits; the dataset's content hash is over the stored bytes, exactly what training reads.
"""

import hashlib
import os
import random
import shutil
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import similar
from .errors import IngestError
from .findings import Pictures, findings, group_thumbnails, leaked_copies, link_pictures
from .images import ImageRejected, store_image, write_thumbnail
from .layout import Item, plan_layout, scan_folder
from .paths import skip_reason_for_suffix

SPLITS = ("train", "validation", "test")
POOL = "_pool"
# A test split is carved from the training images only when every class keeps at least this many
# training groups and gets one test image; below that, the dataset has no test split (it says so).
MIN_TRAIN_FOR_TEST = 10
# The largest share of a class's training images a test split may take: the upload form, the API and
# TL_TEST_FRACTION (webapp/settings/base.py, which cannot import this module, repeats it) are held to it.
MAX_TEST_FRACTION = 0.5


@dataclass(frozen=True)
class BuildOptions:
    max_pixels: int
    validation_fraction: float = 0.2
    # Share of each class's training images set aside as a test split when the upload has no
    # test/ folder (0: none). Duplicate groups stay together, so no picture is in two splits.
    test_fraction: float = 0.0
    seed: int = 20240607
    thumbnails_per_class: int = 4
    imbalance_ratio: float = 3.0
    max_listed: int = 500  # longest list of files kept in the report, per section
    # Thumbnails of the images in listed duplicate and leakage groups: at most this many per group,
    # and this many in all (the first groups get them).
    thumbnails_per_group: int = 4
    max_group_thumbnails: int = 200
    # Leave out the validation and test copies of every picture that is in more than one split
    # (a version "without leaked images"); the first split's copy is kept, train before the others.
    drop_leaked: bool = False


@dataclass
class Accepted:
    item: Item
    path: Path
    width: int
    height: int
    sha256: str  # of the stored bytes
    pixels: str  # sha256 of the decoded pixels: identity of the picture
    split: str | None
    fingerprint: bytes = b""  # perceptual (ingest/similar.py)
    # The picture it shows: its pixel digest, or the smallest one of its group of copies.
    picture: str = ""


@dataclass
class BuildResult:
    classes: list[dict]  # [{name, train_count, validation_count, test_count}], sorted by name
    content_hash: str
    stats: dict
    report: dict
    warnings: list[str] = field(default_factory=list)


def _listed(entries: list, limit: int) -> dict:
    return {"items": entries[:limit], "total": len(entries)}


def _auto_split(accepted: list[Accepted], out: Path, options: BuildOptions) -> None:
    """Stratified per class with a fixed seed; copies of one picture always land in the same split."""
    by_class: dict[str, dict[str, list[Accepted]]] = defaultdict(lambda: defaultdict(list))
    for a in accepted:
        by_class[a.item.class_name][a.picture].append(a)
    for class_name, groups in by_class.items():
        hashes = sorted(groups)
        random.Random(f"{options.seed}:{class_name}").shuffle(hashes)
        n_val = round(len(hashes) * options.validation_fraction) if len(hashes) > 1 else 0
        n_val = max(n_val, 1) if len(hashes) > 1 else 0
        validation = set(hashes[:n_val])
        for digest, members in groups.items():
            for a in members:
                a.split = "validation" if digest in validation else "train"
                target = out / a.split / class_name / a.path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(a.path, target)
                a.path = target
    shutil.rmtree(out / POOL, ignore_errors=True)


def _carve_test(accepted: list[Accepted], out: Path, options: BuildOptions) -> str | None:
    """Move a stratified, seeded share of each class's training images to test/; duplicate groups
    move together. Returns why no test split was carved, or None when it was."""
    by_class: dict[str, dict[str, list[Accepted]]] = defaultdict(lambda: defaultdict(list))
    for a in accepted:
        if a.split == "train":
            by_class[a.item.class_name][a.picture].append(a)
    plan = {}
    for class_name, groups in by_class.items():
        n_test = int(len(groups) * options.test_fraction)
        if n_test < 1 or len(groups) - n_test < MIN_TRAIN_FOR_TEST:
            return (
                f"too few training images in {class_name!r} ({len(groups)}) to set {options.test_fraction:.0%} aside "
                f"as a test split and keep {MIN_TRAIN_FOR_TEST}; the numbers are measured on validation"
            )
        hashes = sorted(groups)
        random.Random(f"{options.seed}:test:{class_name}").shuffle(hashes)
        plan[class_name] = set(hashes[:n_test])
    for class_name, chosen in plan.items():
        for digest in chosen:
            for a in by_class[class_name][digest]:
                target = out / "test" / class_name / a.path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(a.path, target)
                a.path, a.split = target, "test"
    return None


def _class_problems(plan_classes: dict[str, set], counts: dict[str, dict[str, int]], kind: str) -> list[str]:
    names = sorted(plan_classes["train"] | plan_classes["validation"] | plan_classes[None])
    if len(names) < 2:
        found = ", ".join(repr(n) for n in names) or "none"
        return [f"a dataset needs at least 2 classes; found {len(names)} ({found})"]
    problems = []
    no_train = [n for n in names if counts[n]["train"] == 0]
    if no_train:
        problems.append("class(es) without training images: " + ", ".join(map(repr, no_train)))
    if kind == "splits":
        only_train = sorted(plan_classes["train"] - plan_classes["validation"])
        only_val = sorted(plan_classes["validation"] - plan_classes["train"])
        if only_train or only_val:
            problems.append(
                "class sets differ between train/ and validation/: "
                f"only in train: {', '.join(map(repr, only_train)) or 'none'}; "
                f"only in validation: {', '.join(map(repr, only_val)) or 'none'}"
            )
    missing_val = [n for n in names if counts[n]["validation"] == 0 and n not in no_train]
    if kind == "splits":
        missing_val = [n for n in missing_val if n in plan_classes["validation"]]
    if missing_val:
        problems.append(
            "class(es) missing from validation (no usable validation images): " + ", ".join(map(repr, missing_val))
        )
    if plan_classes["test"]:  # an uploaded test/ folder must test every class, and only those
        only_test = sorted(plan_classes["test"] - set(names))
        missing_test = [n for n in names if counts[n]["test"] == 0 and n not in no_train]
        if only_test:
            problems.append("class(es) in test/ but not in train/: " + ", ".join(map(repr, only_test)))
        if missing_test:
            problems.append(
                "class(es) missing from test (no usable test images): " + ", ".join(map(repr, missing_test))
            )
    return problems


def _size_stats(values: list[int]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)} if values else {}


def _store_all(source: Path, out: Path, plan, options: BuildOptions, progress, skipped: list) -> tuple[list, dict]:
    """Step 1: verify and store every planned image; the refused ones go to ``skipped``.

    Returns the accepted images and the classes the plan found in each split.
    """
    plan_classes: dict[str | None, set] = {"train": set(), "validation": set(), "test": set(), None: set()}
    accepted: list[Accepted] = []
    for index, item in enumerate(plan.items):
        plan_classes[item.split].add(item.class_name)
        reason = skip_reason_for_suffix(item.relative)
        if reason is None:
            stem = out / (item.split or POOL) / item.class_name / item.output_name
            try:
                info = store_image(source.joinpath(*item.relative.parts), stem, max_pixels=options.max_pixels)
            except ImageRejected as exc:
                reason = str(exc)
            else:
                accepted.append(
                    Accepted(
                        item, info.path, info.width, info.height, info.sha256, info.pixels_sha256, item.split,
                        fingerprint=info.fingerprint,
                    )
                )  # fmt: skip
        if reason is not None:
            skipped.append({"file": str(item.relative), "reason": reason})
        if progress and (index % 50 == 0):
            progress(0.9 * index / max(len(plan.items), 1))
    return accepted, plan_classes


def _test_split(accepted: list[Accepted], out: Path, options: BuildOptions, *, uploaded: bool) -> dict:
    """Step 2b: where the test images come from: "uploaded" (a test/ folder), "carved" from the
    training images (``options.test_fraction``), or "none" (with the reason, when one was asked)."""
    if uploaded:
        return {"source": "uploaded", "fraction": None, "reason": ""}
    if options.test_fraction <= 0:
        return {"source": "none", "fraction": 0.0, "reason": ""}
    reason = _carve_test(accepted, out, options)
    if reason:
        return {"source": "none", "fraction": options.test_fraction, "reason": reason}
    return {"source": "carved", "fraction": options.test_fraction, "reason": ""}


def _class_counts(accepted: list[Accepted], names: list[str]) -> tuple[dict, list[dict]]:
    """Step 3: images per class and split, as a lookup and as the report's class rows."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    for a in accepted:
        counts[a.item.class_name][a.split] += 1
    classes = [{"name": n, **{f"{split}_count": counts[n][split] for split in SPLITS}} for n in names]
    return counts, classes


def _report(*, scan, plan, options, classes, skipped, accepted, pictures, removed, test_split) -> dict:
    """Step 4: the dataset report shown to the user (lists cut at ``max_listed``)."""
    limit = options.max_listed
    duplicates, leakage = findings(accepted, pictures)
    return {
        "layout": plan.kind,
        "wrapper": plan.wrapper,
        "validation_fraction": options.validation_fraction if plan.kind != "splits" else None,
        "test_split": test_split,
        "seed": options.seed,
        "classes": classes,
        "totals": {
            **{split: sum(c[f"{split}_count"] for c in classes) for split in SPLITS},
            "skipped": len(skipped),
            "ignored": scan.ignored,
            "duplicate_groups": len(duplicates),
            "near_duplicate_groups": sum(g["kind"] == "near" for g in duplicates),
            # Pictures in more than one split, and their copies outside the first split (what a
            # version without leaked images leaves out).
            "leaked_images": len(leakage),
            "near_leaked_images": sum(g["kind"] == "near" for g in leakage),
            "leaked_copies": len(leaked_copies(accepted, pictures)),
        },
        "near_duplicates": {"threshold": similar.THRESHOLD, "colour_tolerance": similar.COLOUR_TOLERANCE},
        "without_leaks": None if removed is None else _listed(removed, limit),
        "skipped": _listed(skipped, limit),
        "duplicates": _listed(duplicates, limit),
        "leakage": _listed(leakage, limit),
        "image_sizes": {
            "width": _size_stats([a.width for a in accepted]),
            "height": _size_stats([a.height for a in accepted]),
        },
        "warnings": [],
        "thumbnails": {},
        "group_thumbnails": {},
    }


def _warnings(classes: list[dict], options: BuildOptions, *, totals: dict, skipped) -> list[str]:
    """Step 6: what the user should know about a usable dataset."""
    warnings = []
    train_counts = {c["name"]: c["train_count"] for c in classes}
    most, least = max(train_counts, key=train_counts.get), min(train_counts, key=train_counts.get)
    if train_counts[most] > options.imbalance_ratio * train_counts[least]:
        warnings.append(
            f"Class imbalance: {most!r} has {train_counts[most]} training images but {least!r} has "
            f"{train_counts[least]} ({train_counts[most] / train_counts[least]:.1f}x)."
        )
    if totals["duplicate_groups"]:
        near = totals["near_duplicate_groups"]
        warnings.append(
            f"{totals['duplicate_groups']} group(s) of identical images within a split"
            + (f" ({near} of them near copies: re-encoded, resized or cropped)." if near else ".")
        )
    if totals["leaked_images"]:
        near = totals["near_leaked_images"]
        warnings.append(
            f"{totals['leaked_images']} image(s) appear in more than one of train, validation and test (leakage"
            + (f", {near} of them as near copies" if near else "")
            + f"); {totals['leaked_copies']} copies outside the first split."
        )
    if skipped:
        warnings.append(f"{len(skipped)} file(s) were skipped; see the list.")
    return warnings


def _link_pictures(accepted: list[Accepted]) -> Pictures:
    """Step 1b: which images show one picture (identical pixels or near fingerprints)."""
    pictures = link_pictures([a.pixels for a in accepted], [a.fingerprint for a in accepted])
    for a, key in zip(accepted, pictures.key, strict=True):
        a.picture = key
    return pictures


def _drop_leaked(accepted: list[Accepted], pictures: Pictures) -> tuple[list[Accepted], list[str]]:
    """Step 2c, for a version without leaked images: delete the copies outside each picture's first split.

    Returns the images kept and the files left out (as uploaded).
    """
    dropped = set(leaked_copies(accepted, pictures))
    for i in dropped:
        accepted[i].path.unlink()
    return [a for i, a in enumerate(accepted) if i not in dropped], sorted(
        str(accepted[i].item.relative) for i in dropped
    )


def _content_hash(accepted: list[Accepted]) -> str:
    """Step 7: one digest over what training reads (split, class and stored bytes of every image)."""
    digest = hashlib.sha256()
    for line in sorted(f"{a.split}/{a.item.class_name}/{a.sha256}" for a in accepted):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def _thumbnails(accepted: list[Accepted], names: list[str], out: Path, options: BuildOptions) -> dict:
    """Step 8: the first few training images of each class, small, for the report."""
    train_paths: dict[str, list[Path]] = defaultdict(list)
    for a in accepted:
        if a.split == "train":
            train_paths[a.item.class_name].append(a.path)
    thumbnails = {}
    for name in names:
        thumbs = []
        for i, path in enumerate(sorted(train_paths[name])[: options.thumbnails_per_class]):
            write_thumbnail(path, out / "thumbs" / name / f"{i}.jpg", max_pixels=options.max_pixels)
            thumbs.append(f"{i}.jpg")
        thumbnails[name] = thumbs
    return thumbnails


def build_dataset(
    source: Path, out: Path, *, options: BuildOptions, progress: Callable[[float], None] | None = None
) -> BuildResult:
    """Verify every image under `source` and store it into `out` (an empty folder), with a report.

    Raises IngestError naming the classes or files when the result would not be a usable
    dataset; the caller removes `out` then. `progress` receives fractions in [0, 1].
    """
    scan = scan_folder(Path(source))
    plan = plan_layout(scan.files)
    skipped = [{"file": f, "reason": r} for f, r in scan.skipped + plan.skipped]
    accepted, plan_classes = _store_all(Path(source), out, plan, options, progress, skipped)
    pictures = _link_pictures(accepted)
    if plan.kind != "splits":  # step 2: class folders only: split them
        _auto_split(accepted, out, options)
        plan_classes["train"] |= plan_classes.pop(None)
        plan_classes[None] = set()
    test_split = _test_split(accepted, out, options, uploaded=bool(plan_classes["test"]))
    removed = None
    if options.drop_leaked:  # step 2c
        accepted, removed = _drop_leaked(accepted, pictures)
        pictures = _link_pictures(accepted)
    names = sorted(plan_classes["train"] | plan_classes["validation"])
    counts, classes = _class_counts(accepted, names)
    report = _report(
        scan=scan, plan=plan, options=options, classes=classes, skipped=skipped, accepted=accepted,
        pictures=pictures, removed=removed, test_split=test_split,
    )  # fmt: skip
    problems = _class_problems(plan_classes, counts, plan.kind)  # step 5
    if problems:
        raise IngestError("; ".join(problems), report=report)
    report["warnings"] = _warnings(classes, options, totals=report["totals"], skipped=skipped)
    content_hash = _content_hash(accepted)
    report["thumbnails"] = _thumbnails(accepted, names, out, options)
    report["group_thumbnails"] = group_thumbnails(
        {str(a.item.relative): a.path for a in accepted}, report, out / "groups",
        per_group=options.thumbnails_per_group, limit=options.max_group_thumbnails, max_pixels=options.max_pixels,
    )  # fmt: skip
    if progress:
        progress(1.0)
    if test_split["source"] == "none" and test_split["reason"]:
        report["warnings"].append(f"No test split: {test_split['reason']}.")
    stats = {
        "images": len(accepted),
        **{split: report["totals"][split] for split in SPLITS},
        "classes": len(names),
        "image_sizes": report["image_sizes"],
    }
    return BuildResult(
        classes=classes, content_hash=content_hash, stats=stats, report=report, warnings=report["warnings"]
    )
