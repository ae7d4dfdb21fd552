"""Photo metadata: the capture time on import, and stripping personal metadata on export.

Export keeps the picture exactly: JPEG and PNG files are rewritten at the segment/chunk level
(the compressed image data is copied byte for byte), keeping only what is needed to display
them correctly (colour profile, orientation). GPS position, camera serial numbers, owner and
artist names, comments, XMP, IPTC, maker notes and embedded thumbnails are dropped. Other
formats are decoded (upright) and written as lossless PNG without metadata.
"""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime

from PIL import Image, ImageOps

__all__ = ["image_info", "strip_personal_metadata"]

_MEDIA = {
    "JPEG": ("image/jpeg", ".jpg"),
    "MPO": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "TIFF": ("image/tiff", ".tif"),
    "WEBP": ("image/webp", ".webp"),
    "BMP": ("image/bmp", ".bmp"),
    "HEIF": ("image/heic", ".heic"),
}
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_DATETIME = 306
_ORIENTATION = 274


def image_info(data: bytes) -> tuple[str, str, datetime | None, int]:
    """``(media_type, extension, capture_time or None, EXIF orientation)`` of an image file.

    Raises ``ValueError`` for a format the photo store does not keep.
    """
    with _open(data) as im:
        fmt = im.format or ""
        if fmt not in _MEDIA:
            raise ValueError(f"unsupported image format {fmt or 'unknown'!r}")
        media_type, ext = _MEDIA[fmt]
        capture = None
        orientation = 1
        try:
            exif = im.getexif()
            orientation = int(exif.get(_ORIENTATION, 1) or 1)
            raw = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
            if isinstance(raw, bytes):
                raw = raw.decode("ascii", "replace")
            if raw:
                capture = datetime.strptime(str(raw).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
        except (ValueError, TypeError, OSError, SyntaxError, struct.error):
            pass  # damaged or odd metadata: no capture time, upright as stored
    return media_type, ext, capture, orientation if 1 <= orientation <= 8 else 1


def _open(data: bytes) -> Image.Image:
    """``Image.open`` with the optional decoders VeinScope reads registered (HEIC: pillow-heif).

    Registering is lazy and process-wide; an export or an import started in a fresh process
    must not depend on a photo having been decoded before.
    """
    from veinscope.io import _heif_available, _is_heif

    if _is_heif(data) and not _heif_available():
        raise ValueError("a HEIC/HEIF photo, and the HEIC reader (pillow-heif) is not installed")
    try:
        return Image.open(io.BytesIO(data))
    except Image.UnidentifiedImageError as exc:
        raise ValueError("not an image file VeinScope can read") from exc


def strip_personal_metadata(data: bytes) -> tuple[bytes, str]:
    """Return ``(clean bytes, extension)`` for sharing a stored photo."""
    media_type, ext, _, orientation = image_info(data)
    if media_type == "image/jpeg":
        try:
            return _strip_jpeg(data, orientation), ".jpg"
        except ValueError:
            pass
    elif media_type == "image/png" and orientation == 1:
        try:
            return _strip_png(data), ".png"
        except ValueError:
            pass
    elif media_type == "image/bmp":
        return data, ".bmp"  # BMP carries no metadata
    return _reencode_png(data), ".png"


def _minimal_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    payload = exif.tobytes()
    if not payload.startswith(b"Exif\x00\x00"):
        payload = b"Exif\x00\x00" + payload
    return payload


def _segment(marker: int, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("segment too long")
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _strip_jpeg(data: bytes, orientation: int) -> bytes:
    """Drop APP1 (EXIF, XMP), APP3-APP15 (IPTC, ...), COM, non-ICC APP2 and trailing data."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out = bytearray(b"\xff\xd8")
    inserted = False
    i, n = 2, len(data)
    while i < n:
        if data[i] != 0xFF:
            raise ValueError("corrupt JPEG marker")
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            raise ValueError("truncated JPEG")
        marker = data[i]
        i += 1
        if marker == 0xD9:  # EOI: anything after (MPO images, trailers) is dropped
            out += b"\xff\xd9"
            return bytes(out)
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            out += bytes((0xFF, marker))
            continue
        if i + 2 > n:
            raise ValueError("truncated JPEG")
        (length,) = struct.unpack(">H", data[i : i + 2])
        seg = data[i + 2 : i + length]
        end = i + length
        if end > n:
            raise ValueError("truncated JPEG")
        keep = True
        if marker == 0xE1 or marker == 0xFE or 0xE3 <= marker <= 0xEF:
            keep = marker == 0xEE  # APP14 "Adobe" tells the colour transform
        elif marker == 0xE2:
            keep = seg.startswith(b"ICC_PROFILE\x00")
        if not inserted and marker != 0xE0:
            if orientation != 1:
                out += _segment(0xE1, _minimal_exif(orientation))
            inserted = True
        if keep:
            out += data[i - 2 : end]
        i = end
        if marker == 0xDA:  # start of scan: copy the entropy-coded data up to the next marker
            j = i
            while True:
                j = data.find(b"\xff", j)
                if j < 0 or j + 1 >= n:
                    raise ValueError("truncated JPEG scan")
                nxt = data[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    j += 1 if nxt == 0xFF else 2
                    continue
                break
            out += data[i:j]
            i = j
    raise ValueError("JPEG without end marker")


_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"pHYs", b"bKGD"}


def _strip_png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIG):
        raise ValueError("not a PNG")
    out = bytearray(_PNG_SIG)
    i = len(_PNG_SIG)
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        ctype = data[i + 4 : i + 8]
        end = i + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG")
        if ctype in _PNG_KEEP:
            chunk = data[i:end]
            if zlib.crc32(chunk[4:-4]) != struct.unpack(">I", chunk[-4:])[0]:
                raise ValueError("damaged PNG chunk")
            out += chunk
        i = end
        if ctype == b"IEND":
            return bytes(out)
    raise ValueError("PNG without IEND")


def _reencode_png(data: bytes) -> bytes:
    buf = io.BytesIO()
    try:
        with _open(data) as im:
            im.load()
            up = ImageOps.exif_transpose(im)
            if up.mode not in ("RGB", "RGBA", "L", "LA", "I;16", "P", "1"):
                up = up.convert("RGB")
            up.save(buf, format="PNG")  # Pillow writes no EXIF/text unless asked
    except (OSError, ValueError):  # e.g. HEIC: decode as VeinScope does (upright sRGB)
        from veinscope.io import load_photo

        buf = io.BytesIO()
        Image.fromarray(load_photo(data).rgb).save(buf, format="PNG")
    return buf.getvalue()
