"""Open, verify and re-encode one image with Pillow (DESIGN §7).

TensorFlow decodes the training files, not Pillow: it silently skips WebP and crashes
mid-training on a corrupt JPEG. So every accepted image is decoded fully here and written
back as a baseline RGB JPEG that TensorFlow can always read.
"""

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = ["JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"]
JPEG_QUALITY = 95
THUMB_SIZE = (128, 128)
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class ImageRejected(Exception):
    """The file is not an image we accept; `str(e)` is the reason shown in the report."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    source_format: str
    source_mode: str
    sha256: str  # of the re-encoded JPEG bytes written to the dataset


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is flattened on white (shared by ingest and predict)."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        # Flatten on white: converting straight to RGB turns transparent pixels black.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L") if image.getextrema()[1] > 255 else image
    return image if image.mode == "RGB" else image.convert("RGB")


def open_verified(fh, max_pixels: int) -> Image.Image:
    """Open, verify and fully decode; raise ImageRejected with a reason a user understands.

    Shared by ingest and predict. The pixel limit is checked on the header, before any pixel is
    decoded, instead of through Pillow's process-wide MAX_IMAGE_PIXELS: web processes check
    images from several threads, each request under the same limit but none changing it.
    """
    try:
        # verify() checks structure (and PNG CRCs) but leaves the image unusable: open twice.
        with Image.open(fh, formats=ACCEPTED_FORMATS) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageRejected(f"too many pixels: {width}x{height} is over the limit of {max_pixels}")
            probe.verify()
        fh.seek(0)
        image = Image.open(fh, formats=ACCEPTED_FORMATS)
        image.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"too many pixels: {exc}") from None
    except UnidentifiedImageError:
        raise ImageRejected("not an image, or a format other than JPEG, PNG, GIF, BMP, WebP or TIFF") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"truncated or corrupt image ({exc})") from None
    return image


def convert_image(src: Path, dest: Path, *, max_pixels: int) -> ImageInfo:
    """Verify `src` and write it to `dest` as an RGB JPEG with EXIF orientation applied."""
    buffer = io.BytesIO()
    with open(src, "rb") as fh, open_verified(fh, max_pixels) as image:
        try:
            rgb = to_rgb(ImageOps.exif_transpose(image))
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageRejected(f"truncated or corrupt image ({exc})") from None
        rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        info = (rgb.width, rgb.height, image.format or "?", image.mode)
    data = buffer.getvalue()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "xb") as out:
        out.write(data)
    return ImageInfo(*info, sha256=hashlib.sha256(data).hexdigest())


def write_thumbnail(src: Path, dest: Path) -> None:
    """A small JPEG of an already re-encoded dataset image."""
    with Image.open(src, formats=["JPEG"]) as image:
        image.thumbnail(THUMB_SIZE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        image.save(dest, format="JPEG", quality=80)
