"""The one decoder: every accepted format gives the model the same array in training and serving."""

import io

import numpy as np
import pytest
from PIL import Image

from workers.ml.data import Split, make_dataset
from workers.ml.images import (
    ImageRejected,
    array_to_model_input,
    decode_image,
    decoded_pixels,
    draft_scale,
    read_header,
)
from workers.ml.predict import model_inputs

SIZE = (24, 20)  # (height, width): not square, so a swapped axis shows


def _picture(width=48, height=36, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    array[: height // 2, : width // 3] = (250, 20, 20)  # a red block in the top-left corner
    return Image.fromarray(array)


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    return _encode(_picture(), "JPEG", quality=90, exif=exif.tobytes())


def _png16() -> bytes:
    gray = (np.arange(36 * 48, dtype=np.uint16).reshape(36, 48) * 37) % 65535
    return _encode(Image.fromarray(gray.astype(np.uint16)), "PNG")


def _palette_png() -> bytes:
    return _encode(_picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")


def _alpha_png() -> bytes:
    rgba = _picture().convert("RGBA")
    alpha = np.full((36, 48), 255, np.uint8)
    alpha[:, 24:] = 0  # the right half transparent
    rgba.putalpha(Image.fromarray(alpha))
    return _encode(rgba, "PNG")


FILES = {
    "jpeg-baseline": lambda: _encode(_picture(), "JPEG", quality=90),
    "jpeg-progressive": lambda: _encode(_picture(), "JPEG", quality=90, progressive=True),
    "jpeg-exif-rotated": _exif_rotated_jpeg,
    "jpeg-cmyk": lambda: _encode(_picture().convert("CMYK"), "JPEG", quality=90),
    "jpeg-grayscale": lambda: _encode(_picture().convert("L"), "JPEG", quality=90),
    "jpeg-large-drafted": lambda: _encode(_picture(400, 300), "JPEG", quality=90),
    "png-rgb": lambda: _encode(_picture(), "PNG"),
    "png-palette": _palette_png,
    "png-alpha": _alpha_png,
    "png-grayscale": lambda: _encode(_picture().convert("L"), "PNG"),
    "png-16bit": _png16,
    "gif": lambda: _encode(_picture().convert("P"), "GIF"),
    "bmp": lambda: _encode(_picture(), "BMP"),
    "webp": lambda: _encode(_picture(), "WEBP", quality=80),
    "tiff": lambda: _encode(_picture(), "TIFF"),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_it_gives_training_and_serving_the_same_array_bit_for_bit(name, tmp_path):
    data = FILES[name]()
    path = tmp_path / f"image-{name}"
    path.write_bytes(data)
    split = Split([str(path)], np.zeros(1, np.int32), [path.name])
    (trained,) = list(make_dataset(split, SIZE, 1, with_labels=False).unbatch().as_numpy_iterator())
    served = model_inputs([data], SIZE)[0]
    assert served.dtype == np.uint8 and served.shape == (*SIZE, 3)
    assert trained.dtype == np.float32
    assert np.array_equal(trained, served.astype(np.float32))


def test_it_applies_the_exif_orientation():
    upright = decode_image(_encode(_picture(), "JPEG", quality=90), (36, 48), max_pixels=10**6)
    rotated = decode_image(_exif_rotated_jpeg(), (48, 36), max_pixels=10**6)
    # Rotated 90° clockwise for display: the red top-left block is now top-right.
    assert rotated[:10, -10:, 0].mean() > 200 and rotated[:10, -10:, 1].mean() < 80
    assert upright[:10, :10, 0].mean() > 200 and upright[:10, :10, 1].mean() < 80


def test_it_flattens_transparency_on_white():
    array = decode_image(_alpha_png(), (36, 48), max_pixels=10**6)
    assert array[:, 30:].min() == 255
    assert array[:, :20].min() < 255


def test_it_reduces_16_bit_images_to_8_bits():
    array = decode_image(_png16(), (36, 48), max_pixels=10**6)
    assert array.max() > 200 and array.min() < 10  # the full 16-bit range maps onto 0-255


def test_it_decodes_a_large_jpeg_at_a_reduced_scale():
    data = _encode(_picture(4000, 3000), "JPEG", quality=80)
    header = read_header(data, max_pixels=10**8)
    assert draft_scale(header, (150, 150)) == 8
    assert decoded_pixels(header, (150, 150)) == 500 * 375
    assert decoded_pixels(header, None) == 4000 * 3000
    assert decode_image(data, (150, 150), max_pixels=10**8).shape == (150, 150, 3)


def test_it_decodes_small_images_at_full_scale():
    header = read_header(_encode(_picture(), "JPEG"), max_pixels=10**6)
    assert draft_scale(header, (150, 150)) == 1


def test_it_refuses_images_over_the_pixel_limit_before_decoding():
    data = _encode(Image.new("L", (20000, 10000)), "PNG")
    with pytest.raises(ImageRejected, match="too many pixels: 20000x10000 is over the limit of 40000000"):
        decode_image(data, (32, 32), max_pixels=40_000_000)


def test_it_names_our_limit_even_past_pillows_own_bomb_limit():
    # 180 MP: past Pillow's default 2 x 89.5 MP, which would refuse first with its own number.
    data = _encode(Image.new("1", (18000, 10000)), "PNG")
    with pytest.raises(ImageRejected, match="over the limit of 40000000"):
        read_header(data, max_pixels=40_000_000)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not an image", "not an image"),
        (_encode(_picture(), "JPEG")[:200], "truncated or corrupt"),
    ],
)
def test_it_refuses_bytes_it_cannot_decode(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        decode_image(data, SIZE, max_pixels=10**6)


def test_arrays_are_resized_with_the_same_filter_as_files():
    picture = _picture()
    from_file = decode_image(_encode(picture, "PNG"), SIZE, max_pixels=10**6)
    from_array = array_to_model_input(np.asarray(picture), SIZE)
    assert np.array_equal(from_file, from_array)
