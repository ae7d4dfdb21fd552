"""Photo intake: any supported file or bytes -> upright (M, N, 3) uint8 sRGB.

Formats: JPEG (and MPO), PNG, TIFF (8 and 16 bit), WebP, HEIC/HEIF (via ``pillow-heif``),
BMP, GIF. The result is what a person sees: EXIF orientation 1-8 is applied, palette,
CMYK, greyscale+alpha and RGBA are converted, embedded ICC profiles are converted to sRGB,
16-bit data stays 16-bit (or float) until the single rounding to 8 bit. The EXIF capture
time is kept; GPS and every other EXIF field are dropped.

Every way a file can be unusable ends in a :class:`~veinscope.errors.PhotoError` whose
message says what is wrong and what to do, never in a traceback. The pixel limit is
checked from the header, before anything is decoded.

BGR never leaves OpenCV calls: everything VeinScope passes around is RGB.
"""

from __future__ import annotations

import io as _io
import logging
import os
import warnings as _warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from veinscope.errors import PhotoError

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE_PX",
    "MIN_SIDE_PX",
    "LOW_RES_SIDE_PX",
    "Photo",
    "load_photo",
]

log = logging.getLogger(__name__)

#: Largest photo accepted, checked before decoding (a 12 MP phone photo is 12e6).
MAX_PIXELS = 100_000_000
#: Longest side accepted (checked before decoding).
MAX_SIDE_PX = 30_000
#: Largest file accepted, checked before reading it.
MAX_FILE_BYTES = 300 * 1024 * 1024
#: Shortest side below which a photo cannot show thread veins.
MIN_SIDE_PX = 64
#: Shortest side below which the photo is probably a thumbnail or a messaging-app copy (warned).
LOW_RES_SIDE_PX = 600
#: Longest / shortest side above which the file is a strip or panorama, not a site photo.
MAX_ASPECT = 12.0

_READABLE = "JPEG, PNG, TIFF, WebP, HEIC or BMP"

_EXIF_IFD = 0x8769
_TAG_ORIENTATION = 0x0112
_TAG_DATETIME = 0x0132
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_DNG_VERSION = 50706


@dataclass(frozen=True)
class Photo:
    """An upright RGB photo ready for analysis.

    Attributes
    ----------
    rgb : ndarray, shape (M, N, 3), uint8
        The photo as a person sees it (EXIF orientation applied), sRGB.
    name : str
        File stem (or ``"photo"`` for bytes), used to name outputs.
    warnings : tuple of str
        Plain-language remarks made while loading.
    taken_at : datetime or None
        Capture time from EXIF (``DateTimeOriginal``, else ``DateTime``); time-zone aware
        when the camera recorded its offset. No other EXIF field is kept (never GPS).
    info : dict
        What was read: ``format``, ``bit_depth``, ``mode``, ``orientation``,
        ``colour_profile``, ``frames``, ``camera`` (make and model), ``original_size_px``.
    """

    rgb: np.ndarray
    name: str = "photo"
    warnings: tuple[str, ...] = field(default_factory=tuple)
    taken_at: datetime | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[:2]


