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
from PIL import Image, ImageOps, UnidentifiedImageError

from webapp.projects.ingest.images import ACCEPTED_FORMATS, ImageRejected, to_rgb

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
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"too many pixels: {width}x{height} is over the limit of {max_pixels} (TL_IMAGE_MAX_PIXELS)"
                )
            probe.verify()
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            image.load()
            image_format = image.format or "?"
            rgb = to_rgb(ImageOps.exif_transpose(image))
            array = np.asarray(rgb, dtype=np.uint8)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"too many pixels: {exc}") from None
    except UnidentifiedImageError:
        raise ImageRejected("not an image, or a format other than JPEG, PNG, GIF, BMP, WebP or TIFF") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"corrupt or truncated image ({exc})") from None
    return CheckedImage(data=data, format=image_format, array=array)
