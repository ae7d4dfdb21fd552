"""Pictures of a comparison: the change map and the side-by-side view.

Both are returned as arrays (never shown or saved here). The change map draws the baseline in
light grey so that the colours carry the message: cleared vessels green, persisting vessels
orange-red, staining brown with a yellow outline, matting magenta, new vessels blue, and the
part of the baseline the follow-up does not show hatched. A panel under the picture gives the
legend with the figures; staining and matting patches are numbered as in ``comparison.json``.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from veinscope.compare import CHANGE_CODES

__all__ = ["CHANGE_COLOURS", "render_change_map", "render_side_by_side"]

#: Display colour of each change (distinct on a grey photo; green/orange-red also differ in lightness).
CHANGE_COLOURS = {
    "cleared": (0, 200, 110),
    "persisting": (235, 60, 10),
    "staining": (150, 85, 20),
    "matting": (230, 0, 200),
    "new_vessel": (20, 110, 255),
    "not_compared": (70, 70, 70),
}
_OUTLINE = {"staining": (255, 210, 0), "matting": (255, 150, 250)}
_MAX_SIDE = 2400


def _font(size: int):
    """DejaVu Sans where installed (it has ², Δ), else Pillow's built-in font."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/Library/Fonts/Arial Unicode.ttf", "C:/Windows/Fonts/arial.ttf"):
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                continue
    return ImageFont.load_default(size=size)


def _plain(text: str, font) -> str:
    """ASCII fallbacks when the font lacks the glyphs."""
    if isinstance(font, ImageFont.FreeTypeFont) and "DejaVu" in (font.getname()[0] or "") or "Arial" in (font.getname()[0] or ""):
        return text
    return text.replace("mm²", "mm2").replace("px²", "px2").replace("ΔE00", "dE00")


