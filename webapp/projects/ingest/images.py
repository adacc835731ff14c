"""Verify one uploaded image and store the user's own bytes (docs/decisions.md, "One decoder").

Every accepted image is decoded in full here with the decoder that training, evaluation and
predict share (workers.ml.images), so a file that cannot be read never reaches training, and
the bytes stored are the bytes the user sent: evaluation sees exactly what predict will see
when the same file is sent to it. Nothing is re-encoded. The same decoded image gives the
pixel digest (identical copies) and the perceptual fingerprint (near copies, ingest/similar.py).
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from workers.ml.images import (
    ACCEPTED_FORMATS,
    IMAGE_SUFFIXES,
    ImageRejected,
    decode_rgb,
    read_header,
    to_rgb,
    verify,
)

from .similar import fingerprint

__all__ = ["ACCEPTED_FORMATS", "IMAGE_SUFFIXES", "ImageInfo", "ImageRejected", "store_image", "to_rgb"]

THUMB_SIZE = (128, 128)


@dataclass(frozen=True)
class ImageInfo:
    width: int  # after EXIF orientation
    height: int
    source_format: str
    source_mode: str
    sha256: str  # of the stored bytes (what training reads)
    pixels_sha256: str  # of the decoded RGB pixels: equal for the same picture in any format
    fingerprint: bytes  # perceptual hashes: near for a re-encoded, resized or cropped copy (similar.py)
    path: Path  # where it was stored (the suffix follows the detected format)


def pixels_digest(image: Image.Image) -> str:
    """sha256 over the size and the RGB pixels: the same picture saved as PNG, BMP or with
    other metadata gives the same digest (used for duplicates and leakage)."""
    digest = hashlib.sha256(f"{image.width}x{image.height}:".encode())
    digest.update(np.ascontiguousarray(np.asarray(image, dtype=np.uint8)).data)
    return digest.hexdigest()


def store_image(src: Path, dest_stem: Path, *, max_pixels: int) -> ImageInfo:
    """Verify ``src`` completely and copy its bytes to ``dest_stem`` + the suffix of its format.

    Raises ImageRejected with the reason (not an image, too many pixels, corrupt).
    """
    data = Path(src).read_bytes()
    header = read_header(data, max_pixels=max_pixels)
    verify(data)
    rgb = decode_rgb(data, None, max_pixels=max_pixels)
    dest = dest_stem.with_name(dest_stem.name + header.suffix)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "xb") as out:
        out.write(data)
    return ImageInfo(
        width=rgb.width,
        height=rgb.height,
        source_format=header.format,
        source_mode=header.mode,
        sha256=hashlib.sha256(data).hexdigest(),
        pixels_sha256=pixels_digest(rgb),
        fingerprint=fingerprint(rgb),
        path=dest,
    )


def write_thumbnail(src: Path, dest: Path, *, max_pixels: int) -> None:
    """A small JPEG of a stored (already verified) dataset image, EXIF orientation applied."""
    image = decode_rgb(Path(src).read_bytes(), THUMB_SIZE, max_pixels=max_pixels)
    image.thumbnail(THUMB_SIZE)
    dest.parent.mkdir(parents=True, exist_ok=True)
    image.save(dest, format="JPEG", quality=80)