def load_photo(
    source: str | os.PathLike | bytes | np.ndarray | Photo,
    *,
    allow_greyscale: bool = False,
) -> Photo:
    """Load a photo from a path, raw bytes or an array.

    Parameters
    ----------
    source : path, bytes, ndarray or Photo
        A JPEG/PNG/TIFF/WebP/HEIC/BMP file, its bytes, or an (M, N, 3) RGB array of any
        dtype (floats are taken as 0-1). A :class:`Photo` is returned as is.
    allow_greyscale : bool
        Greyscale files are refused by default (vessel classes and skin detection need
        colour); with True they are converted to grey RGB and a warning is added. Arrays
        (M, N) are always accepted with a warning.

    Returns
    -------
    Photo

    Raises
    ------
    PhotoError
        When the file is missing, empty, not an image, damaged, too large or too small,
        blank, or greyscale (see ``allow_greyscale``). The message says what to do.
    TypeError
        When ``source`` is of a type that cannot hold a photo.
    """
    if isinstance(source, Photo):
        return source
    if isinstance(source, np.ndarray):
        rgb, warns = _array_to_rgb(source)
        return Photo(rgb=rgb, name="photo", warnings=warns, info={"format": "array"})
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "photo"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = path.stem or path.name
        data = _read_file(path)
    else:
        raise TypeError(f"source must be a path, bytes or an array, got {type(source).__name__}")
    if not data:
        raise PhotoError(f"The file {name!r} is empty (0 bytes). Copy the photo again from the phone or camera.")
    if len(data) > MAX_FILE_BYTES:
        raise PhotoError(
            f"The file {name!r} is {len(data) / 2**20:.0f} MB, far larger than a photo. "
            "Use the photo as the phone saved it (a few MB)."
        )
    return _decode(data, name, allow_greyscale=allow_greyscale)


# --------------------------------------------------------------------------- reading


def _read_file(path: Path) -> bytes:
    try:
        if not path.exists():
            raise PhotoError(f"The file {path.name!r} does not exist. Check the path and try again.")
        if path.is_dir():
            raise PhotoError(f"{path.name!r} is a folder, not a photo. Choose a photo file.")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PhotoError(
                f"The file {path.name!r} is {size / 2**20:.0f} MB, far larger than a photo. "
                "Use the photo as the phone saved it (a few MB)."
            )
        return path.read_bytes()
    except PhotoError:
        raise
    except PermissionError as exc:
        raise PhotoError(
            f"VeinScope is not allowed to read {path.name!r}. Copy the photo to a folder you own, or check its permissions."
        ) from exc
    except OSError as exc:
        raise PhotoError(
            f"The file {path.name!r} could not be read ({exc.strerror or 'read error'}). "
            "Copy the photo again from the phone or camera."
        ) from exc


def _sniff(data: bytes, name: str) -> None:
    """Refuse files that are clearly something other than a photo, with a specific message."""
    head = data[:64]
    low = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()

    def refuse(what: str, todo: str) -> None:
        raise PhotoError(f"{name!r} is {what}, not a photo. {todo}")

    if head.startswith(b"%PDF"):
        refuse("a PDF document", "Export the page as a JPEG or PNG, or use the original photo.")
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):
        refuse("a PostScript/EPS drawing", "Use the original photo (JPEG or HEIC).")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        refuse(
            "a ZIP archive or an office document (Word, Excel, PowerPoint)",
            "Unpack it or save the photo out of the document, then load the photo itself.",
        )
    if head.startswith((b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"BZh")):
        refuse("a compressed archive", "Unpack it first and load the photo inside.")
    if head.startswith((b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")):
        refuse("a program file", "Choose the photo file itself.")
    if low.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        refuse("a saved web page", "Save the image itself (right-click, 'Save image as'), not the page.")
    if b"<svg" in low[:2048] and (low.startswith(b"<?xml") or low.startswith(b"<svg")):
        refuse("an SVG drawing", "Use the original photo (JPEG or HEIC).")
    if head.startswith(b"\x1aE\xdf\xa3") or (head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"WAVE")):
        refuse("a video or sound file", "Take a still photo, or save one frame of the video as a JPEG.")
    if head.startswith(b"FUJIFILMCCD-RAW") or head[:4] in (b"IIRO", b"IIRS", b"IIU\x00") or (
        head[:4] == b"II*\x00" and head[8:10] == b"CR"
    ):
        refuse("a camera RAW file", "Export it as a JPEG (or 16-bit TIFF) from the camera or photo software.")
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"crx ":
            refuse("a camera RAW file (Canon CR3)", "Export it as a JPEG (or 16-bit TIFF) from the camera software.")
        if brand in (b"isom", b"iso2", b"mp41", b"mp42", b"qt  ", b"M4V ", b"M4A ", b"3gp4", b"3gp5", b"avc1", b"dash"):
            refuse("a video (MP4/MOV)", "Take a still photo, or save one frame of the video as a JPEG.")
    if _looks_like_text(data[:4096]):
        refuse("a text file", "Choose the photo file itself (for example IMG_1234.HEIC or .JPG).")


def _looks_like_text(chunk: bytes) -> bool:
    if len(chunk) < 8 or b"\x00" in chunk:
        return False
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.97 * len(text)


_HEIF_STATE: dict[str, bool] = {}


def _heif_available() -> bool:
    """Register pillow-heif's opener once (Pillow's plugin registry is process-wide by design)."""
    if "ok" not in _HEIF_STATE:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _HEIF_STATE["ok"] = True
        except Exception:  # pragma: no cover - depends on the installation
            log.warning("pillow-heif is not available: HEIC/HEIF photos cannot be read")
            _HEIF_STATE["ok"] = False
    return _HEIF_STATE["ok"]


def _is_heif(data: bytes) -> bool:
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (
        b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis", b"mif2",
    )


# --------------------------------------------------------------------------- decoding

_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"II*\x00", b"MM\x00*", b"GIF8", b"BM")


