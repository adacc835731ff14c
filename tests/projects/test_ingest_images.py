import io

import pytest
from PIL import Image

from tests.projects.images import image_bytes, png_header_only
from webapp.projects.ingest.images import ImageRejected, store_image

MAX_PIXELS = 1_000_000


def _convert(tmp_path, data: bytes, name="in.jpg", max_pixels=MAX_PIXELS, stem="out"):
    src = tmp_path / name
    src.write_bytes(data)
    info = store_image(src, tmp_path / "out" / stem, max_pixels=max_pixels)
    return info, info.path


def _rejected(tmp_path, data: bytes, name="in.jpg", max_pixels=MAX_PIXELS) -> str:
    with pytest.raises(ImageRejected) as caught:
        _convert(tmp_path, data, name, max_pixels)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    return str(caught.value)


def test_it_skips_a_truncated_jpeg(tmp_path):
    data = image_bytes(1, size=(64, 64))
    assert "truncated or corrupt" in _rejected(tmp_path, data[: len(data) // 2])


def test_it_skips_a_text_file_named_jpg(tmp_path):
    assert "not an image" in _rejected(tmp_path, b"hello, I am not a picture\n" * 10)


def test_it_skips_a_pixel_bomb_png(tmp_path):
    bomb = png_header_only(50_000, 50_000)
    assert len(bomb) < 200
    reason = _rejected(tmp_path, bomb, "bomb.png", max_pixels=40_000_000)
    assert "too many pixels" in reason


def test_it_treats_pillows_bomb_warning_as_an_error(tmp_path):
    # Between 1x and 2x the limit Pillow only warns; that must still refuse the image.
    reason = _rejected(tmp_path, image_bytes(1, size=(120, 100), fmt="PNG"), "big.png", max_pixels=10_000)
    assert "too many pixels" in reason


def test_it_refuses_formats_outside_the_accepted_list(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PPM")
    assert "not an image" in _rejected(tmp_path, buffer.getvalue(), "a.jpg")


def test_it_stores_the_users_bytes_unchanged(tmp_path):
    data = image_bytes(1, size=(40, 20))
    info, dest = _convert(tmp_path, data)
    assert dest.read_bytes() == data
    assert dest.name == "out.jpg"


def test_it_names_the_stored_file_after_its_real_format(tmp_path):
    info, dest = _convert(tmp_path, image_bytes(2, fmt="PNG"), "looks-like.jpg")
    assert dest.name == "out.png" and info.source_format == "PNG"


def test_it_reports_the_size_after_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = image_bytes(1, size=(40, 20), exif=exif.tobytes())
    info, dest = _convert(tmp_path, data)
    assert (info.width, info.height) == (20, 40)
    assert dest.read_bytes() == data  # the orientation is applied when decoding, every time


@pytest.mark.parametrize(
    ("mode", "fmt"), [("CMYK", "JPEG"), ("P", "PNG"), ("RGBA", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("RGB", "WEBP")]
)
def test_it_accepts_every_mode(tmp_path, mode, fmt):
    data = image_bytes(3, mode=mode, fmt=fmt)
    info, dest = _convert(tmp_path, data, f"in.{fmt.lower()}")
    assert info.source_mode == mode and info.source_format == fmt
    assert (info.width, info.height) == (16, 12)
    assert dest.read_bytes() == data


def test_it_gives_identical_pixels_the_same_picture_hash(tmp_path):
    first, _ = _convert(tmp_path, image_bytes(5, fmt="PNG"), "a.png")
    again, _ = _convert(tmp_path, image_bytes(5, fmt="BMP"), "a.bmp")
    other, _ = _convert(tmp_path, image_bytes(6, fmt="BMP"), "b.bmp", stem="other")
    assert first.pixels_sha256 == again.pixels_sha256 != other.pixels_sha256
    assert first.sha256 != again.sha256  # the stored bytes differ
