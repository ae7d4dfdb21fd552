import io

import numpy as np
import pytest
from PIL import Image

from veinscope import PhotoError, load_photo


def _jpeg_bytes(arr, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", **kw)
    return buf.getvalue()


def test_load_rgb_png(tmp_path, rng):
    arr = rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)
    p = tmp_path / "leg.png"
    Image.fromarray(arr).save(p)
    photo = load_photo(p)
    assert photo.name == "leg"
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (80, 100, 3)
    np.testing.assert_array_equal(photo.rgb, arr)


def test_exif_orientation_applied(rng):
    arr = np.zeros((80, 120, 3), np.uint8)
    arr[:, :10] = 255  # bright stripe on the left
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif, quality=95)
    photo = load_photo(buf.getvalue())
    assert photo.rgb.shape == (120, 80, 3)
    assert photo.rgb[:10].mean() > 200  # the stripe is now on top


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a photo"),
        (_jpeg_bytes(np.zeros((100, 100, 3), np.uint8))[:200], "not a photo"),
        (_jpeg_bytes(np.zeros((20, 30, 3), np.uint8)), "too small"),
    ],
)
def test_bad_bytes_give_clear_message(data, words):
    with pytest.raises(PhotoError, match=words):
        load_photo(data)


def test_missing_file(tmp_path):
    with pytest.raises(PhotoError, match="does not exist"):
        load_photo(tmp_path / "nope.jpg")


def test_array_input_not_modified(rng):
    arr = rng.random((70, 70, 3))
    before = arr.copy()
    photo = load_photo(arr)
    np.testing.assert_array_equal(arr, before)
    assert photo.rgb.dtype == np.uint8
