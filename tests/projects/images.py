"""Tiny generated images and archives for ingest tests."""

import io
import struct
import zipfile
import zlib
from pathlib import Path

from PIL import Image

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
