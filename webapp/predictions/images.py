"""Checks and decoding of images sent to predict, with the decoder training used.

Each image is verified like an uploaded dataset image, then decoded straight to the model's
input size by workers.ml.images (a JPEG at a reduced DCT scale, every image resized as soon as
it is decoded), so a request holds small arrays, not full-size pictures. The pixels a request
may decode are bounded as a whole, from the headers, before anything is decoded.
"""

from dataclasses import dataclass

import numpy as np

from workers.ml.images import (
    FORMAT_SUFFIXES,
    Header,
    ImageRejected,
    decode_image,
    decoded_pixels,
    read_header,
    verify,
)

__all__ = ["CheckedImage", "ImageRejected", "check_image", "read_checked_header"]


@dataclass(frozen=True)
class CheckedImage:
    data: bytes  # the bytes as sent, for stores that keep them
    format: str
    array: np.ndarray  # (height, width, 3) uint8 RGB at the model's input size

    @property
    def extension(self) -> str:
        return FORMAT_SUFFIXES.get(self.format, ".bin").lstrip(".")


def read_checked_header(data: bytes, *, max_bytes: int, max_pixels: int) -> Header:
    """Size and format checks that need no decoding; ImageRejected with the reason."""
    if not data:
        raise ImageRejected("empty: the image has no bytes")
    if len(data) > max_bytes:
        raise ImageRejected(f"too large: {len(data)} bytes, the limit is {max_bytes} (TL_PREDICT_MAX_IMAGE_BYTES)")
    return read_header(data, max_pixels=max_pixels)


def pixels_to_decode(header: Header, image_size: tuple[int, int]) -> int:
    """What decoding this image for ``image_size`` holds in memory at once, in pixels."""
    return decoded_pixels(header, image_size)


def check_image(
    data: bytes, *, image_size: tuple[int, int], max_bytes: int, max_pixels: int, header: Header | None = None
) -> CheckedImage:
    """Verify ``data`` and decode it for a model of ``image_size``; ImageRejected with the reason
    (empty, too large, not an image, too many pixels, corrupt). ``header``: what
    ``read_checked_header`` already answered for these bytes with these limits (not read again)."""
    if header is None:
        header = read_checked_header(data, max_bytes=max_bytes, max_pixels=max_pixels)
    verify(data)
    array = decode_image(data, tuple(image_size), max_pixels=max_pixels)
    return CheckedImage(data=data, format=header.format, array=array)
