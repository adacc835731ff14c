"""Tiny generated images and archives for ingest tests."""

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLORS = [(200, 30, 30), (30, 160, 40), (40, 60, 210), (220, 200, 20), (120, 40, 160), (20, 180, 180)]


def image_bytes(seed: int = 0, size=(16, 12), mode="RGB", fmt="JPEG", exif=None) -> bytes:
    """A small image whose pixels differ for each seed (so hashes differ)."""
    # A base colour that differs for every seed below 256 and a 4x4 mark: distinct even after JPEG.
    color = ((seed * 37) % 256, (seed * 91 + 50) % 256, (seed * 53 + 100) % 256)
    image = Image.new("RGB", size, color)
    x, y = (seed * 3) % max(size[0] - 4, 1), (seed * 5) % max(size[1] - 4, 1)
    image.paste(COLORS[seed % len(COLORS)], (x, y, x + 4, y + 4))
    if mode == "CMYK":
        image = image.convert("CMYK")
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    kwargs = {"exif": exif} if exif is not None else {}
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def picture(seed: int, size: tuple[int, int] | None = None) -> Image.Image:
    """A picture with structure, different for every seed: a gradient at a random angle, blurred
    colour noise, and a few filled shapes, 64-128 px a side unless ``size`` is given."""
    rng = np.random.default_rng(seed)
    width, height = size or (int(rng.integers(64, 129)), int(rng.integers(64, 129)))
    yy, xx = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / width + np.sin(angle) * yy / height
    ramp = ((ramp - ramp.min()) / (np.ptp(ramp) or 1))[..., None]
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    image = Image.fromarray((start * (1 - ramp) + end * ramp).astype(np.uint8), "RGB")
    noise = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    image = Image.blend(image, Image.fromarray(noise, "RGB").resize((width, height), Image.Resampling.BICUBIC), 0.25)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = [x0, y0, x0 + int(rng.integers(8, width // 2 + 8)), y0 + int(rng.integers(8, height // 2 + 8))]
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse(box, fill=fill)
        elif shape == 1:
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(3)], fill=fill)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def crop_edge(image: Image.Image, share: float, edge: str) -> Image.Image:
    """``image`` with ``share`` of its width or height cut off one edge."""
    w, h = image.size
    dx, dy = max(1, round(w * share)), max(1, round(h * share))
    boxes = {"top": (0, dy, w, h), "bottom": (0, 0, w, h - dy), "left": (dx, 0, w, h), "right": (0, 0, w - dx, h)}
    return image.crop(boxes[edge])


def planted_copies(seed: int) -> tuple[bytes, dict[str, bytes]]:
    """An original (PNG) and its near copies: re-encoded at JPEG quality 60, resized by one pixel,
    converted to JPEG, and cropped 2 % and 4 % off one edge; plus a JPEG original and its PNG."""
    image = picture(seed)
    w, h = image.size
    jpeg = encode(image, "JPEG", quality=92)
    with Image.open(io.BytesIO(jpeg)) as decoded:
        jpeg_as_png = encode(decoded.convert("RGB"))
    copies = {
        "q60": encode(image, "JPEG", quality=60),
        "resized": encode(image.resize((w - 1, h), Image.Resampling.BILINEAR)),
        "as-jpeg": encode(image, "JPEG", quality=85),
        "crop2": encode(crop_edge(image, 0.02, ("top", "right", "bottom", "left")[seed % 4])),
        "crop4": encode(crop_edge(image, 0.04, ("left", "bottom", "right", "top")[seed % 4])),
    }
    return encode(image), copies | {"jpeg": jpeg, "jpeg-as-png": jpeg_as_png}


PLANTED = ["q60", "resized", "as-jpeg", "crop2", "crop4"]
SUFFIX = {"q60": "jpg", "as-jpeg": "jpg", "jpeg": "jpg"}


def picture_files(prefix: str, class_name: str, seeds) -> dict[str, bytes]:
    return {f"{prefix}{class_name}/p{seed}.png": encode(picture(seed)) for seed in seeds}


def leaky_files() -> dict[str, bytes]:
    """Distinct pictures in every split, and one original in train/cats per planted kind whose copy
    is in validation (even seeds) or test (odd seeds)."""
    files = {}
    for class_name, seeds in (("cats", range(0, 8)), ("dogs", range(20, 28))):
        files |= picture_files("train/", class_name, seeds)
        files |= picture_files("validation/", class_name, range(seeds.start + 100, seeds.start + 103))
        files |= picture_files("test/", class_name, range(seeds.start + 200, seeds.start + 203))
    for n, kind in enumerate(PLANTED):
        original, copies = planted_copies(500 + n)
        files[f"train/cats/original-{kind}.png"] = original
        split = "validation" if n % 2 == 0 else "test"
        files[f"{split}/cats/{kind}.{SUFFIX.get(kind, 'png')}"] = copies[kind]
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def class_files(prefix: str, classes=("cats", "dogs"), per_class=5, start=0) -> dict[str, bytes]:
    """`<prefix><class>/<n>.jpg` for each class, with distinct pixels everywhere."""
    files, seed = {}, start
    for class_name in classes:
        for n in range(per_class):
            files[f"{prefix}{class_name}/{class_name}{n}.jpg"] = image_bytes(seed)
            seed += 1
    return files


def split_files(prefix: str = "", classes=("cats", "dogs"), train=5, validation=2) -> dict[str, bytes]:
    files = class_files(f"{prefix}train/", classes, train)
    files.update(class_files(f"{prefix}validation/", classes, validation, start=128))
    return files


def make_zip(path: Path, files: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def patch_bytes(path: Path, old: bytes, new: bytes) -> None:
    """Rewrite an archive's bytes (same length) to forge names or flags zipfile will not write."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new))


def set_encrypted_flag(path: Path) -> None:
    data = bytearray(path.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 6] |= 0x1
    data[central + 8] |= 0x1
    path.write_bytes(bytes(data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions in a file of a few dozen bytes (a pixel bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )
