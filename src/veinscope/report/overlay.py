"""The analysis overlay: the photo with the vessel classes drawn, and a legend strip beneath it."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from veinscope.segment import CLASS_CODES

__all__ = ["CLASS_COLOURS", "encode_png", "render_overlay"]

#: Display colour of each class (distinct on skin tones, colour-blind-aware order).
CLASS_COLOURS = {
    "red_telangiectasia": (255, 0, 160),
    "blue_telangiectasia": (0, 190, 255),
    "reticular": (60, 230, 60),
    "over_3mm": (255, 150, 0),
}
_LABELS = {
    "red_telangiectasia": "red telangiectasia (< 1 mm)",
    "blue_telangiectasia": "blue telangiectasia (< 1 mm)",
    "reticular": "reticular vein (1-3 mm)",
    "over_3mm": "over 3 mm: not for microsclerotherapy",
}
#: The legend's last line: what the marks leave out. Bulging varicose veins are seen more as
#: the leg's shading than as colour, and the engine finds veins by their colour: on the real
#: legs of ../shared/data/legs-dev (veins_03, _04, _07) they went unmarked (session 33).
UNMARKED_NOTE = "not marked: bulging veins seen only as shading (examine; over 3 mm: refer)"


def render_overlay(
    rgb, analysis, *, alpha: float = 0.7, outline_skin: bool = True, figures: dict | None = None
) -> np.ndarray:
    """Photo with the detected vessels coloured by class, and a legend with the figures beneath it.

    Parameters
    ----------
    rgb : ndarray (M, N, 3) uint8
        The upright photo that was analysed (not modified).
    analysis : Analysis
        Anything with ``labels`` (M, N) uint8 class codes, ``skin`` (M, N) bool,
        ``px_per_mm`` and ``to_dict()`` (the ``analysis.json`` figures).
    alpha : float
        Opacity of the class colours (0-1).
    outline_skin : bool
        Draw the border of the skin found as a white line.
    figures : dict, optional
        ``analysis.to_dict()`` when the caller already has it (not made again for the legend).

    Returns
    -------
    ndarray (M + H, N, 3) uint8
        A new picture: rows ``[:M]`` are the photo dimmed to 85 %, vessel pixels blended with
        their class colour (and the skin's border); rows ``[M:]`` are the legend, a black strip
        ``H`` px high (the returned height less ``M``) that hides no part of the photo.

    Notes
    -----
    Vessels cover a few per cent of a photo at most, so colours are blended on the vessel
    pixels only (a 12 MP photo takes well under 0.1 s on one core, against 0.5 s for
    whole-image passes).
    """
    import cv2

    base = np.ascontiguousarray(rgb, dtype=np.uint8)
    if base.ndim != 3 or base.shape[2] != 3:
        raise ValueError(f"rgb must have shape (M, N, 3), got {base.shape}")
    labels = np.asarray(analysis.labels)
    if labels.shape != base.shape[:2]:
        raise ValueError(f"analysis.labels has shape {labels.shape}, the photo {base.shape[:2]}")
    out = cv2.convertScaleAbs(base, alpha=0.85)  # the photo dimmed a little (a new array)
    flat_out = out.reshape(-1, 3)
    idx = _flat_nonzero(labels)
    if idx.size:
        lut = np.zeros((256, 3), np.uint8)
        for name, code in CLASS_CODES.items():
            lut[code] = CLASS_COLOURS[name]
        colour = lut[labels.reshape(-1)[idx]][:, None, :]
        photo = base.reshape(-1, 3)[idx][:, None, :]
        flat_out[idx] = cv2.addWeighted(photo, 1.0 - alpha, colour, alpha, 0.0)[:, 0, :]
    if outline_skin:
        skin = np.ascontiguousarray(analysis.skin, dtype=bool).view(np.uint8)
        edge = cv2.morphologyEx(skin, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        cv2.bitwise_or(out, (255, 255, 255, 0), dst=out, mask=edge)  # white where edge != 0
    strip = _legend(out.shape[:2], analysis, analysis.to_dict() if figures is None else figures)
    return np.concatenate([out, strip], axis=0)


def _flat_nonzero(img: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(img)`` of an (M, N) uint8 image, by OpenCV's scan (the same indices in
    the same order; 0.01 s on 12 MP against NumPy's 0.026 s)."""
    import cv2

    if img.dtype != np.uint8 or img.ndim != 2 or img.size == 0:
        return np.flatnonzero(img)
    yx = cv2.findNonZero(np.ascontiguousarray(img))  # (K, 1, 2) int32 (x, y) in row-major order, None when K = 0
    if yx is None:
        return np.zeros(0, np.intp)
    yx = yx.reshape(-1, 2)
    return yx[:, 1].astype(np.intp) * img.shape[1] + yx[:, 0]


def _legend(photo_shape: tuple[int, int], analysis, figures: dict) -> np.ndarray:
    """The legend strip to put under a photo of ``photo_shape`` (M, N): an (H, N, 3) uint8 picture.

    ``figures`` is ``analysis.to_dict()``. The entries go in as many columns (at most two) as
    the photo's width takes, a line too long for the width wrapped at spaces. The legend used to
    be drawn over the photo's top-left corner, hiding any vessel there (session 32).
    """
    h, w = photo_shape
    size = max(11, int(min(w, h) / 45))
    font = ImageFont.load_default(size=size)
    figs = figures["classes"]
    calibrated = analysis.px_per_mm is not None
    lines = []
    for name, colour in CLASS_COLOURS.items():
        f = figs[name]
        if calibrated:
            extra = f"{f['segments']} seg, {f['length_mm']:.0f} mm long" if f["segments"] else "none"
        else:
            extra = f"{f['segments']} seg" if f["segments"] else "none"
        lines.append((colour, f"{_LABELS[name]}: {extra}"))
    tot = figs["total"]
    lines.append((None, f"vessel coverage {tot['coverage_pct']:.2f} % of skin" + ("" if calibrated else " (no scale)")))
    lines.append((None, UNMARKED_NOTE))
    pad = size // 2
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    indent = 2 * pad + size  # the text starts after the colour square
    text_w = max(measure.textlength(t, font=font) for _, t in lines)
    col_w = int(np.ceil(indent + text_w + 2 * pad))
    cols = 2 if 2 * col_w <= w else 1
    room = max(1.0, (w if cols == 1 else col_w) - indent - pad)  # width the text may take
    entries = []  # one list of (colour, text) rows per entry, wrapped to the room
    for colour, text in lines:
        rows, cur = [], ""
        for word in text.split(" "):
            trial = (cur + " " + word).strip()
            if cur and measure.textlength(trial, font=font) > room:
                rows.append(cur)
                cur = word
            else:
                cur = trial
        rows.append(cur)
        entries.append([(colour if k == 0 else None, r) for k, r in enumerate(rows)])
    per_col = -(-len(entries) // cols)
    columns = [sum(entries[c * per_col:(c + 1) * per_col], []) for c in range(cols)]
    n_rows = max(len(col) for col in columns)
    strip = Image.new("RGB", (w, n_rows * (size + pad) + pad), (0, 0, 0))
    d = ImageDraw.Draw(strip)
    for c, col in enumerate(columns):
        x = c * col_w + pad
        y = pad
        for colour, text in col:
            if colour is not None:
                d.rectangle([x, y, x + size, y + size], fill=colour)
            d.text((x + pad + size, y), text, fill=(255, 255, 255), font=font)
            y += size + pad
    return np.asarray(strip)


def _deflate():
    """``compress(data, level)`` of ISA-L (the ``isal`` package) when installed, else zlib's.

    Both write the zlib format PNG requires; ISA-L's level 1 is about 4x faster than zlib's
    on photo-like data at a similar size (BENCHMARKS.md, speed and memory, session 4).
    """
    try:
        from isal import isal_zlib

        return isal_zlib.compress
    except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
        import zlib

        return zlib.compress


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes of an (M, N) uint8 grey or (M, N, 3) uint8 RGB picture (lossless).

    Every row with the "up" filter (the difference to the row above), deflated at level 1 in
    one stream: ISA-L when the ``isal`` package is there (a 12 MP overlay in about 0.15 s on
    one core, 13 MB), zlib otherwise (about 0.6 s, as OpenCV's encoder at level 1).
    """
    import struct

    img = np.asarray(img)
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"img must have shape (M, N) or (M, N, 3), got {img.shape}")
    img = np.ascontiguousarray(img, dtype=np.uint8)
    m, n = img.shape[:2]
    rows = img.reshape(m, -1)
    raw = np.empty((m, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = 2  # filter type "up"; the row above the first is zeros
    if m:
        raw[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
    header = struct.pack(">IIBBBBB", n, m, 8, 2 if img.ndim == 3 else 0, 0, 0, 0)
    data = _deflate()(raw, 1)
    del raw
    idat = [_png_chunk(b"IDAT", data[k : k + _IDAT_BYTES]) for k in range(0, max(len(data), 1), _IDAT_BYTES)]
    return b"".join([b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header), *idat, _png_chunk(b"IEND", b"")])


#: Largest IDAT chunk written (the deflate stream is split over several).
_IDAT_BYTES = 1 << 22
