"""Near-duplicate images: a perceptual fingerprint per image and the groups they form.

docs/decisions.md, "Near duplicates", has the rule, the measured distances behind its threshold and
the cost. In short: two images are near duplicates when their mean colours are close and, in one of
five alignments (the whole picture, or one of them with 3 % cut off one edge), pHash and dHash differ
in at most ``THRESHOLD`` of their 128 bits together. Groups are the connected components of that
relation (a union-find); the pairs are found exactly, comparing only images of neighbouring colours.

Pure Python and numpy, no Django: fingerprints are taken from the image the shared decoder returned
(EXIF orientation applied), so the same file gives the same fingerprint wherever it is read.
"""

import imagehash
import numpy as np
from PIL import Image

# Hashes are taken from the picture scaled to this longest side: a 12 MP photo costs one fast
# reducing resize instead of ten Lanczos passes over every pixel, and the hashes look at 32 px anyway.
HASH_SIDE = 128
# Edge variants: the picture with this share cut off the top, bottom, left or right. A copy cropped
# by 2-4 % off one edge is then within about 1 % of one variant instead of 4 % of the whole.
CROP = 0.03
# Largest pHash + dHash Hamming distance (of 64 + 64 bits) between near duplicates. Measured: planted
# copies cropped 2-4 % <= 12, others <= 7; distinct images >= 23 (docs/decisions.md, "Near duplicates").
THRESHOLD = 16
# Largest difference of mean colour, per channel (0-255). Hashes see only grey levels, and a picture
# without structure hashes alike in any colour; re-encodes, resizes and small crops move it <= 5.
COLOUR_TOLERANCE = 16
VARIANTS = 5  # the whole picture, then cropped at the top, bottom, left, right
# Pairs compared at once, per image searched: numpy's temporaries take ~10 bytes a pair, so the
# search holds at most ~100 bytes an image more (a 2,000-image upload 0.2 MB, 100,000 images 10 MB),
# and large uploads still compare in blocks big enough for numpy's per-call cost not to dominate.
_BLOCK_PAIRS_PER_IMAGE = 10
_BLOCK_PAIRS_MIN, _BLOCK_PAIRS_MAX = 20_000, 1_000_000


# A fingerprint is kept for every image of an upload until the groups are found, so it is one
# bytes object (~120 bytes with Python's overhead; 12 MB for 100,000 images): the pHash of each
# variant (8 bytes each, big-endian, the whole picture first), then their dHashes, then the mean colour.
FINGERPRINT_BYTES = 16 * VARIANTS + 3
_COLOUR = slice(16 * VARIANTS, FINGERPRINT_BYTES)


def codes(print_: bytes, variant: int) -> tuple[int, int]:
    """(pHash, dHash) of one variant of a fingerprint, as integers."""
    p, d = 8 * variant, 8 * (VARIANTS + variant)
    return int.from_bytes(print_[p : p + 8], "big"), int.from_bytes(print_[d : d + 8], "big")


def colour(print_: bytes) -> tuple[int, int, int]:
    """The mean R, G, B (0-255) of a fingerprint's picture."""
    return tuple(print_[_COLOUR])


def distance(a: bytes, b: bytes) -> int:
    """The smallest pHash + dHash distance over the alignments the search compares: the whole
    picture of one against each variant of the other, both ways."""
    pairs = [(0, k) for k in range(VARIANTS)] + [(k, 0) for k in range(1, VARIANTS)]
    return min(_distance(codes(a, i), codes(b, j)) for i, j in pairs)


def _distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    return (a[0] ^ b[0]).bit_count() + (a[1] ^ b[1]).bit_count()


def _bits(h: imagehash.ImageHash) -> bytes:
    return np.packbits(h.hash.flatten()).tobytes()


def _variants(gray: Image.Image) -> list[Image.Image]:
    w, h = gray.size
    dx, dy = (round(w * CROP) if w > 8 else 0), (round(h * CROP) if h > 8 else 0)
    return [
        gray,
        gray.crop((0, dy, w, h)),
        gray.crop((0, 0, w, h - dy)),
        gray.crop((dx, 0, w, h)),
        gray.crop((0, 0, w - dx, h)),
    ]


