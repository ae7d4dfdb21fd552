"""The analysis overlay: the photo with the vessel classes drawn and a legend."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from veinscope.segment import CLASS_CODES

__all__ = ["CLASS_COLOURS", "render_overlay"]

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


def render_overlay(rgb, analysis, *, alpha: float = 0.7, outline_skin: bool = True) -> np.ndarray:
    """Photo with the detected vessels coloured by class and a legend with the figures.

    Parameters
    ----------
    rgb : ndarray (M, N, 3) uint8
        The upright photo that was analysed.
    analysis : Analysis
    alpha : float
        Opacity of the class colours.

    Returns
    -------
    ndarray (M, N, 3) uint8
    """
    import cv2

    base = np.ascontiguousarray(rgb, dtype=np.uint8)
    out = cv2.convertScaleAbs(base, alpha=0.85)  # the photo dimmed a little, in uint8
    labels = analysis.labels
    lut = np.zeros((256, 3), np.uint8)
    for name, code in CLASS_CODES.items():
        lut[code] = CLASS_COLOURS[name]
    vessel = labels > 0
    if vessel.any():
        colour = lut[labels]
        blended = cv2.addWeighted(base, 1.0 - alpha, colour, alpha, 0.0)
        np.copyto(out, blended, where=vessel[:, :, None])
        del colour, blended
    if outline_skin:
        edge = cv2.morphologyEx(analysis.skin.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        out[edge] = (255, 255, 255)
    img = Image.fromarray(out)
    _legend(img, analysis)
    return np.asarray(img)


def _legend(img: Image.Image, analysis) -> None:
    w, h = img.size
    size = max(11, int(min(w, h) / 45))
    font = ImageFont.load_default(size=size)
    d = ImageDraw.Draw(img)
    figs = analysis.to_dict()["classes"]
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
    pad = size // 2
    box_w = max(d.textlength(t, font=font) for _, t in lines) + 3 * pad + size
    box_h = len(lines) * (size + pad) + pad
    d.rectangle([0, 0, box_w, box_h], fill=(0, 0, 0))
    y = pad
    for colour, text in lines:
        if colour is not None:
            d.rectangle([pad, y, pad + size, y + size], fill=colour)
        d.text((2 * pad + size, y), text, fill=(255, 255, 255), font=font)
        y += size + pad
