"""Photo intake: any supported file or bytes -> upright (M, N, 3) uint8 RGB.

BGR never leaves OpenCV calls: everything VeinScope passes around is RGB.
"""

from __future__ import annotations

import io as _io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from veinscope.errors import PhotoError

__all__ = ["Photo", "load_photo", "MAX_PIXELS", "MIN_SIDE_PX"]

log = logging.getLogger(__name__)

#: Largest photo accepted, checked before decoding (a 12 MP phone photo is 12e6).
MAX_PIXELS = 100_000_000
#: Shortest side below which a photo cannot show thread veins.
MIN_SIDE_PX = 64


@dataclass(frozen=True)
class Photo:
    """An upright RGB photo ready for analysis.

    Attributes
    ----------
    rgb : ndarray, shape (M, N, 3), uint8
        The photo as a person sees it (EXIF orientation applied).
    name : str
        File stem (or ``"photo"`` for bytes), used to name outputs.
    warnings : tuple of str
        Plain-language remarks made while loading.
    """

    rgb: np.ndarray
    name: str = "photo"
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[:2]


def load_photo(source: str | os.PathLike | bytes | np.ndarray | Photo) -> Photo:
    """Load a photo from a path, raw bytes or an array.

    Parameters
    ----------
    source : path, bytes, ndarray or Photo
        A JPEG/PNG/TIFF/WebP/BMP file, its bytes, or an (M, N, 3) RGB array of any dtype
        (floats are taken as 0-1).

    Returns
    -------
    Photo

    Raises
    ------
    PhotoError
        When the file is missing, empty, not an image, too large or too small.
    """
    if isinstance(source, Photo):
        return source
    if isinstance(source, np.ndarray):
        return Photo(rgb=_array_to_rgb(source), name="photo")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "photo"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = path.stem
        if not path.exists():
            raise PhotoError(f"The file {path.name!r} does not exist. Check the path and try again.")
        if path.is_dir():
            raise PhotoError(f"{path.name!r} is a folder, not a photo. Choose a photo file.")
        data = path.read_bytes()
    else:
        raise TypeError(f"source must be a path, bytes or an array, got {type(source).__name__}")
    if not data:
        raise PhotoError(f"The file {name!r} is empty (0 bytes). Copy the photo again from the phone or camera.")
    return Photo(rgb=_decode(data, name), name=name)


def _decode(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(_io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise PhotoError(
                    f"The photo {name!r} is {w}x{h} pixels, more than the {MAX_PIXELS // 1_000_000} megapixels "
                    "VeinScope accepts. Export it at a lower resolution (12 megapixels is plenty)."
                )
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                scale = 65535.0 if arr.max() > 255 else 255.0
                grey = np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
                rgb = np.repeat(grey[..., None], 3, axis=2)
            else:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except PhotoError:
        raise
    except Image.DecompressionBombError as exc:
        raise PhotoError(
            f"The photo {name!r} is too large to open safely. Export it at a lower resolution."
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise PhotoError(
            f"{name!r} is not a photo VeinScope can read (damaged, incomplete or not an image). "
            "Use a JPEG, PNG, TIFF, WebP or BMP straight from the camera."
        ) from exc
    return _check_size(np.ascontiguousarray(rgb), name)


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"image must have shape (M, N, 3), got {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        out = a.copy()
    elif np.issubdtype(a.dtype, np.floating):
        out = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype == np.uint16:
        out = (a.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif a.dtype == np.bool_:
        out = a.astype(np.uint8) * 255
    else:
        out = np.clip(a, 0, 255).astype(np.uint8)
    return _check_size(np.ascontiguousarray(out), "photo")


def _check_size(rgb: np.ndarray, name: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE_PX:
        raise PhotoError(
            f"The photo {name!r} is only {w}x{h} pixels: too small to show thread veins. "
            "Use the original photo, not a thumbnail."
        )
    return rgb
