import io

import pytest
from PIL import Image

from tests.projects.images import image_bytes, png_header_only
from webapp.projects.ingest.images import ImageRejected, convert_image

MAX_PIXELS = 1_000_000


def _convert(tmp_path, data: bytes, name="in.jpg", max_pixels=MAX_PIXELS):
    src = tmp_path / name
    src.write_bytes(data)
    dest = tmp_path / "out" / "out.jpg"
    return convert_image(src, dest, max_pixels=max_pixels), dest


def _rejected(tmp_path, data: bytes, name="in.jpg", max_pixels=MAX_PIXELS) -> str:
    with pytest.raises(ImageRejected) as caught:
        _convert(tmp_path, data, name, max_pixels)
    assert not (tmp_path / "out" / "out.jpg").exists()
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


def test_it_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    info, dest = _convert(tmp_path, image_bytes(1, size=(40, 20), exif=exif.tobytes()))
    assert (info.width, info.height) == (20, 40)
    with Image.open(dest) as out:
        assert out.size == (20, 40)
        assert out.getexif().get(0x0112) in (None, 1)


@pytest.mark.parametrize(
    ("mode", "fmt"), [("CMYK", "JPEG"), ("P", "PNG"), ("RGBA", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("RGB", "WEBP")]
)
def test_it_converts_every_mode_to_an_rgb_jpeg(tmp_path, mode, fmt):
    info, dest = _convert(tmp_path, image_bytes(3, mode=mode, fmt=fmt), f"in.{fmt.lower()}")
    assert info.source_mode == mode and info.source_format == fmt
    with Image.open(dest) as out:
        assert out.format == "JPEG" and out.mode == "RGB" and out.size == (16, 12)


def test_it_flattens_transparency_on_white(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(buffer, format="PNG")
    _, dest = _convert(tmp_path, buffer.getvalue(), "clear.png")
    with Image.open(dest) as out:
        assert min(out.getpixel((4, 4))) > 245


def test_it_gives_identical_pixels_the_same_hash(tmp_path):
    first, _ = _convert(tmp_path, image_bytes(5, fmt="PNG"), "a.png")
    (tmp_path / "out" / "out.jpg").unlink()
    again, _ = _convert(tmp_path, image_bytes(5, fmt="BMP"), "a.bmp")
    assert first.sha256 == again.sha256
