"""Photo intake (io.py): formats, orientation, modes, colour profiles, metadata, bad files."""

import io
import json
import struct
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

import veinscope.io as vio
from veinscope import PhotoError, load_photo

vio._heif_available()  # registers the HEIC writer used to make test files


# --------------------------------------------------------------------------- helpers


def _colour(h=120, w=160, seed=0):
    """A skin-like colour image with texture (not grey, not flat)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([190 + 30 * np.sin(xx / 17.0), 140 + 20 * np.cos(yy / 13.0), 120 + 15 * np.sin((xx + yy) / 23.0)], axis=-1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def _encode(arr, fmt, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _icc_profile(primaries):
    """A minimal ICC v2 RGB matrix/TRC profile (gamma 2.2) with the given D50 primaries (r, g, b XYZ)."""

    def s15(v):
        return struct.pack(">i", int(round(v * 65536)))

    def xyz(v):
        return b"XYZ " + b"\0" * 4 + b"".join(s15(c) for c in v)

    desc_txt = b"VeinScope test profile\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(desc_txt)) + desc_txt + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    curv = b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", int(2.2 * 256)) + b"\0\0"
    tags = [(b"desc", desc), (b"wtpt", xyz((0.9642, 1.0, 0.8249))), (b"rXYZ", xyz(primaries[0])), (b"gXYZ", xyz(primaries[1])),
            (b"bXYZ", xyz(primaries[2])), (b"rTRC", curv), (b"gTRC", curv), (b"bTRC", curv)]
    table_len = 4 + 12 * len(tags)
    offset = 128 + table_len
    table = struct.pack(">I", len(tags))
    body = b""
    for sig, data in tags:
        while len(data) % 4:
            data += b"\0"
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = 128 + table_len + len(body)
    header = struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp"
    header += b"\0" * 4 + b"\0" * 4 + b"\0" * 4 + b"\0" * 4 + b"\0" * 8 + struct.pack(">I", 0) + s15(0.9642) + s15(1.0) + s15(0.8249)
    header += b"\0" * 4 + b"\0" * 16
    header += b"\0" * (128 - len(header))
    return header + table + body


_SRGB_D50 = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


# --------------------------------------------------------------------------- formats


def test_load_rgb_png(tmp_path, rng):
    arr = rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)
    p = tmp_path / "leg.png"
    Image.fromarray(arr).save(p)
    photo = load_photo(p)
    assert photo.name == "leg"
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (80, 100, 3)
    np.testing.assert_array_equal(photo.rgb, arr)
    assert photo.info["format"] == "PNG" and photo.info["bit_depth"] == 8


@pytest.mark.parametrize("fmt, kw, tol", [
    ("JPEG", {"quality": 95, "subsampling": 0}, 12),
    ("PNG", {}, 0),
    ("TIFF", {}, 0),
    ("TIFF", {"compression": "tiff_lzw"}, 0),
    ("WEBP", {"lossless": True}, 0),
    ("WEBP", {"quality": 90}, 20),
    ("BMP", {}, 0),
    ("HEIF", {"quality": 95}, 25),
])
def test_every_format_loads(fmt, kw, tol):
    arr = _colour()
    photo = load_photo(_encode(arr, fmt, **kw))
    assert photo.rgb.shape == arr.shape and photo.rgb.dtype == np.uint8
    err = np.abs(photo.rgb.astype(int) - arr.astype(int))
    assert np.percentile(err, 99) <= tol, (fmt, np.percentile(err, 99))


def test_tiff_16bit_kept_precise_until_the_rounding():
    rng = np.random.default_rng(3)
    a16 = rng.integers(0, 65536, (90, 110, 3)).astype(np.uint16)
    a16[0, 0] = (0x80FF, 0x00FF, 0xFF7F)  # truncation (>> 8) and rounding disagree here
    buf = io.BytesIO()
    tifffile.imwrite(buf, a16, photometric="rgb")
    photo = load_photo(buf.getvalue())
    expect = np.floor(a16 / 257.0 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(photo.rgb, expect)
    assert (expect != (a16 >> 8)).any()
    assert photo.info["bit_depth"] == 16


def test_png_16bit_kept_precise():
    rng = np.random.default_rng(4)
    a16 = rng.integers(0, 65536, (70, 90, 3)).astype(np.uint16)
    ok, enc = cv2.imencode(".png", a16[..., ::-1])
    photo = load_photo(enc.tobytes())
    np.testing.assert_array_equal(photo.rgb, np.floor(a16 / 257.0 + 0.5).astype(np.uint8))
    assert photo.info["bit_depth"] == 16


def test_png_16bit_with_alpha_composited_over_white():
    a16 = np.zeros((70, 90, 4), np.uint16)
    a16[..., 0] = 65535  # red
    a16[..., 3] = 65535
    a16[:, :30, 3] = 0  # transparent strip
    ok, enc = cv2.imencode(".png", a16[..., [2, 1, 0, 3]])
    photo = load_photo(enc.tobytes())
    np.testing.assert_array_equal(photo.rgb[5, 50], [255, 0, 0])
    np.testing.assert_array_equal(photo.rgb[5, 5], [255, 255, 255])
    assert any("transparent" in w for w in photo.warnings)


def _oriented_jpeg(arr, orientation, fmt="JPEG"):
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, format=fmt, exif=exif.tobytes() if fmt == "HEIF" else exif, quality=98)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_1_to_8(orientation):
    arr = _colour(96, 144)
    arr[:16, :16] = (0, 0, 255)  # a blue corner shows where the top-left went
    data = _oriented_jpeg(arr, orientation)
    photo = load_photo(data)
    with Image.open(io.BytesIO(data)) as im:
        expect = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert photo.rgb.shape == expect.shape
    assert np.abs(photo.rgb.astype(int) - expect.astype(int)).max() <= 1
    assert photo.info["orientation"] == orientation
    if orientation in (5, 6, 7, 8):
        assert photo.rgb.shape[:2] == (144, 96)


def test_exif_orientation_applied():
    arr = _colour(80, 120)
    arr[:, :10] = (255, 255, 0)  # bright stripe on the left
    photo = load_photo(_oriented_jpeg(arr, 6))  # rotate 90 CW to display
    assert photo.rgb.shape == (120, 80, 3)
    assert photo.rgb[:10, :, 2].mean() < 80 and photo.rgb[:10, :, 0].mean() > 200  # the stripe is now on top


def test_heic_orientation_applied_once():
    arr = _colour(80, 120)
    arr[:, :10] = (255, 255, 0)
    photo = load_photo(_oriented_jpeg(arr, 6, fmt="HEIF"))
    assert photo.info["format"] == "HEIF"
    assert photo.rgb.shape == (120, 80, 3)
    assert photo.rgb[:8, :, 2].mean() < 100 and photo.rgb[:8, :, 0].mean() > 200


def test_cmyk_jpeg_converted():
    arr = _colour()
    buf = io.BytesIO()
    Image.fromarray(arr).convert("CMYK").save(buf, format="JPEG", quality=98)
    data = buf.getvalue()
    photo = load_photo(data)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "CMYK"
    assert photo.info["mode"] == "CMYK"
    assert np.percentile(np.abs(photo.rgb.astype(int) - arr.astype(int)), 99) <= 12


def test_palette_png_converted():
    arr = _colour()
    pal = Image.fromarray(arr).quantize(64)
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    photo = load_photo(buf.getvalue())
    np.testing.assert_array_equal(photo.rgb, np.asarray(pal.convert("RGB")))


def test_rgba_transparent_composited_over_white_and_warned():
    arr = _colour()
    rgba = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    rgba[:, :40, 3] = 0
    rgba[:, 40:60, 3] = 128
    photo = load_photo(_encode(rgba, "PNG"))
    np.testing.assert_array_equal(photo.rgb[:, :40], 255)
    half = np.floor(arr[:, 40:60].astype(float) * 128 / 255 + 255 * 127 / 255 + 0.5)
    assert np.abs(photo.rgb[:, 40:60] - half).max() <= 1
    np.testing.assert_array_equal(photo.rgb[:, 60:], arr[:, 60:])
    assert any("transparent" in w for w in photo.warnings)


def test_rgba_opaque_no_warning():
    arr = _colour()
    rgba = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    photo = load_photo(_encode(rgba, "PNG"))
    np.testing.assert_array_equal(photo.rgb, arr)
    assert not any("transparent" in w for w in photo.warnings)


def test_greyscale_alpha_converted_when_allowed():
    g = _colour()[..., 0]
    la = np.dstack([g, np.full(g.shape, 255, np.uint8)])
    la[:, :30, 1] = 0
    photo = load_photo(_encode(la, "PNG"), allow_greyscale=True)
    np.testing.assert_array_equal(photo.rgb[:, 30:, 0], g[:, 30:])
    np.testing.assert_array_equal(photo.rgb[:, 30:, 0], photo.rgb[:, 30:, 2])
    np.testing.assert_array_equal(photo.rgb[:, :30], 255)
    assert any("black and white" in w for w in photo.warnings)


def test_icc_profile_converted_to_srgb():
    # a profile whose red and blue primaries are swapped: a red file means blue
    swapped = (_SRGB_D50[2], _SRGB_D50[1], _SRGB_D50[0])
    arr = _colour()
    arr[:20, :20] = (250, 10, 10)
    data = _encode(arr, "PNG", icc_profile=_icc_profile(swapped))
    photo = load_photo(data)
    r, g, b = photo.rgb[5, 5].astype(int)
    assert b > 200 and r < 60, photo.rgb[5, 5]
    assert photo.info["colour_profile"] == "VeinScope test profile"


def test_heic_icc_profile_converted_to_srgb():
    swapped = (_SRGB_D50[2], _SRGB_D50[1], _SRGB_D50[0])
    arr = _colour()
    arr[:20, :20] = (250, 10, 10)
    photo = load_photo(_encode(arr, "HEIF", quality=95, icc_profile=_icc_profile(swapped)))
    r, g, b = photo.rgb[5, 5].astype(int)
    assert b > 200 and r < 60, photo.rgb[5, 5]


def test_icc_profile_srgb_like_is_identity():
    arr = _colour()
    data = _encode(arr, "PNG", icc_profile=_icc_profile(_SRGB_D50))
    photo = load_photo(data)
    # gamma 2.2 vs the sRGB curve differ by a few levels in the darks at most
    assert np.abs(photo.rgb.astype(int) - arr.astype(int)).max() <= 6


def test_icc_profile_on_16bit_tiff_keeps_precision():
    swapped = (_SRGB_D50[2], _SRGB_D50[1], _SRGB_D50[0])
    a16 = np.zeros((70, 90, 3), np.uint16)
    a16[..., 0] = 60000
    a16[..., 2] = 3000
    a16[:, 45:] = np.linspace(0, 65535, 45)[None, :, None].astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, a16, photometric="rgb", iccprofile=_icc_profile(swapped))
    photo = load_photo(buf.getvalue())
    assert photo.info["bit_depth"] == 16
    r, g, b = photo.rgb[5, 5].astype(int)
    assert b > 200 and r < 80, photo.rgb[5, 5]
    ramp = photo.rgb[5, 45:, 1].astype(int)
    assert np.all(np.diff(ramp) >= 0) and ramp[-1] >= 250


def test_capture_time_kept_gps_never():
    arr = _colour()
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x010F] = "PhoneMaker"
    exif[0x0110] = "Model 12"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2025:03:14 10:20:30"
    sub[0x9011] = "+02:00"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 22.0, 13.37)
    gps[3] = "E"
    gps[4] = (4.0, 53.0, 42.42)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif, quality=95)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as chk:  # the file really carries GPS
        assert chk.getexif().get_ifd(0x8825)
    photo = load_photo(data)
    assert photo.taken_at == datetime(2025, 3, 14, 10, 20, 30, tzinfo=timezone(timedelta(hours=2)))
    assert photo.info["camera"] == "PhoneMaker Model 12"
    dumped = json.dumps(photo.info) + repr(photo)
    for needle in ("13.37", "42.42", "GPS", "gps"):
        assert needle not in dumped
    assert set(vars(photo)) == {"rgb", "name", "warnings", "taken_at", "info"}


def test_capture_time_absent_is_none():
    assert load_photo(_encode(_colour(), "PNG")).taken_at is None


def test_bytes_path_and_array_give_the_same(tmp_path):
    arr = _colour()
    p = tmp_path / "site.png"
    Image.fromarray(arr).save(p)
    a = load_photo(p)
    b = load_photo(p.read_bytes())
    c = load_photo(arr)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.rgb, c.rgb)
    assert load_photo(a) is a


def test_array_input_not_modified(rng):
    arr = rng.random((70, 70, 3))
    before = arr.copy()
    photo = load_photo(arr)
    np.testing.assert_array_equal(arr, before)
    assert photo.rgb.dtype == np.uint8


def test_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="source"):
        load_photo(12345)


# --------------------------------------------------------------------------- warnings (loaded)


def _multi(fmt, n=3, **kw):
    frames = [Image.fromarray(_colour(seed=i)) for i in range(n)]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, word", [("GIF", "frames"), ("WEBP", "frames"), ("TIFF", "pages"), ("PNG", "frames")])
def test_multi_frame_first_frame_and_warning(fmt, word):
    photo = load_photo(_multi(fmt))
    assert photo.info["frames"] == 3
    assert any(word in w and "first" in w for w in photo.warnings)
    first = _colour(seed=0)
    tol = 40 if fmt == "GIF" else 25 if fmt == "WEBP" else 0
    assert np.percentile(np.abs(photo.rgb.astype(int) - first.astype(int)), 95) <= tol


def test_mpo_phone_jpeg_is_not_warned_as_multi_frame():
    photo = load_photo(_multi("MPO", n=2))
    assert photo.info["format"] == "MPO" and photo.info["frames"] == 2
    assert not any("first" in w for w in photo.warnings)
    np.testing.assert_allclose(photo.rgb.astype(float).mean(), _colour(seed=0).astype(float).mean(), atol=3)


def test_low_resolution_warned():
    photo = load_photo(_encode(_colour(200, 300), "PNG"))
    assert any("only 300x200 pixels" in w for w in photo.warnings)


def test_big_enough_not_warned():
    photo = load_photo(_encode(_colour(700, 900), "JPEG"))
    assert not any("pixels" in w for w in photo.warnings)


def test_damaged_icc_profile_warned_not_refused():
    photo = load_photo(_encode(_colour(), "PNG", icc_profile=b"garbage profile bytes" * 4))
    assert any("colour profile is damaged" in w for w in photo.warnings)


def test_invalid_orientation_value_warned():
    photo = load_photo(_oriented_jpeg(_colour(), 9))
    assert photo.rgb.shape == (120, 160, 3)
    assert any("orientation" in w for w in photo.warnings)


# --------------------------------------------------------------------------- bad files (>= 30 kinds)


def _png_header(w, h, bit_depth=8, colour_type=2):
    import zlib

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    out = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = zlib.compress(b"\0" * 1000)
    chunk = b"IDAT" + idat
    return out + struct.pack(">I", len(idat)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def _bmp_header(w, h):
    return b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 16, 2835, 2835, 0, 0) + b"\0" * 16


def _grey_png(bits16=False):
    g = _colour()[..., 0]
    if bits16:
        ok, enc = cv2.imencode(".png", g.astype(np.uint16) * 257)
        return enc.tobytes()
    return _encode(g, "PNG")


def _bilevel_tiff():
    buf = io.BytesIO()
    Image.fromarray(_colour()[..., 0] > 128).save(buf, format="TIFF")
    return buf.getvalue()


def _la_png():
    g = _colour()[..., 0]
    return _encode(np.dstack([g, np.full(g.shape, 255, np.uint8)]), "PNG")


def _equal_channels_jpeg():
    g = _colour()[..., 0]
    return _encode(np.dstack([g, g, g]), "PNG")


def _png_bad_crc():
    data = bytearray(_encode(_colour(), "PNG"))
    i = data.index(b"IHDR")
    data[i + 6] ^= 0x01  # width changed, CRC no longer matches
    return bytes(data)


def _tiff_bad_compression():
    data = bytearray(_encode(_colour(), "TIFF"))
    # tag 259 (Compression) value -> 12345 (unknown)
    i = data.index(struct.pack("<HHI", 259, 3, 1))
    data[i + 8 : i + 10] = struct.pack("<H", 12345)
    return bytes(data)


def _dng():
    buf = io.BytesIO()
    tifffile.imwrite(buf, _colour(), photometric="rgb", extratags=[(50706, "B", 4, (1, 4, 0, 0), True)])
    return buf.getvalue()


_JPEG = _encode(_colour(), "JPEG", quality=90)
_HEIC = _encode(_colour(), "HEIF", quality=80)
_WEBP = _encode(_colour(), "WEBP", quality=80)

BAD = {
    "empty": (b"", "empty"),
    "text": (b"Patient notes: left calf, session 2.\nNothing else here.\n", "text file"),
    "jpeg_header_only": (_JPEG[:200], "cannot be read"),
    "jpeg_truncated_half": (_JPEG[: len(_JPEG) // 2], "incomplete"),
    "jpeg_garbage_after_marker": (_JPEG[:2] + b"\xff\xc0" + b"\xff" * 300, "cannot be read|not a photo"),
    "png_truncated": (_encode(_colour(), "PNG")[:400], "cannot be read"),
    "png_bad_crc": (_png_bad_crc(), "cannot be read"),
    "heic_truncated": (_HEIC[: len(_HEIC) // 3], "cannot be read"),
    "webp_truncated": (_WEBP[: len(_WEBP) // 2], "cannot be read|not a photo"),
    "tiff_unknown_compression": (_tiff_bad_compression(), "cannot be read"),
    "pdf": (b"%PDF-1.7\n1 0 obj\n<< >>\nendobj\n" + bytes(range(256)) * 4, "PDF"),
    "zip_docx": (b"PK\x03\x04" + bytes(range(256)) * 4, "ZIP archive or an office document"),
    "html": (b"<!DOCTYPE html><html><body><img src='leg.jpg'></body></html>", "web page"),
    "svg": (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'><circle r='4'/></svg>", "SVG"),
    "mp4": (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 4, "video"),
    "mov": (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + bytes(range(256)) * 4, "video"),
    "webm": (b"\x1aE\xdf\xa3" + bytes(range(256)) * 4, "video"),
    "avi": (b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(range(256)) * 4, "video"),
    "gzip": (b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4, "archive"),
    "exe": (b"MZ\x90\x00" + bytes(range(256)) * 4, "program"),
    "elf": (b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 4, "program"),
    "raw_cr2": (b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(range(256)) * 4, "RAW"),
    "raw_cr3": (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + bytes(range(256)) * 4, "RAW"),
    "raw_raf": (b"FUJIFILMCCD-RAW 0201" + bytes(range(256)) * 4, "RAW"),
    "raw_dng": (_dng(), "RAW"),
    "postscript": (b"%!PS-Adobe-3.0 EPSF-3.0\n" + bytes(range(256)) * 4, "PostScript"),
    "bomb_png_header": (_png_header(50_000, 50_000), "megapixels"),
    "absurd_side_bmp": (_bmp_header(40_000, 100), "megapixels|strip"),
    "strip_panorama": (_encode(_colour(70, 1200), "PNG"), "strip"),
    "tiny": (_encode(_colour(20, 30), "JPEG"), "too small"),
    "zero_size_png_header": (_png_header(0, 100), "cannot be read|no pixels"),
    "greyscale": (_grey_png(), "black and white"),
    "greyscale_16bit": (_grey_png(bits16=True), "black and white"),
    "bilevel": (_bilevel_tiff(), "black and white"),
    "greyscale_alpha": (_la_png(), "black and white"),
    "equal_channels": (_equal_channels_jpeg(), "no colour"),
    "all_black": (_encode(np.zeros((100, 120, 3), np.uint8), "PNG"), "completely black"),
    "all_white": (_encode(np.full((100, 120, 3), 255, np.uint8), "PNG"), "completely white"),
    "flat_colour": (_encode(np.full((100, 120, 3), (200, 150, 120), np.uint8), "PNG"), "single flat colour"),
    "random_bytes": (np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(), "not a photo|cannot be read"),
}


def test_at_least_30_kinds_of_bad_input():
    assert len(BAD) + 4 >= 30  # + missing file, folder, unreadable, too big (below)


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_bytes_give_clear_message(kind, tmp_path):
    data, words = BAD[kind]
    with pytest.raises(PhotoError, match=words) as info:
        load_photo(data)
    msg = str(info.value)
    assert len(msg) < 400 and "Traceback" not in msg
    # what to do: every message has a second sentence with advice
    assert msg.count(". ") >= 1 or msg.count(": ") >= 1
    # the same through a file path names the file
    p = tmp_path / f"{kind}.jpg"
    p.write_bytes(data)
    with pytest.raises(PhotoError, match=kind if data else "empty"):
        load_photo(p)


def test_missing_file(tmp_path):
    with pytest.raises(PhotoError, match="does not exist"):
        load_photo(tmp_path / "nope.jpg")


def test_folder_is_not_a_photo(tmp_path):
    with pytest.raises(PhotoError, match="folder"):
        load_photo(tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
    p = tmp_path / "locked.jpg"
    p.write_bytes(_JPEG)

    def deny(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(p), "read_bytes", deny)
    with pytest.raises(PhotoError, match="not allowed to read"):
        load_photo(p)


def test_file_too_big_refused_before_reading(tmp_path, monkeypatch):
    p = tmp_path / "huge.jpg"
    p.write_bytes(_JPEG)
    monkeypatch.setattr(vio, "MAX_FILE_BYTES", 100)
    with pytest.raises(PhotoError, match="far larger than a photo"):
        load_photo(p)
    with pytest.raises(PhotoError, match="far larger than a photo"):
        load_photo(_JPEG)


def test_pixel_limit_checked_before_decoding(monkeypatch):
    # a header claiming 11000x10000 (110 MP: over VeinScope's limit, under Pillow's own bomb
    # limit) with almost no data: refused by VeinScope's check without decoding
    from PIL import ImageFile

    called = []
    orig = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: called.append(1) or orig(self))
    load_photo(_encode(_colour(), "PNG"))
    assert called  # the spy sees decoding
    called.clear()
    with pytest.raises(PhotoError, match="11000x10000 pixels, more than the 100 megapixels"):
        load_photo(_png_header(11_000, 10_000))
    assert not called


def test_heic_without_reader_explains_what_to_install(monkeypatch):
    monkeypatch.setitem(vio._HEIF_STATE, "ok", False)
    with pytest.raises(PhotoError, match="pillow-heif"):
        load_photo(_HEIC)


def test_greyscale_array_accepted_with_warning():
    photo = load_photo(_colour()[..., 0])
    assert photo.rgb.shape == (120, 160, 3)
    assert any("black and white" in w for w in photo.warnings)


# --------------------------------------------------------------------------- fuzzing


def _fuzz_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fuzz_loader.py"
    spec = importlib.util.spec_from_file_location("bench_fuzz_loader", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load_or_clear_error(data):
    try:
        photo = load_photo(data)
    except PhotoError as exc:
        assert str(exc).strip()
        return None
    assert photo.rgb.dtype == np.uint8 and photo.rgb.ndim == 3 and photo.rgb.shape[2] == 3
    return photo


_FUZZ_SEEDS = None


def _fuzz_seeds():
    global _FUZZ_SEEDS
    if _FUZZ_SEEDS is None:
        _FUZZ_SEEDS = _fuzz_module().seed_files()
    return _FUZZ_SEEDS


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(kind=st.sampled_from(sorted(["jpeg", "png", "heic", "tiff", "tiff16", "webp", "png16", "gif", "bmp"])),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_fuzz_mutated_real_files_load_or_fail_clearly(kind, edits, cut):
    data = bytearray(_fuzz_seeds()[kind])
    for pos, val in edits:
        data[pos % len(data)] = val
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _load_or_clear_error(bytes(data))


@given(st.binary(max_size=4096))
@settings(max_examples=300, deadline=None, database=None)
def test_fuzz_random_bytes_load_or_fail_clearly(data):
    _load_or_clear_error(data)


@pytest.mark.slow
def test_fuzz_loader_5000_mutations():
    """A shorter run of benchmarks/bench_fuzz_loader.py (the 100,000-input run is in BENCHMARKS.md)."""
    res = _fuzz_module().run(5_000, seed=7, timeout_s=10.0, progress=False)
    assert not res["failures"], res["failures"][:5]
    assert res["counts"]["loaded"] > 250 and res["counts"]["refused"] > 250