def _downscale(img: np.ndarray, f: float, *, mask: bool = False) -> np.ndarray:
    if f >= 1.0:
        return img
    m, n = img.shape[:2]
    size = (max(1, round(n * f)), max(1, round(m * f)))
    if mask:
        return cv2.resize(img.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.15
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def render_change_map(comparison, *, max_side_px: int = _MAX_SIDE) -> np.ndarray:
    """The baseline with what changed by the follow-up, and a legend panel underneath.

    Parameters
    ----------
    comparison : Comparison
    max_side_px : int
        Long side of the picture (larger photos are reduced; thin vessels are thickened so
        they stay visible).

    Returns
    -------
    ndarray (H, W, 3) uint8
    """
    rgb = comparison.baseline_rgb
    cm = comparison.change_map
    m, n = cm.shape
    f = min(1.0, max_side_px / max(m, n))
    grey = cv2.cvtColor(_downscale(rgb, f), cv2.COLOR_RGB2GRAY).astype(np.float32)
    base = 110.0 + 0.55 * grey  # light grey photo: the colours carry the message
    out = np.repeat(base[..., None], 3, axis=2)
    mm, nn = out.shape[:2]
    thick = max(1, int(round(min(mm, nn) / 500)))
    masks = {name: _downscale(cm == code, f, mask=True) for name, code in CHANGE_CODES.items()}
    # not compared: hatched
    nc = masks["not_compared"]
    yy, xx = np.mgrid[0:mm, 0:nn]
    hatch = ((xx + yy) // max(3, thick * 3)) % 3 == 0
    out[nc] = 0.5 * out[nc] + 0.5 * np.array(CHANGE_COLOURS["not_compared"], np.float32)
    out[nc & hatch] = CHANGE_COLOURS["not_compared"]
    for name in ("staining", "matting"):
        sel = masks[name]
        if sel.any():
            out[sel] = 0.35 * out[sel] + 0.65 * np.array(CHANGE_COLOURS[name], np.float32)
            edge = cv2.morphologyEx(sel.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((2 * thick + 1,) * 2, np.uint8)) > 0
            out[edge] = _OUTLINE[name]
    drawn = masks["staining"] | masks["matting"]  # where a label would hide what the map shows
    for name in ("cleared", "persisting", "new_vessel"):
        sel = masks[name]
        if thick > 1 and sel.any():
            sel = cv2.dilate(sel.astype(np.uint8), np.ones((thick, thick), np.uint8)) > 0
        out[sel] = CHANGE_COLOURS[name]
        drawn |= sel
    img = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    size = max(12, int(min(mm, nn) / 40))
    font = _font(size)
    stroke = max(1, size // 8)
    tags = [
        (f"{prefix}{i + 1}", key, tuple(v * f for v in loc["bbox_yxyx"]))
        for key, prefix in (("staining", "S"), ("matting", "M"))
        for i, loc in enumerate(getattr(comparison, key)["locations"])
    ]
    boxes = [_text_box(d, text, font, stroke) for text, _, _ in tags]
    spots = _place_labels([b for _, _, b in tags], boxes, (mm, nn), gap=max(2, size // 6), busy=drawn)
    for (text, key, (y0, x0, y1, x1)), (w, h), (tx, ty) in zip(tags, boxes, spots):
        cx, cy = min(max(tx + w / 2, x0), x1), min(max(ty + h / 2, y0), y1)  # nearest point of the patch's box
        if not (x0 - 2 * size <= tx + w / 2 <= x1 + 2 * size and y0 - 2 * size <= ty + h / 2 <= y1 + 2 * size):
            d.line([(tx + w / 2, ty + h / 2), (cx, cy)], fill=_OUTLINE[key], width=max(1, thick))  # a leader to a label moved away
        d.text((tx, ty), text, fill=_OUTLINE[key], font=font, stroke_width=stroke, stroke_fill=(0, 0, 0))
    panel = _legend_panel(comparison, nn, size)
    return np.concatenate([np.asarray(img), panel], axis=0)


def _text_box(draw, text: str, font, stroke: int) -> tuple[int, int]:
    """Width and height (px) the label takes, stroke included."""
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
    return int(np.ceil(x1)), int(np.ceil(y1))


def _place_labels(patches, sizes, shape, *, gap: int = 2, busy: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Top-left corners for the patches' labels, none overlapping another label.

    Each label goes beside its patch's box (``(y0, x0, y1, x1)``): to the upper right first,
    then the other corners and sides, then further out in rings. The first spot inside the
    picture that overlaps no label already placed and no ``busy`` pixel (bool, ``shape``: the
    vessels and patches the map draws) wins; where none is free, the spot overlapping the
    fewest labels, then the fewest busy pixels. Labels are placed in the order given (the
    patches' numbers).
    """
    mm, nn = shape
    placed: list[tuple[int, int, int, int]] = []
    out = []
    if busy is not None:  # summed-area table: busy pixels in a rectangle in four look-ups
        sat = np.zeros((mm + 1, nn + 1), np.int64)
        sat[1:, 1:] = np.cumsum(np.cumsum(np.asarray(busy, bool), axis=0), axis=1)

    def overlap(r):
        lab = sum(max(0, min(r[2], q[2]) - max(r[0], q[0])) * max(0, min(r[3], q[3]) - max(r[1], q[1])) for q in placed)
        if busy is None:
            return (lab, 0)
        x0, y0, x1, y1 = r
        return (lab, int(sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]))

    for (y0, x0, y1, x1), (w, h) in zip(patches, sizes):
        best, best_cost = None, None
        for ring in range(4):
            o = gap + ring * (h + gap)
            cands = [
                (x1 + o, y0 - h), (x0 - w - o, y0 - h), (x1 + o, y1), (x0 - w - o, y1),
                ((x0 + x1 - w) / 2, y0 - h - o), ((x0 + x1 - w) / 2, y1 + o),
                (x1 + o, (y0 + y1 - h) / 2), (x0 - w - o, (y0 + y1 - h) / 2),
            ]
            for tx, ty in cands:
                tx, ty = int(round(min(max(tx, 0), nn - w))), int(round(min(max(ty, 0), mm - h)))
                r = (tx, ty, tx + w, ty + h)
                cost = overlap(r)
                if best_cost is None or cost < best_cost:
                    best, best_cost = (tx, ty), cost
                if cost == (0, 0):
                    break
            if best_cost == (0, 0):
                break
        placed.append((best[0], best[1], best[0] + w, best[1] + h))
        out.append(best)
    return out


def _legend_panel(c, width: int, size: int) -> np.ndarray:
    d = c.to_dict()
    ppm = c.px_per_mm
    lp = c.lengths_px
    base = lp["baseline"]

    def length(px):
        return f"{px / ppm:.0f} mm" if ppm else f"{px:.0f} px"

    def area(block):
        return f"{block['area_mm2']:.1f} mm²" if block["area_mm2"] is not None else f"{block['area_px2']} px²"

    lines: list[tuple[tuple[int, int, int] | None, str]] = []
    if c.improvement_pct is None:
        lines.append((None, "Improvement: not computed (no baseline vessels in the part both photos show)"))
    else:
        lines.append((None, f"Improvement {c.improvement_pct:.0f} % of the vessel length - grade {c.grade} ({d['grade_text']})"))
    if base > 0:
        lines.append((CHANGE_COLOURS["cleared"], f"cleared: {100 * lp['cleared'] / base:.0f} % of baseline vessel length ({length(lp['cleared'])})"))
        lines.append((CHANGE_COLOURS["persisting"], f"still visible: {100 * lp['visible'] / base:.0f} % ({length(lp['visible'])})"))
    def tags(prefix, k):
        return f"{prefix}1" if k == 1 else f"{prefix}1-{prefix}{k}"

    st = c.staining
    lines.append(
        (
            CHANGE_COLOURS["staining"],
            "staining (brown, new): " + (f"{st['patches']} patch{'es' if st['patches'] != 1 else ''} ({tags('S', st['patches'])}), {area(st)}, colour difference ΔE00 {st['delta_e00']:.1f}" if st["patches"] and st["delta_e00"] is not None else (f"{st['patches']} patches, {area(st)}" if st["patches"] else "none")),
        )
    )
    mt = c.matting
    lines.append((CHANGE_COLOURS["matting"], "matting (new fine red vessels): " + (f"{mt['patches']} patch{'es' if mt['patches'] != 1 else ''} ({tags('M', mt['patches'])}), {area(mt)}" if mt["patches"] else "none")))
    nv = c.new_vessels
    lines.append((CHANGE_COLOURS["new_vessel"], "new vessels elsewhere: " + (f"{nv['count']}, {length(nv['length_px'])} long" if nv["count"] else "none")))
    reg = c.registration
    if reg.not_compared:
        lines.append((CHANGE_COLOURS["not_compared"], "hatched: not compared (outside the follow-up photo, or hidden by the card)"))
    res = f"{reg.residual_mm:.2f} mm" if reg.residual_mm is not None else (f"{reg.residual_px:.1f} px" if reg.residual_px is not None else "not measured")
    lines.append((None, f"alignment residual {res}; {100 * reg.overlap_frac:.0f} % of the baseline skin compared"))
    lines.append((None, "VeinScope measures and documents; it does not diagnose."))
    font = _font(size)
    pad = size // 2
    # wrap long lines to the width
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = []
    for colour, text in lines:
        words, cur = text.split(" "), ""
        first = True
        for w in words:
            trial = (cur + " " + w).strip()
            if probe.textlength(trial, font=font) > width - 3 * pad - size and cur:
                wrapped.append((colour if first else None, cur))
                first, cur = False, w
            else:
                cur = trial
        wrapped.append((colour if first else None, cur))
    h = len(wrapped) * (size + pad) + 2 * pad
    panel = Image.new("RGB", (width, h), (20, 20, 20))
    dr = ImageDraw.Draw(panel)
    y = pad
    for colour, text in wrapped:
        if colour is not None:
            dr.rectangle([pad, y + 1, pad + size - 2, y + size - 1], fill=colour)
        dr.text((2 * pad + size, y), _plain(text, font), fill=(255, 255, 255), font=font)
        y += size + pad
    return np.asarray(panel)


def render_side_by_side(comparison, *, max_side_px: int = _MAX_SIDE, grid: bool = True) -> np.ndarray:
    """Baseline and aligned, light-matched follow-up next to each other, with titles.

    A faint grid (1 cm when calibrated) on both helps the eye find the same place.
    """
    b = comparison.baseline_rgb
    a = comparison.aligned_rgb.copy()
    outside = ~comparison.registration.warp(np.ones(comparison.registration.followup_shape, bool), interpolation="nearest")
    a[outside] = (60, 60, 60)
    m, n = b.shape[:2]
    f = min(1.0, max_side_px / (2 * max(m, n)))
    b_s, a_s = _downscale(b, f).copy(), _downscale(a, f).copy()
    mm, nn = b_s.shape[:2]
    if grid:
        ppm = comparison.px_per_mm
        step = (10.0 * ppm * f) if ppm else nn / 8
        if step >= 12:
            for img in (b_s, a_s):
                for x in np.arange(step, nn, step):
                    img[:, int(x)] = (0.6 * img[:, int(x)] + 0.4 * 255).astype(np.uint8)
                for y in np.arange(step, mm, step):
                    img[int(y), :] = (0.6 * img[int(y), :] + 0.4 * 255).astype(np.uint8)
    gap = max(4, nn // 100)
    size = max(12, int(min(mm, nn) / 30))
    title_h = size + size // 2 + 4
    canvas = Image.new("RGB", (2 * nn + gap, mm + title_h), (20, 20, 20))
    canvas.paste(Image.fromarray(b_s), (0, title_h))
    canvas.paste(Image.fromarray(a_s), (nn + gap, title_h))
    d = ImageDraw.Draw(canvas)
    font = _font(size)
    bn, fn = comparison.names
    d.text((size // 3, 2), f"Baseline: {bn}", fill=(255, 255, 255), font=font)
    d.text((nn + gap + size // 3, 2), f"Follow-up: {fn} (aligned, light matched)", fill=(255, 255, 255), font=font)
    if comparison.px_per_mm and grid:
        d.text((2 * nn + gap - 6 * size, 2), "grid 1 cm", fill=(200, 200, 200), font=font)
    return np.asarray(canvas)

