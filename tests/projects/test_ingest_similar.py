import io
import itertools

import numpy as np
import pytest
from PIL import Image

from tests.projects.images import encode, picture, planted_copies
from webapp.projects.ingest.similar import (
    COLOUR_TOLERANCE,
    THRESHOLD,
    VARIANTS,
    codes,
    colour,
    components,
    distance,
    fingerprint,
    near_pairs,
)
from workers.ml.images import decode_rgb

KINDS = ["q60", "resized", "as-jpeg", "crop2", "crop4", "jpeg", "jpeg-as-png"]


def _print(data: bytes) -> bytes:
    return fingerprint(decode_rgb(data, None, max_pixels=10**7))


@pytest.mark.parametrize("seed", range(12))
def test_every_planted_copy_is_within_the_threshold(seed):
    original, copies = planted_copies(seed)
    for kind in KINDS:
        assert distance(_print(original), _print(copies[kind])) <= THRESHOLD, kind
    assert _print(copies["jpeg"]) == _print(copies["jpeg-as-png"])  # the same pixels


def test_distinct_pictures_are_farther_apart_than_the_threshold():
    prints = [_print(encode(picture(seed))) for seed in range(1000, 1150)]
    nearest = min(distance(a, b) for a, b in itertools.combinations(prints, 2))
    assert nearest > THRESHOLD + 4, nearest  # a margin, not a coin toss
    assert near_pairs(prints) == {}


def test_the_fingerprint_is_taken_after_the_exif_orientation():
    image = picture(5)
    stored = image.transpose(Image.Transpose.ROTATE_90)  # EXIF 6: turn it 90° clockwise to show it
    exif = Image.Exif()
    exif[0x0112] = 6
    tagged = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    assert distance(_print(tagged), _print(encode(image))) <= 4
    assert distance(_print(encode(stored)), _print(encode(image))) > THRESHOLD


def test_pictures_without_structure_are_told_apart_by_colour():
    grey, red, dark_red = (
        encode(Image.new("RGB", (80, 60), c)) for c in [(128, 128, 128), (200, 30, 30), (190, 30, 30)]
    )
    assert near_pairs([_print(grey), _print(red)]) == {}  # the hashes alone cannot tell flat images apart
    assert near_pairs([_print(red), _print(dark_red)]) == {(0, 1): 0}
    assert COLOUR_TOLERANCE >= 10


def _fingerprint(p: int, d: int, rgb) -> bytes:
    return p.to_bytes(8, "big") * VARIANTS + d.to_bytes(8, "big") * VARIANTS + bytes(rgb)


def _flipped(code: int, bits: list[int]) -> int:
    for bit in bits:
        code ^= 1 << int(bit)
    return code


def test_the_search_finds_exactly_the_pairs_a_comparison_of_every_pair_finds():
    # Codes at every distance around the threshold, spread over all 128 bits, and colours on both sides
    # of the tolerance and of the search's colour cells, checked against comparing every pair.
    rng = np.random.default_rng(3)
    prints = []
    for _ in range(80):
        base = [int(rng.integers(0, 2**63)) * 2 + 1 for _ in range(2)]
        base_colour = rng.integers(COLOUR_TOLERANCE, 60, 3)
        for bits in rng.choice(THRESHOLD + 6, size=4):
            flips = rng.choice(128, size=int(bits), replace=False)
            p, d = (
                _flipped(base[0], [b for b in flips if b < 64]),
                _flipped(base[1], [b - 64 for b in flips if b >= 64]),
            )
            shade = (base_colour + rng.integers(-COLOUR_TOLERANCE, COLOUR_TOLERANCE + 1, 3)).tolist()
            prints.append(_fingerprint(p, d, shade))

    def near(a, b):
        return (
            distance(a, b) <= THRESHOLD
            and max(abs(x - y) for x, y in zip(colour(a), colour(b), strict=True)) <= COLOUR_TOLERANCE
        )

    expected = {(i, j): distance(a, b) for (i, a), (j, b) in itertools.combinations(enumerate(prints), 2) if near(a, b)}
    assert len(expected) > 40
    assert near_pairs(prints) == expected


def test_a_copy_cropped_off_one_edge_is_matched_through_the_edge_variants():
    image = picture(9)
    w, h = image.size
    cropped = _print(encode(image.crop((0, round(h * 0.04), w, h))))
    whole = _print(encode(image))
    a, b = codes(whole, 0), codes(cropped, 0)
    plain = (a[0] ^ b[0]).bit_count() + (a[1] ^ b[1]).bit_count()
    assert distance(whole, cropped) < plain


def test_components_join_chains_and_leave_single_images_out():
    assert components(6, [(0, 2), (2, 4), (5, 3)]) == [[0, 2, 4], [3, 5]]
    assert components(3, []) == []


def test_it_fingerprints_large_images_at_a_small_size():
    big = picture(4).resize((3000, 2000), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    small = picture(4).resize((300, 200), Image.Resampling.BICUBIC)
    assert distance(_print(buffer.getvalue()), _print(encode(small))) <= 4