def fingerprint(image: Image.Image) -> bytes:
    """The fingerprint of a decoded RGB image (``workers.ml.images.decode_rgb``, EXIF applied)."""
    if max(image.size) > HASH_SIDE:
        scale = HASH_SIDE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    mean = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    variants = _variants(image.convert("L"))
    return (
        b"".join(_bits(imagehash.phash(v)) for v in variants)
        + b"".join(_bits(imagehash.dhash(v)) for v in variants)
        + bytes(np.rint(mean).astype(np.uint8).tolist())
    )


def near_pairs(
    prints: list[bytes], *, threshold: int = THRESHOLD, colour_tolerance: int = COLOUR_TOLERANCE
) -> dict[tuple[int, int], int]:
    """Every pair (i < j) of near duplicates among ``prints``, with its distance.

    The mean-colour rule is also the index: colours are binned in cells as wide as the tolerance, so
    a pair within it is in the same or a neighbouring cell, and only those are compared, every pair
    in every alignment (the whole picture of one against the five variants of the other, both ways),
    vectorized. Exact: it finds what comparing every pair would. See docs/decisions.md for its cost.
    """
    n = len(prints)
    if n < 2:
        return {}
    table = np.frombuffer(b"".join(prints), dtype=np.uint8).reshape(n, FINGERPRINT_BYTES)
    phash = table[:, : 8 * VARIANTS].copy().view(">u8").astype(np.uint64)
    dhash = table[:, 8 * VARIANTS : 16 * VARIANTS].copy().view(">u8").astype(np.uint64)
    colours = table[:, _COLOUR].astype(np.int64)
    cells: dict[tuple[int, ...], list[int]] = {}
    for i, cell in enumerate((colours // colour_tolerance).tolist()):
        cells.setdefault(tuple(cell), []).append(i)
    block = min(_BLOCK_PAIRS_MAX, max(_BLOCK_PAIRS_MIN, _BLOCK_PAIRS_PER_IMAGE * n))
    found = []
    for cell, members in cells.items():
        around = [cells.get(tuple(c + o for c, o in zip(cell, offset, strict=True)), []) for offset in _NEIGHBOURS]
        others = np.array(sorted(i for group in around for i in group))
        step = max(1, block // len(others))
        for start in range(0, len(members), step):
            queries = np.array(members[start : start + step])
            found.append(_compare(queries, others, phash, dhash, colours, threshold, colour_tolerance))
    a, b, d = np.concatenate(found, axis=1)
    # Each pair is seen from both sides (and so in all nine alignments): keep its smallest distance.
    first = np.lexsort((d, b, a))
    a, b, d = a[first], b[first], d[first]
    unique = np.ones(len(a), dtype=bool)
    unique[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return dict(zip(zip(a[unique].tolist(), b[unique].tolist(), strict=True), d[unique].tolist(), strict=True))


_NEIGHBOURS = [(r, g, b) for r in (-1, 0, 1) for g in (-1, 0, 1) for b in (-1, 0, 1)]


def _compare(queries, others, phash, dhash, colours, threshold, tolerance) -> np.ndarray:
    """Near pairs between the whole pictures of ``queries`` and every variant of ``others``: int64
    rows (i, j, distance) with i < j."""
    distance = np.full((len(queries), len(others)), 255, dtype=np.uint8)
    for v in range(VARIANTS):
        d = np.bitwise_count(phash[queries, :1] ^ phash[others, v][None, :])
        d += np.bitwise_count(dhash[queries, :1] ^ dhash[others, v][None, :])
        np.minimum(distance, d, out=distance)
    close = distance <= threshold
    close &= queries[:, None] != others[None, :]
    q, o = np.nonzero(close)
    q, o, d = queries[q], others[o], distance[q, o].astype(np.int64)
    keep = np.abs(colours[q] - colours[o]).max(axis=1) <= tolerance
    q, o, d = q[keep], o[keep], d[keep]
    return np.stack([np.minimum(q, o), np.maximum(q, o), d])


def components(n: int, pairs) -> list[list[int]]:
    """Connected components with two or more members (union-find), each sorted, in order of first member."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return [members for _, members in sorted(groups.items()) if len(members) > 1]
