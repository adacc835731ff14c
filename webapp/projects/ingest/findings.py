"""Which stored images show one picture: duplicates within a split, leakage across splits.

Two images are one picture when their decoded pixels are identical ("identical") or their
fingerprints are near (ingest/similar.py, "near"); a group is a connected component of that
relation. docs/decisions.md, "Near duplicates", says why and what it costs.
"""

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from . import similar
from .images import write_thumbnail

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Pictures:
    """The groups of images (indices into the accepted list) that show one picture."""

    key: list[str]  # per image: the smallest pixel digest in its group (its own when alone)
    groups: list[list[int]]  # the groups of two or more images
    links: dict[tuple[int, int], int]  # near pairs between images of different pixels, with distances
    pixels: list[str]


def link_pictures(pixels: list[str], prints: list[bytes]) -> Pictures:
    """Group images by identical pixels and by near fingerprints (``pixels`` and ``prints`` align)."""
    first_of: dict[str, int] = {}
    for i, digest in enumerate(pixels):
        first_of.setdefault(digest, i)
    # Identical pictures need no search, and a thousand copies of one picture are one query, not a
    # million pairs: the near search sees one image per pixel digest.
    representatives = list(first_of.values())
    near = similar.near_pairs([prints[i] for i in representatives])
    links = {(representatives[a], representatives[b]): d for (a, b), d in near.items()}
    pairs = [*links, *((first_of[d], i) for i, d in enumerate(pixels) if first_of[d] != i)]
    groups = similar.components(len(pixels), pairs)
    key = list(pixels)
    for members in groups:
        smallest = min(pixels[i] for i in members)
        for i in members:
            key[i] = smallest
    return Pictures(key=key, groups=groups, links=links, pixels=list(pixels))


def _kind_and_distance(pictures: Pictures, members: list[int], links: list[tuple[int, int, int]]) -> tuple[str, int]:
    """ "identical" (distance 0) when all ``members`` have the same pixels; else "near" and the largest
    distance of the links among them (of their whole group's ``links`` when they are linked only
    through images of another split)."""
    digests = {pictures.pixels[i] for i in members}
    if len(digests) == 1:
        return "identical", 0
    inside = [d for a, b, d in links if pictures.pixels[a] in digests and pictures.pixels[b] in digests]
    return "near", max(inside or [d for _, _, d in links])


def findings(accepted: list, pictures: Pictures) -> tuple[list[dict], list[dict]]:
    """Duplicate groups (two or more images of one picture in one split) and leakage groups (one
    picture in two or more of train, validation and test), as the report lists them.

    ``accepted`` items have ``split`` and ``item.relative``, in the order of ``pictures``.
    """
    group_of = {i: n for n, group in enumerate(pictures.groups) for i in group}
    links_of: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for (a, b), d in pictures.links.items():
        links_of[group_of[a]].append((a, b, d))
    duplicates, leakage = [], []
    for n, group in enumerate(pictures.groups):
        by_split: dict[str, list[int]] = defaultdict(list)
        for i in group:
            by_split[accepted[i].split].append(i)
        for split, members in by_split.items():
            if len(members) > 1:
                kind, distance = _kind_and_distance(pictures, members, links_of[n])
                files = sorted(str(accepted[i].item.relative) for i in members)
                duplicates.append(
                    {
                        "split": split,
                        "sha256": pictures.key[group[0]],
                        "files": files,
                        "kind": kind,
                        "distance": distance,
                    }
                )
        if len(by_split) > 1:
            kind, distance = _kind_and_distance(pictures, group, links_of[n])
            where = {split: sorted(str(accepted[i].item.relative) for i in by_split.get(split, [])) for split in SPLITS}
            leakage.append({"sha256": pictures.key[group[0]], **where, "kind": kind, "distance": distance})
    duplicates.sort(key=lambda g: (g["split"], g["sha256"]))
    leakage.sort(key=lambda g: g["sha256"])
    return duplicates, leakage


def leaked_copies(accepted: list, pictures: Pictures) -> list[int]:
    """The images a version without leakage leaves out: in each group that spans splits, those not in
    its first split (train, then validation, then test), so the training copy is the one kept."""
    out = []
    for group in pictures.groups:
        splits = {accepted[i].split for i in group}
        if len(splits) > 1:
            kept = next(s for s in SPLITS if s in splits)
            out += [i for i in group if accepted[i].split != kept]
    return sorted(out)


def group_thumbnails(
    path_of: dict[str, Path], report: dict, folder: Path, *, per_group: int, limit: int, max_pixels: int
) -> dict[str, int]:
    """Small thumbnails of the first ``per_group`` images of each listed leakage group, then of each
    listed duplicate group, ``limit`` in all, as ``folder/<n>.jpg``; returns {file as uploaded: n}."""
    shown: dict[str, int] = {}
    groups = [[f for split in SPLITS for f in g[split]] for g in report["leakage"]["items"]]
    groups += [g["files"] for g in report["duplicates"]["items"]]
    for files in groups:
        for file in files[:per_group]:
            if len(shown) >= limit:
                return shown
            if file not in shown:
                write_thumbnail(path_of[file], folder / f"{len(shown)}.jpg", max_pixels=max_pixels)
                shown[file] = len(shown)
    return shown