def _has_image_signature(data: bytes) -> bool:
    return data.startswith(_IMAGE_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or _is_heif(data)



def _decode(data: bytes, name: str, *, allow_greyscale: bool) -> Photo:
    _sniff(data, name)
    heif = _is_heif(data)
    if heif and not _heif_available():
        raise PhotoError(
            f"{name!r} is a HEIC/HEIF photo and the HEIC reader (pillow-heif) is not installed. "
            "Install it (pip install pillow-heif), or export the photo as JPEG ('Most Compatible' on iPhone)."
        )
    warns: list[str] = []
    try:
        with _warnings.catch_warnings():
            # VeinScope applies its own pixel limit (MAX_PIXELS) below, before decoding.
            _warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(_io.BytesIO(data))
            with im:
                return _decode_image(im, data, name, warns, allow_greyscale=allow_greyscale)
    except PhotoError:
        raise
    except Image.DecompressionBombError as exc:
        raise PhotoError(
            f"The photo {name!r} declares more pixels than VeinScope opens safely. Export it at a lower resolution "
            "(12 megapixels is plenty)."
        ) from exc
    except UnidentifiedImageError as exc:
        if _has_image_signature(data):
            raise PhotoError(
                f"The photo {name!r} cannot be read: the file starts like an image but is damaged. "
                "Copy the original again from the phone or camera (not a preview or a messaging-app copy)."
            ) from exc
        raise PhotoError(
            f"{name!r} is not a photo VeinScope can read: the file is not an image, or its format is not supported. "
            f"Use a {_READABLE} file straight from the phone or camera."
        ) from exc
    except MemoryError as exc:
        raise PhotoError(
            f"The photo {name!r} is too large for the memory of this computer. Export it at a lower resolution."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the boundary of untrusted data: every failure gets the clear message
        log.debug("decoding %r failed: %r", name, exc)
        reason = "incomplete (cut off while copying or sending)" if "truncated" in str(exc).lower() else "damaged or incomplete"
        raise PhotoError(
            f"The photo {name!r} cannot be read: the file is {reason}. "
            "Copy the original again from the phone or camera (not a preview or a messaging-app copy)."
        ) from exc


def _decode_image(im: Image.Image, data: bytes, name: str, warns: list[str], *, allow_greyscale: bool) -> Photo:
    fmt = (im.format or "unknown").upper()
    w, h = im.size
    _check_dims(w, h, name)
    if fmt == "TIFF" and _TAG_DNG_VERSION in getattr(im, "tag_v2", {}):
        raise PhotoError(f"{name!r} is a camera RAW file (DNG), not a finished photo. Export it as a JPEG or 16-bit TIFF.")
    frames = int(getattr(im, "n_frames", 1) or 1)
    # MPO: phones store a preview or depth picture after the photo; nothing to warn about
    if frames > 1 and fmt != "MPO":
        what = "pages" if fmt == "TIFF" else "frames (an animation or burst)"
        warns.append(
            f"The file {name!r} holds {frames} {what}; only the first is used. Save the photo you mean on its own."
        )
    if frames > 1:
        im.seek(0)
    if fmt == "GIF":
        warns.append(
            "GIF keeps only 256 colours, which blurs the colour of fine vessels. Use the original JPEG or HEIC."
        )
    # EXIF: orientation and capture time only.
    orientation, taken_at, camera = 1, None, None
    try:
        exif = im.getexif()
        orientation = int(exif.get(_TAG_ORIENTATION, 1) or 1)
        taken_at = _capture_time(exif)
        camera = " ".join(str(exif.get(t, "")).strip("\x00 ") for t in (_TAG_MAKE, _TAG_MODEL)).strip() or None
    except Exception as exc:  # noqa: BLE001 - broken EXIF must not stop a readable photo
        log.debug("EXIF of %r unreadable: %r", name, exc)
        warns.append("The photo's EXIF data (orientation, capture time) is damaged and was ignored; check it is upright.")
    applied_by_decoder = None
    if fmt in ("HEIF", "AVIF"):
        # pillow-heif applies the rotation itself and resets the EXIF tag to 1
        applied_by_decoder = int(im.info.get("original_orientation", 1) or 1)
    if not 1 <= orientation <= 8:
        warns.append(
            f"The photo's orientation tag has an invalid value ({orientation}); it is shown as stored. Check it is upright."
        )
        orientation = 1
    icc = im.info.get("icc_profile")
    mode = im.mode
    bit_depth = 8
    im.load()  # the file decodes (so the 16-bit decoders below only see valid data)
    arr16 = _read_high_bit_depth(im, data, fmt)
    if arr16 is not None:
        bit_depth = 16
        rgb_f, grey, alpha_f = _float_channels(arr16)
    else:
        rgb_f = None
        grey = mode in ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
        if mode == "P":
            pal_mode = im.palette.mode if im.palette is not None else "RGB"
            grey = pal_mode in ("L", "LA")
        if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            bit_depth = 16 if mode.startswith("I;16") else 32
    if grey and not allow_greyscale:
        raise PhotoError(
            f"The photo {name!r} is black and white (greyscale). VeinScope needs a colour photo to tell skin, red "
            "and blue vessels and stains apart. Use the original colour photo."
        )
    profile_name = None
    if rgb_f is None:
        im_rgb, profile_name = _to_srgb_8bit(im, icc, name, warns)
        rgb = np.asarray(im_rgb, dtype=np.uint8)
    else:
        rgb_f, profile_name = _float_to_srgb(rgb_f, icc, name, warns)
        if alpha_f is not None and float(alpha_f.min()) < 1.0:
            warns.append(_ALPHA_WARNING)
            rgb_f = rgb_f * alpha_f[..., None] + (1.0 - alpha_f[..., None])
        rgb = np.clip(rgb_f * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb = _orient(rgb, orientation)
    _check_content(rgb, name)
    if grey:
        warns.append(
            "The photo is black and white: skin and vessel colours cannot be told apart, so classes are unreliable."
        )
    elif _is_grey(rgb):
        if not allow_greyscale:
            raise PhotoError(
                f"The photo {name!r} has no colour (all three colour channels are equal). VeinScope needs a colour "
                "photo to tell skin, red and blue vessels and stains apart. Use the original colour photo."
            )
        warns.append(
            "The photo is black and white: skin and vessel colours cannot be told apart, so classes are unreliable."
        )
    rgb = _check_size(np.ascontiguousarray(rgb), name)
    if min(rgb.shape[:2]) < LOW_RES_SIDE_PX:
        warns.append(
            f"The photo is only {rgb.shape[1]}x{rgb.shape[0]} pixels, probably a preview or a messaging-app copy: fine "
            "vessels may be lost. Use the original photo from the phone."
        )
    info = {
        "format": fmt,
        "mode": mode,
        "bit_depth": bit_depth,
        "orientation": applied_by_decoder if applied_by_decoder and orientation == 1 else orientation,
        "colour_profile": profile_name,
        "frames": frames,
        "camera": camera,
        "original_size_px": [int(w), int(h)],
    }
    return Photo(rgb=rgb, name=name, warnings=tuple(warns), taken_at=taken_at, info=info)


_ALPHA_WARNING = "Parts of the photo are transparent; they were filled with white and are not measured."


def _check_dims(w: int, h: int, name: str) -> None:
    if w <= 0 or h <= 0:
        raise PhotoError(f"The photo {name!r} has no pixels ({w}x{h}). Copy the original again from the phone or camera.")
    if w * h > MAX_PIXELS or max(w, h) > MAX_SIDE_PX:
        raise PhotoError(
            f"The photo {name!r} is {w}x{h} pixels, more than the {MAX_PIXELS // 1_000_000} megapixels "
            f"(or {MAX_SIDE_PX} pixels a side) VeinScope accepts. Export it at a lower resolution (12 megapixels is plenty)."
        )
    if min(w, h) < MIN_SIDE_PX:
        raise PhotoError(
            f"The photo {name!r} is only {w}x{h} pixels: too small to show thread veins. "
            "Use the original photo, not a thumbnail."
        )
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise PhotoError(
            f"The photo {name!r} is {w}x{h} pixels, a long thin strip (a panorama or a screenshot of a page). "
            "Take a normal photo of the treated area."
        )


def _capture_time(exif) -> datetime | None:
    sub = exif.get_ifd(_EXIF_IFD) if hasattr(exif, "get_ifd") else {}
    raw = sub.get(_TAG_DATETIME_ORIGINAL) or exif.get(_TAG_DATETIME)
    if not raw:
        return None
    text = str(raw).strip("\x00 ")
    try:
        t = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    off = sub.get(_TAG_OFFSET_TIME_ORIGINAL)
    if off:
        s = str(off).strip("\x00 ")
        try:
            sign = -1 if s[0] == "-" else 1
            hh, mm = s.lstrip("+-").split(":")
            t = t.replace(tzinfo=timezone(sign * timedelta(hours=int(hh), minutes=int(mm))))
        except (ValueError, IndexError):
            pass
    return t


def _read_high_bit_depth(im: Image.Image, data: bytes, fmt: str) -> np.ndarray | None:
    """16-bit (or float) colour data that Pillow would truncate to 8 bit, or None."""
    try:
        if fmt == "PNG" and len(data) > 26 and data[24] == 16 and data[25] in (0, 2, 4, 6):
            import cv2

            buf = np.frombuffer(data, np.uint8)
            arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
            if arr is None or arr.dtype != np.uint16:
                return None
            if arr.ndim == 3:
                arr = arr[..., [2, 1, 0, 3]] if arr.shape[2] == 4 else arr[..., ::-1]
            return np.ascontiguousarray(arr)
        if fmt == "TIFF":
            bps = im.tag_v2.get(258)
            bps = tuple(bps) if isinstance(bps, (tuple, list)) else (bps,)
            if not any(b in (16, 32) for b in bps if b is not None) or im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return None
            import tifffile

            quiet = _DropAll()
            tlog = logging.getLogger("tifffile")
            tlog.addFilter(quiet)  # damaged files: our own message, not tifffile's log lines
            try:
                with tifffile.TiffFile(_io.BytesIO(data)) as tif:
                    page = tif.pages[0]
                    if page.photometric not in (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.MINISBLACK):
                        return None
                    arr = page.asarray()
            finally:
                tlog.removeFilter(quiet)
            if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
                arr = np.moveaxis(arr, 0, -1)
            return np.ascontiguousarray(arr)
    except Exception as exc:  # noqa: BLE001 - fall back to Pillow's 8-bit decoding
        log.debug("high-bit-depth decoding failed (%r); using 8 bit", exc)
    return None


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _float_channels(arr: np.ndarray) -> tuple[np.ndarray, bool, np.ndarray | None]:
    """uint16/float array (M, N[, C]) -> (rgb float 0-1 (M, N, 3), is_grey, alpha 0-1 or None)."""
    if arr.dtype == np.uint16:
        f = arr.astype(np.float64) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        f = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        f = np.clip(f, 0.0, 1.0)
    else:
        f = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    if f.ndim == 2:
        return np.repeat(f[..., None], 3, axis=2), True, None
    c = f.shape[2]
    if c == 1:
        return np.repeat(f, 3, axis=2), True, None
    if c == 2:
        return np.repeat(f[..., :1], 3, axis=2), True, f[..., 1]
    alpha = f[..., 3] if c >= 4 else None
    return f[..., :3], False, alpha


def _srgb_profile():
    return ImageCms.createProfile("sRGB")


def _profile_description(profile) -> str:
    try:
        return ImageCms.getProfileDescription(profile).strip() or "unnamed"
    except Exception:  # noqa: BLE001
        return "unnamed"


def _source_profile(icc: bytes | None, name: str, warns: list[str]):
    """(ImageCmsProfile or None when sRGB/absent, description or None)."""
    if not icc:
        return None, None
    try:
        prof = ImageCms.ImageCmsProfile(_io.BytesIO(icc))
    except Exception:  # noqa: BLE001 - a broken profile must not stop a readable photo
        warns.append("The photo's colour profile is damaged and was ignored (sRGB assumed); colours may be slightly off.")
        return None, "damaged"
    desc = _profile_description(prof)
    if "srgb" in desc.lower().replace(" ", "") or "iec61966" in desc.lower().replace(" ", ""):
        return None, desc
    return prof, desc


def _to_srgb_8bit(im: Image.Image, icc: bytes | None, name: str, warns: list[str]) -> tuple[Image.Image, str | None]:
    """Any Pillow mode -> RGB sRGB image (ICC applied, alpha over white, palette expanded)."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info or (im.palette and im.palette.mode == "RGBA") else im.convert("RGB")
        mode = im.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or (mode == "I" and a.max() > 255) else (1.0 if mode == "F" and a.max() <= 1.0 else 255.0)
        g = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(g[..., None], 3, axis=2)), None
    src, desc = _source_profile(icc, name, warns)
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA")
    if mode in ("RGBa", "La"):
        im = im.convert(mode.replace("a", "A"))
        mode = im.mode
    alpha = im.getchannel("A") if has_alpha else None
    base_mode = {"RGBA": "RGB", "LA": "L", "PA": "RGB"}.get(mode, mode)
    if has_alpha:
        im = im.convert(base_mode)
    if src is not None:
        try:
            in_mode = im.mode if im.mode in ("RGB", "CMYK", "L", "LAB") else "RGB"
            if im.mode != in_mode:
                im = im.convert(in_mode)
            im = ImageCms.profileToProfile(
                im, src, _srgb_profile(), renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
            )
        except Exception as exc:  # noqa: BLE001
            log.debug("ICC conversion failed: %r", exc)
            warns.append(
                f"The photo's colour profile ({desc}) could not be applied; colours are used as stored and may be slightly off."
            )
    if im.mode == "LAB":
        lab = ImageCms.createProfile("LAB")
        im = ImageCms.profileToProfile(im, lab, _srgb_profile(), outputMode="RGB")
    if im.mode != "RGB":
        im = im.convert("RGB")
    if alpha is not None:
        a = np.asarray(alpha, dtype=np.float64) / 255.0
        if a.min() < 1.0:
            warns.append(_ALPHA_WARNING)
            rgb = np.asarray(im, dtype=np.float64)
            rgb = rgb * a[..., None] + 255.0 * (1.0 - a[..., None])
            im = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))
    return im, desc


def _float_to_srgb(rgb: np.ndarray, icc: bytes | None, name: str, warns: list[str]) -> tuple[np.ndarray, str | None]:
    """High-precision RGB 0-1 with an optional ICC profile -> sRGB 0-1, keeping the precision.

    The profile's transform is sampled by LittleCMS on a 33^3 grid (16-bit values would be
    truncated by Pillow's 8-bit transforms) and applied by trilinear interpolation.
    """
    src, desc = _source_profile(icc, name, warns)
    if src is None:
        return rgb, desc
    try:
        from scipy.ndimage import map_coordinates

        n = 33
        g = np.linspace(0.0, 255.0, n)
        grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(n * n, n, 3)
        grid_im = Image.fromarray(np.clip(grid + 0.5, 0, 255).astype(np.uint8))
        out = ImageCms.profileToProfile(grid_im, src, _srgb_profile(), renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB")
        lut = np.asarray(out, dtype=np.float64).reshape(n, n, n, 3) / 255.0
        coords = (rgb * (n - 1)).reshape(-1, 3).T
        res = np.empty_like(rgb).reshape(-1, 3)
        for k in range(3):
            res[:, k] = map_coordinates(lut[..., k], coords, order=1, mode="nearest")
        return res.reshape(rgb.shape), desc
    except Exception as exc:  # noqa: BLE001
        log.debug("ICC conversion (16 bit) failed: %r", exc)
        warns.append(f"The photo's colour profile ({desc}) could not be applied; colours may be slightly off.")
        return rgb, desc


def _orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1-8 (what a person sees), as in ``PIL.ImageOps.exif_transpose``."""
    if orientation == 2:
        return rgb[:, ::-1]
    if orientation == 3:
        return rgb[::-1, ::-1]
    if orientation == 4:
        return rgb[::-1]
    if orientation == 5:
        return rgb.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(rgb, k=-1)
    if orientation == 7:
        return rgb[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(rgb, k=1)
    return rgb


def _is_grey(rgb: np.ndarray) -> bool:
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 250_000)))
    s = rgb[::step, ::step].astype(np.int16)
    return int(np.abs(s[..., 0] - s[..., 1]).max()) <= 1 and int(np.abs(s[..., 1] - s[..., 2]).max()) <= 1


def _check_content(rgb: np.ndarray, name: str) -> None:
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 250_000)))
    s = rgb[::step, ::step]
    if int((s.max(axis=(0, 1)).astype(int) - s.min(axis=(0, 1))).max()) <= 2:
        level = float(s.mean())
        what = "completely black (lens covered?)" if level < 20 else "completely white" if level > 235 else "a single flat colour"
        raise PhotoError(
            f"The photo {name!r} is {what}: there is nothing to measure. Take the photo again with the skin in view."
        )


def _array_to_rgb(arr: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    a = np.asarray(arr)
    warns: tuple[str, ...] = ()
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
        warns = ("The photo is black and white: skin and vessel colours cannot be told apart, so classes are unreliable.",)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"image must have shape (M, N, 3), got {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        out = a.copy()
    elif np.issubdtype(a.dtype, np.floating):
        out = np.clip(np.nan_to_num(a, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype == np.uint16:
        out = (a.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif a.dtype == np.bool_:
        out = a.astype(np.uint8) * 255
    else:
        out = np.clip(a, 0, 255).astype(np.uint8)
    return _check_size(np.ascontiguousarray(out), "photo"), warns


def _check_size(rgb: np.ndarray, name: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE_PX:
        raise PhotoError(
            f"The photo {name!r} is only {w}x{h} pixels: too small to show thread veins. "
            "Use the original photo, not a thumbnail."
        )
    return rgb
