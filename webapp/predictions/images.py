"""Pillow checks for images sent to predict: the ingest rules, safe to run from many threads.

Ingest (webapp.projects.ingest.images) sets Pillow's process-wide bomb guard because a worker
checks one image at a time; a web process serves requests from several threads, so the pixel
count is checked here from the header, before anything is decoded, and the globals are left alone.
Images are decoded by Pillow (EXIF orientation applied, alpha flattened on white), exactly as
ingest did before training, and handed to the model as RGB arrays.
"""

import io
from dataclasses import dataclass

import numpy as np
from PIL import ImageOps

from webapp.projects.ingest.images import ImageRejected, open_verified, to_rgb

_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "WEBP": "webp", "TIFF": "tif"}


@dataclass(frozen=True)
class CheckedImage:
    data: bytes  # the bytes as sent, for stores that keep them
    format: str
    array: np.ndarray  # (height, width, 3) uint8 RGB

    @property
    def extension(self) -> str:
        return _EXTENSIONS.get(self.format, "bin")


def check_image(data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Verify and fully decode `data`; raise ImageRejected with the reason (empty, too large, not an
    image, too many pixels, corrupt)."""
    if not data:
        raise ImageRejected("empty: the image has no bytes")
    if len(data) > max_bytes:
        raise ImageRejected(f"too large: {len(data)} bytes, the limit is {max_bytes} (TL_PREDICT_MAX_IMAGE_BYTES)")
    with open_verified(io.BytesIO(data), max_pixels) as image:
        image_format = image.format or "?"
        try:
            array = np.asarray(to_rgb(ImageOps.exif_transpose(image)), dtype=np.uint8)
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageRejected(f"truncated or corrupt image ({exc})") from None
    return CheckedImage(data=data, format=image_format, array=array)
