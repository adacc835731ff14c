"""The one image decoder: the user's bytes -> the uint8 array the model sees.

Ingest verifies with it, training and evaluation read stored files with it, and predict
decodes uploads with it, so the array a model sees for a file is bit-for-bit the same in
evaluation and in serving (docs/decisions.md, "One decoder"). TensorFlow's and Pillow's JPEG
decoders disagree on most pixel values of a typical JPEG, and a lossy re-encode moves them
further: decoding twice with two libraries is how served answers drifted from evaluated ones.

Pillow only, no TensorFlow: web processes import this to check uploads without paying for TF.

The rule, applied in this order:
1. open with the accepted formats only; the header's pixel count is checked before decoding;
2. JPEG only: decode at a reduced DCT scale (``draft``) when the file has at least twice the
   target size in both directions, which costs a fraction of the memory and time of a full
   decode (the scale depends only on the file and the target size);
3. EXIF orientation applied;
4. converted to RGB, transparency flattened on white, 16-bit reduced to 8-bit;
5. resized to (height, width) with Pillow's bilinear filter (antialiased when shrinking),
   no crop, aspect ratio not kept.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from workers.ml.errors import MLError

ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
# The suffix a stored file gets from its detected format (not from the name it was sent with).
FORMAT_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
DECODER_VERSION = "pillow-draft-exif-rgb-bilinear-v1"
DECODE_RULE = (
    "Pillow: JPEG decoded at a reduced DCT scale when at least 2x the target size, EXIF orientation "
    "applied, RGB (alpha flattened on white), bilinear resize to (height, width), no crop; "
    "uint8 0-255 pixels into the model"
)
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}

# Our own header check below is the pixel limit, with our setting's name in the message.
# Pillow's process-wide guard would otherwise refuse large images first with its own number
# (and it cannot be changed per request from a threaded web process).
Image.MAX_IMAGE_PIXELS = None


class ImageRejected(MLError):
    """The bytes are not an image we accept; ``str(e)`` is the reason shown to the user."""


@dataclass(frozen=True)
class Header:
    """What the file says about itself before any pixel is decoded."""

    format: str
    mode: str
    width: int
    height: int

    @property
    def suffix(self) -> str:
        return FORMAT_SUFFIXES[self.format]


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
    except UnidentifiedImageError:
        raise ImageRejected("not an image, or a format other than JPEG, PNG, GIF, BMP, WebP or TIFF") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"truncated or corrupt image ({exc})") from None


def read_header(data: bytes, *, max_pixels: int) -> Header:
    """Format and size from the header; ImageRejected when unreadable or over ``max_pixels``."""
    with _open(data) as image:
        width, height = image.size
        header = Header(image.format or "?", image.mode, width, height)
    if width * height > max_pixels:
        raise ImageRejected(f"too many pixels: {width}x{height} is over the limit of {max_pixels}")
    return header


def verify(data: bytes) -> None:
    """Pillow's structural check (PNG CRCs, truncation markers); ImageRejected when it fails."""
    try:
        with _open(data) as image:
            image.verify()
    except ImageRejected:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"truncated or corrupt image ({exc})") from None


def draft_scale(header: Header, image_size: tuple[int, int]) -> int:
    """The DCT scale (1, 2, 4 or 8) a JPEG is decoded at for ``image_size``; 1 for other formats.

    Asked for the larger target side in both directions, so the draft is at least the target
    size whichever way EXIF later rotates it.
    """
    if header.format != "JPEG" or image_size is None:
        return 1
    side = max(image_size)
    scale = min(header.width // side, header.height // side)
    return next((s for s in (8, 4, 2) if scale >= s), 1)


def decoded_pixels(header: Header, image_size: tuple[int, int] | None) -> int:
    """How many pixels decoding will hold at once (the draft size for a JPEG)."""
    s = draft_scale(header, image_size)
    return -(-header.width // s) * -(-header.height // s)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is flattened on white."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        # Converting straight to RGB turns transparent pixels black.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L") if image.getextrema()[1] > 255 else image
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_rgb(data: bytes, image_size: tuple[int, int] | None, *, max_pixels: int) -> Image.Image:
    """Steps 1-4 of the rule: an RGB image, EXIF applied, drafted towards ``image_size``.

    ``image_size`` None decodes at full size (thumbnails, reports).
    """
    header = read_header(data, max_pixels=max_pixels)
    image = _open(data)
    try:
        if draft_scale(header, image_size) > 1:
            side = max(image_size)
            image.draft(None, (side, side))
        image.load()
        return to_rgb(ImageOps.exif_transpose(image))
    except ImageRejected:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"truncated or corrupt image ({exc})") from None
    finally:
        image.close()


def resize_rgb(image: Image.Image, image_size: tuple[int, int]) -> np.ndarray:
    """Step 5: an RGB image -> uint8 (height, width, 3)."""
    height, width = image_size
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def decode_image(data: bytes, image_size: tuple[int, int], *, max_pixels: int) -> np.ndarray:
    """Encoded bytes -> uint8 (height, width, 3) RGB: the array the model sees.

    Raises ImageRejected with a reason a user understands.
    """
    return resize_rgb(decode_rgb(bytes(data), tuple(image_size), max_pixels=max_pixels), tuple(image_size))


def decode_file(path: Path | str, image_size: tuple[int, int], *, max_pixels: int) -> np.ndarray:
    """``decode_image`` of a stored file."""
    return decode_image(Path(path).read_bytes(), image_size, max_pixels=max_pixels)


def array_to_model_input(image: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """An RGB array (H, W, 3), (H, W, 4) or (H, W) of 0-255 values -> uint8 (height, width, 3),
    resized with the same filter as ``decode_image``."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ImageRejected(f"an image array must be (height, width, 3), got shape {image.shape}")
    rgb = Image.fromarray(np.clip(np.rint(image[..., :3]), 0, 255).astype(np.uint8), "RGB")
    return resize_rgb(rgb, tuple(image_size))
