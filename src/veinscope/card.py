"""The VeinScope calibration card as data, and a flat top-view rendering of it.

The card is credit-card size (ISO/IEC 7810 ID-1, 85.6 x 54 mm). It carries

* four ArUco markers (OpenCV ``DICT_4X4_50``, ids 0-3) near its corners, 14 mm square, so
  that 16 corners spread over the card give its homography (scale, tilt, region);
* a row of neutral patches (five greys) and a blank paper area (``paper``, the white
  reference) for exposure and white balance;
* a row of colour patches (ColorChecker-like skin, red, green, blue, yellow) to check the
  colour correction;
* a 40 mm ruler with millimetre ticks, to check the print scale by hand.

Coordinates are millimetres on the card, origin at the card's top-left corner, ``x`` to the
right, ``y`` down. In a rendering at ``px_per_mm`` the point ``(x_mm, y_mm)`` is at pixel
coordinates ``(x_mm * px_per_mm - 0.5, y_mm * px_per_mm - 0.5)`` in the convention where pixel
centres are integers (OpenCV's); :func:`mm_to_px_matrix` is that map as a 3x3 homography.

This module is pure data and numpy (plus OpenCV for the marker bit patterns): it is used by
the PDF writer, the detector in :mod:`veinscope.calibrate` and the synthetic photo generator.
Keep the public API stable: :data:`CARD`, :class:`CardLayout`, :func:`render_card`,
:func:`marker_corners_mm`, :func:`mm_to_px_matrix`; for synthetic photos
:func:`camera_homography` (a card seen by a pinhole camera) and :func:`composite_card`
(the card warped into a photo with exact area anti-aliasing).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "CARD",
    "CardLayout",
    "Marker",
    "Patch",
    "Ruler",
    "CardPhoto",
    "camera_homography",
    "card_photo",
    "composite_card",
    "marker_bits",
    "marker_corners_mm",
    "mm_to_px_matrix",
    "render_card",
    "srgb_to_linear",
]


def srgb_to_linear(v) -> np.ndarray:
    """sRGB values 0-255 -> linear reflectance 0-1 (IEC 61966-2-1)."""
    c = np.asarray(v, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


@dataclass(frozen=True)
class Marker:
    """One ArUco marker: its id and its outer black square (top-left corner and side, mm)."""

    id: int
    x_mm: float
    y_mm: float
    size_mm: float

    def corners_mm(self) -> np.ndarray:
        """(4, 2) float64 (x, y) mm of the outer corners in OpenCV's order: TL, TR, BR, BL."""
        x, y, s = self.x_mm, self.y_mm, self.size_mm
        return np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], dtype=np.float64)


@dataclass(frozen=True)
class Patch:
    """A uniform printed patch with its nominal sRGB colour (what the printer is asked for)."""

    name: str
    kind: str  # "neutral" or "colour"
    x_mm: float
    y_mm: float
    w_mm: float
    h_mm: float
    srgb: tuple[int, int, int]

    @property
    def reflectance(self) -> np.ndarray:
        """(3,) nominal linear RGB reflectance 0-1 of the patch."""
        return srgb_to_linear(self.srgb)

    def corners_mm(self) -> np.ndarray:
        """(4, 2) float64 (x, y) mm corners TL, TR, BR, BL."""
        x, y, w, h = self.x_mm, self.y_mm, self.w_mm, self.h_mm
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


@dataclass(frozen=True)
class Ruler:
    """A millimetre ruler: baseline from ``x0_mm`` to ``x0_mm + length_mm`` at ``y_mm``, ticks below."""

    x0_mm: float
    y_mm: float
    length_mm: int
    tick_mm: tuple[float, float, float]  # length of the 1 mm, 5 mm and 10 mm ticks
    line_mm: float  # stroke width

    def tick_x_mm(self) -> np.ndarray:
        """(length_mm + 1,) x positions (mm) of the tick centres."""
        return self.x0_mm + np.arange(self.length_mm + 1, dtype=np.float64)


@dataclass(frozen=True)
class CardLayout:
    """Everything printed on the card, in millimetres."""

    width_mm: float
    height_mm: float
    dictionary: str  # name of the cv2.aruco predefined dictionary
    markers: tuple[Marker, ...]
    patches: tuple[Patch, ...]
    ruler: Ruler
    background_srgb: tuple[int, int, int]
    outline_mm: float  # width of the grey cutting outline at the card's edge
    outline_srgb: tuple[int, int, int]
    version: str

    @property
    def marker_ids(self) -> tuple[int, ...]:
        return tuple(m.id for m in self.markers)

    def marker(self, marker_id: int) -> Marker:
        for m in self.markers:
            if m.id == marker_id:
                return m
        raise KeyError(f"no marker with id {marker_id!r} on the card")

    def outline_corners_mm(self) -> np.ndarray:
        """(4, 2) card corners (x, y) mm: TL, TR, BR, BL."""
        w, h = self.width_mm, self.height_mm
        return np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])

    def neutral_patches(self) -> tuple[Patch, ...]:
        return tuple(p for p in self.patches if p.kind == "neutral")

    def colour_patches(self) -> tuple[Patch, ...]:
        return tuple(p for p in self.patches if p.kind == "colour")

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "width_mm": self.width_mm,
            "height_mm": self.height_mm,
            "dictionary": self.dictionary,
            "markers": [{"id": m.id, "x_mm": m.x_mm, "y_mm": m.y_mm, "size_mm": m.size_mm} for m in self.markers],
            "patches": [
                {"name": p.name, "kind": p.kind, "x_mm": p.x_mm, "y_mm": p.y_mm, "w_mm": p.w_mm, "h_mm": p.h_mm, "srgb": list(p.srgb)}
                for p in self.patches
            ],
            "ruler": {"x0_mm": self.ruler.x0_mm, "y_mm": self.ruler.y_mm, "length_mm": self.ruler.length_mm},
        }


def _build_card() -> CardLayout:
    w, h = 85.6, 54.0
    size, margin = 14.0, 3.0
    markers = (
        Marker(0, margin, margin, size),
        Marker(1, w - margin - size, margin, size),
        Marker(2, w - margin - size, h - margin - size, size),
        Marker(3, margin, h - margin - size, size),
    )
    patches: list[Patch] = []
    # Neutral row between the two top markers. Paper white (the card itself) is the brightest
    # neutral; the greys step down to near black. Values are sRGB the printer is asked for.
    greys = (("grey_214", 214), ("grey_168", 168), ("grey_122", 122), ("grey_80", 80), ("grey_40", 40))
    x0, x1 = margin + size + 2.5, w - margin - size - 2.5
    gap = 1.0
    pw = (x1 - x0 - gap * (len(greys) - 1)) / len(greys)
    for i, (name, v) in enumerate(greys):
        patches.append(Patch(name, "neutral", round(x0 + i * (pw + gap), 4), 3.5, round(pw, 4), 12.0, (v, v, v)))
    # Colour row across the middle (sRGB of the ColorChecker Classic patches, BabelColor averages).
    colours = (
        ("dark_skin", (115, 82, 68)),
        ("light_skin", (194, 150, 130)),
        ("red", (175, 54, 60)),
        ("green", (70, 148, 73)),
        ("blue", (56, 61, 150)),
        ("yellow", (231, 199, 31)),
    )
    cx0, cx1, cgap = margin, w - margin, 1.2
    cw = (cx1 - cx0 - cgap * (len(colours) - 1)) / len(colours)
    for i, (name, rgb) in enumerate(colours):
        patches.append(Patch(name, "colour", round(cx0 + i * (cw + cgap), 4), 19.5, round(cw, 4), 10.0, rgb))
    # Blank paper between the colour row and the ruler: the white reference (the card itself).
    patches.append(Patch("paper", "neutral", round(margin + size + 2.5, 4), 31.0, round(w - 2 * (margin + size + 2.5), 4), 6.0, (255, 255, 255)))
    ruler = Ruler(x0_mm=round((w - 40.0) / 2.0, 4), y_mm=39.0, length_mm=40, tick_mm=(2.0, 3.5, 5.0), line_mm=0.2)
    return CardLayout(
        width_mm=w,
        height_mm=h,
        dictionary="DICT_4X4_50",
        markers=markers,
        patches=tuple(patches),
        ruler=ruler,
        background_srgb=(255, 255, 255),
        outline_mm=0.3,
        outline_srgb=(150, 150, 150),
        version="1",
    )


#: The one card VeinScope prints and detects.
CARD = _build_card()


@lru_cache(maxsize=64)
def _marker_bits_cached(dictionary: str, marker_id: int) -> bytes:
    import cv2

    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary))
    n = d.markerSize + 2
    img = cv2.aruco.generateImageMarker(d, int(marker_id), n, borderBits=1)
    return (np.asarray(img) > 127).astype(np.uint8).tobytes()


def marker_bits(marker_id: int, *, layout: CardLayout = CARD) -> np.ndarray:
    """(n, n) uint8 cells of a marker including its black border: 1 white, 0 black."""
    raw = np.frombuffer(_marker_bits_cached(layout.dictionary, int(marker_id)), np.uint8)
    n = int(round(np.sqrt(raw.size)))
    return raw.reshape(n, n).copy()


def marker_corners_mm(*, layout: CardLayout = CARD) -> dict[int, np.ndarray]:
    """Outer corners of every marker: ``{id: (4, 2) (x, y) mm, TL, TR, BR, BL}``."""
    return {m.id: m.corners_mm() for m in layout.markers}


def mm_to_px_matrix(px_per_mm: float) -> np.ndarray:
    """3x3 homography from card millimetres to pixel coordinates of :func:`render_card`.

    Pixel centres are integers (OpenCV's convention): ``x_px = x_mm * px_per_mm - 0.5``.
    """
    s = float(px_per_mm)
    return np.array([[s, 0.0, -0.5], [0.0, s, -0.5], [0.0, 0.0, 1.0]])


def _coverage(lo_mm: float, hi_mm: float, n: int, ppm: float) -> tuple[int, np.ndarray]:
    """Fraction of each pixel (0..n-1) along one axis covered by [lo, hi] mm; (first index, fractions)."""
    a = max(0, int(np.floor(lo_mm * ppm)))
    b = min(n, int(np.ceil(hi_mm * ppm)))
    if b <= a:
        return a, np.zeros(0)
    edges = np.arange(a, b + 1, dtype=np.float64) / ppm
    cov = (np.minimum(edges[1:], hi_mm) - np.maximum(edges[:-1], lo_mm)) * ppm
    return a, np.clip(cov, 0.0, 1.0)


def _paint_grid(canvas: np.ndarray, x_mm: float, y_mm: float, w_mm: float, h_mm: float, cells: np.ndarray, ppm: float) -> None:
    """Paint a grid of uniform cells (r, c, 3) over [x, x+w] x [y, y+h] mm with exact area coverage."""
    rows, cols = cells.shape[:2]
    m, n = canvas.shape[:2]
    cw, ch = w_mm / cols, h_mm / rows
    ys = [_coverage(y_mm + r * ch, y_mm + (r + 1) * ch, m, ppm) for r in range(rows)]
    xs = [_coverage(x_mm + c * cw, x_mm + (c + 1) * cw, n, ppm) for c in range(cols)]
    r0 = min(a for a, _ in ys)
    r1 = max(a + len(f) for a, f in ys)
    c0 = min(a for a, _ in xs)
    c1 = max(a + len(f) for a, f in xs)
    if r1 <= r0 or c1 <= c0:
        return
    cy = np.zeros((r1 - r0, rows))
    cx = np.zeros((c1 - c0, cols))
    for r, (a, f) in enumerate(ys):
        cy[a - r0 : a - r0 + len(f), r] = f
    for c, (a, f) in enumerate(xs):
        cx[a - c0 : a - c0 + len(f), c] = f
    cover = np.outer(cy.sum(axis=1), cx.sum(axis=1)).astype(np.float32)[..., None]
    cells = cells.astype(np.float64)
    if rows == cols == 1:
        paint = cover * cells[0, 0].astype(np.float32)
    else:
        paint = np.stack([cy @ cells[..., k] @ cx.T for k in range(cells.shape[2])], axis=-1).astype(np.float32)
    region = canvas[r0:r1, c0:c1]
    region *= 1.0 - cover
    region += paint


def _paint_rect(canvas, x_mm, y_mm, w_mm, h_mm, srgb, ppm) -> None:
    _paint_grid(canvas, x_mm, y_mm, w_mm, h_mm, np.asarray(srgb, np.float64).reshape(1, 1, 3), ppm)


def render_card(px_per_mm: float, *, layout: CardLayout = CARD) -> np.ndarray:
    """Render the card flat, seen from the top, at ``px_per_mm``.

    Every printed element is an axis-aligned rectangle painted with its exact pixel-area
    coverage (a box-filtered, alias-free rendering), so sub-pixel corner positions are
    unbiased. Text (title, instructions, ruler numbers) is printed on the PDF only.

    Parameters
    ----------
    px_per_mm : float
        Resolution of the rendering, pixels per millimetre (> 0).

    Returns
    -------
    ndarray (round(54 * px_per_mm), round(85.6 * px_per_mm), 3) uint8
        sRGB image of the card. The marker corners are at
        ``mm_to_px_matrix(px_per_mm)`` applied to :func:`marker_corners_mm`.

    Examples
    --------
    >>> render_card(4.0).shape
    (216, 342, 3)
    """
    ppm = float(px_per_mm)
    if not np.isfinite(ppm) or ppm <= 0 or ppm > 200:
        raise ValueError(f"px_per_mm must be a positive number up to 200, got {px_per_mm!r}")
    m = int(round(layout.height_mm * ppm))
    n = int(round(layout.width_mm * ppm))
    canvas = np.empty((m, n, 3), np.float32)
    canvas[...] = layout.background_srgb
    o = layout.outline_mm
    if o > 0:
        w, h = layout.width_mm, layout.height_mm
        for rect in ((0, 0, w, o), (0, h - o, w, o), (0, 0, o, h), (w - o, 0, o, h)):
            _paint_rect(canvas, *rect, layout.outline_srgb, ppm)
    for mk in layout.markers:
        bits = marker_bits(mk.id, layout=layout).astype(np.float64) * 255.0
        _paint_grid(canvas, mk.x_mm, mk.y_mm, mk.size_mm, mk.size_mm, np.repeat(bits[..., None], 3, axis=2), ppm)
    for p in layout.patches:
        _paint_rect(canvas, p.x_mm, p.y_mm, p.w_mm, p.h_mm, p.srgb, ppm)
    ru = layout.ruler
    black = (0, 0, 0)
    _paint_rect(canvas, ru.x0_mm - ru.line_mm / 2, ru.y_mm - ru.line_mm / 2, ru.length_mm + ru.line_mm, ru.line_mm, black, ppm)
    for i, x in enumerate(ru.tick_x_mm()):
        length = ru.tick_mm[2] if i % 10 == 0 else ru.tick_mm[1] if i % 5 == 0 else ru.tick_mm[0]
        _paint_rect(canvas, x - ru.line_mm / 2, ru.y_mm, ru.line_mm, length, black, ppm)
    canvas += 0.5
    np.clip(canvas, 0, 255, out=canvas)
    return canvas.astype(np.uint8)


def camera_homography(
    *,
    px_per_mm: float,
    centre_xy: tuple[float, float],
    tilt_deg: float = 0.0,
    tilt_axis_deg: float = 0.0,
    rotation_deg: float = 0.0,
    distance_mm: float = 300.0,
    layout: CardLayout = CARD,
) -> np.ndarray:
    """Homography card mm -> photo px of the card seen by a pinhole camera.

    The card is rotated in its plane by ``rotation_deg``, tilted by ``tilt_deg`` about an
    in-plane axis at ``tilt_axis_deg``, and seen from ``distance_mm``; the focal length is
    chosen so that ``sqrt(|det J|)`` at the card centre equals ``px_per_mm`` exactly, and the
    card centre lands on ``centre_xy`` (pixel-centre coordinates).
    """
    th, ax, rot = np.radians([tilt_deg, tilt_axis_deg, rotation_deg])
    rz = np.array([[np.cos(rot), -np.sin(rot), 0], [np.sin(rot), np.cos(rot), 0], [0, 0, 1]])
    u = np.array([np.cos(ax), np.sin(ax), 0.0])  # tilt axis in the card plane
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    rt = np.eye(3) + np.sin(th) * k + (1 - np.cos(th)) * (k @ k)  # Rodrigues
    r = rt @ rz
    c = np.array([layout.width_mm / 2, layout.height_mm / 2])
    # X_cam = r @ (X - c, 0) + (0, 0, D); x = f X/Z + cx
    t = np.array([0.0, 0.0, float(distance_mm)]) - r[:, :2] @ c
    m = np.c_[r[:, 0], r[:, 1], t]  # [X, Y, 1] -> camera coordinates
    h = np.diag([1.0, 1.0, 1.0]) @ m
    h = h / h[2, 2]
    # scale so that sqrt(det J) at the centre is px_per_mm, then move the centre to centre_xy
    jac = _jac(h, c)
    f = float(px_per_mm) / np.sqrt(abs(np.linalg.det(jac)))
    h = np.diag([f, f, 1.0]) @ h
    p = h @ np.array([c[0], c[1], 1.0])
    p = p[:2] / p[2]
    shift = np.array([[1.0, 0, centre_xy[0] - p[0]], [0, 1.0, centre_xy[1] - p[1]], [0, 0, 1.0]])
    h = shift @ h
    return h / h[2, 2]


def _jac(h: np.ndarray, xy) -> np.ndarray:
    x, y = float(xy[0]), float(xy[1])
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = h[0, 0] * x + h[0, 1] * y + h[0, 2]
    v = h[1, 0] * x + h[1, 1] * y + h[1, 2]
    return np.array(
        [
            [(h[0, 0] * w - u * h[2, 0]) / w**2, (h[0, 1] * w - u * h[2, 1]) / w**2],
            [(h[1, 0] * w - v * h[2, 0]) / w**2, (h[1, 1] * w - v * h[2, 1]) / w**2],
        ]
    )


def composite_card(
    rgb,
    homography_mm_to_px,
    *,
    supersample: int = 2,
    layout: CardLayout = CARD,
    light_rgb=(1.0, 1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Lay the card into a photo seen through ``homography_mm_to_px`` (card mm -> photo px).

    The card is rendered at ``supersample`` times the photo's scale, warped, and
    area-averaged back down, and blended in linear light, so its edges are anti-aliased and
    its corners unbiased.

    Parameters
    ----------
    rgb : ndarray (M, N, 3) uint8
        The photo (not modified).
    homography_mm_to_px : ndarray (3, 3)
        Card millimetres -> photo pixel coordinates (pixel centres integer).
    light_rgb : 3 floats
        Linear gain of the light on the card (relative to the photo's white).

    Returns
    -------
    rgb_out : ndarray (M, N, 3) uint8
    coverage : ndarray (M, N) float32
        Fraction of each pixel covered by the card (0-1).
    """
    import cv2

    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"rgb must be a (M, N, 3) uint8 array, got shape {a.shape} dtype {a.dtype}")
    h = np.asarray(homography_mm_to_px, dtype=np.float64)
    m, n = a.shape[:2]
    s = int(supersample)
    corners = layout.outline_corners_mm()
    q = np.c_[corners, np.ones(4)] @ h.T
    q = q[:, :2] / q[:, 2:3]
    x0 = int(max(0, np.floor(q[:, 0].min()) - 2))
    x1 = int(min(n, np.ceil(q[:, 0].max()) + 3))
    y0 = int(max(0, np.floor(q[:, 1].min()) - 2))
    y1 = int(min(m, np.ceil(q[:, 1].max()) + 3))
    out = a.copy()
    cov_full = np.zeros((m, n), np.float32)
    if x1 <= x0 or y1 <= y0:
        return out, cov_full
    ppm_card = min(200.0, float(np.sqrt(abs(np.linalg.det(_jac(h, corners.mean(axis=0)))))) * s)
    card = render_card(ppm_card, layout=layout)
    lut = (srgb_to_linear(np.arange(256))[:, None] * np.asarray(light_rgb, np.float64)[None, :]).astype(np.float32)
    lin = np.empty(card.shape[:2] + (4,), np.float32)
    for c in range(3):
        lin[..., c] = lut[card[..., c], c]
    lin[..., 3] = 1.0  # alpha, warped in the same pass
    # render px -> card mm -> photo px -> supersampled window px
    r_to_mm = np.linalg.inv(mm_to_px_matrix(ppm_card))
    win = np.array([[s, 0, (s - 1) / 2 - s * x0], [0, s, (s - 1) / 2 - s * y0], [0, 0, 1.0]])
    full = win @ h @ r_to_mm
    size = ((x1 - x0) * s, (y1 - y0) * s)
    warped = cv2.warpPerspective(lin, full, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if s > 1:
        warped = cv2.resize(warped, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    alpha = warped[..., 3]
    warped = warped[..., :3]
    lut1 = srgb_to_linear(np.arange(256)).astype(np.float32)
    bg = lut1[a[y0:y1, x0:x1]]
    blend = warped + (1.0 - alpha[..., None]) * bg
    enc = np.where(blend <= 0.0031308, 12.92 * blend, 1.055 * np.power(np.clip(blend, 0.0031308, None), 1 / 2.4) - 0.055)
    out[y0:y1, x0:x1] = np.clip(enc * 255.0 + 0.5, 0, 255).astype(np.uint8)
    cov_full[y0:y1, x0:x1] = alpha
    return out, cov_full


@dataclass(frozen=True, eq=False)
class CardPhoto:
    """A generated leg photo with the card laid on it, and the truth.

    ``rgb`` (M, N, 3) uint8; ``homography`` card mm -> px; ``px_per_mm`` and ``tilt_deg`` the
    truth at the card centre (``sqrt(|det J|)``, ``arccos(s_min/s_max)``); ``card_coverage``
    (M, N) float; ``skin_mask`` of the generator (card not removed); ``params``.
    """

    rgb: np.ndarray
    homography: np.ndarray
    px_per_mm: float
    tilt_deg: float
    card_coverage: np.ndarray
    skin_mask: np.ndarray
    params: dict


def card_photo(
    *,
    seed: int,
    px_per_mm: float = 10.0,
    size: tuple[int, int] | None = None,
    tilt_deg: float = 0.0,
    tilt_axis_deg: float | None = None,
    rotation_deg: float | None = None,
    blur_px: float = 0.0,
    noise: float = 0.0,
    jpeg_quality: int | None = 90,
    light_rgb=(1.0, 1.0, 1.0),
    card_light: float = 0.85,
    skin_type: int | None = None,
    with_card: bool = True,
) -> CardPhoto:
    """A synthetic leg photo (:func:`veinscope.synth.generate_photo`) with the card on the skin.

    The skin is generated flat at ``px_per_mm``; the card is placed by
    :func:`camera_homography` (in-plane rotation and tilt axis drawn from ``seed`` when None)
    with its centre in the middle third of the photo, lit at ``card_light`` of the photo's
    white (paper reflects about 85 %, so it is not clipped). Then the whole photo gets the light
    (``light_rgb``, linear gains), a Gaussian blur ``blur_px`` (sigma), Gaussian noise
    ``noise`` (sd, 0-255 units) and a JPEG round trip.
    """
    import cv2

    from veinscope.synth import generate_photo

    rng = np.random.default_rng(seed)
    ppm = float(px_per_mm)
    if size is None:
        side = int(np.ceil(CARD.width_mm * ppm * 1.9))
        size = (side, int(side * 0.8))
    import inspect

    kw = {"card": False} if "card" in inspect.signature(generate_photo).parameters else {}
    sp = generate_photo(seed=int(seed), size=size, px_per_mm=ppm, jpeg_quality=None, skin_type=skin_type, **kw)
    rgb = np.array(sp.rgb)
    m, n = rgb.shape[:2]
    ax = float(rng.uniform(0, 180)) if tilt_axis_deg is None else float(tilt_axis_deg)
    rot = float(rng.uniform(0, 360)) if rotation_deg is None else float(rotation_deg)
    centre = (n * float(rng.uniform(0.4, 0.6)), m * float(rng.uniform(0.4, 0.6)))
    h = camera_homography(px_per_mm=ppm, centre_xy=centre, tilt_deg=tilt_deg, tilt_axis_deg=ax, rotation_deg=rot)
    cov = np.zeros((m, n), np.float32)
    if with_card:
        rgb, cov = composite_card(rgb, h, light_rgb=(card_light,) * 3)
    lin = srgb_to_linear(rgb) * np.asarray(light_rgb, np.float64)
    if blur_px > 0:
        lin = cv2.GaussianBlur(lin, (0, 0), float(blur_px))
    enc = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.power(np.clip(lin, 0.0031308, None), 1 / 2.4) - 0.055) * 255.0
    if noise > 0:
        enc = enc + rng.normal(0.0, float(noise), enc.shape)
    out = np.clip(enc + 0.5, 0, 255).astype(np.uint8)
    if jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    j = _jac(h, (CARD.width_mm / 2, CARD.height_mm / 2))
    sv = np.linalg.svd(j, compute_uv=False)
    params = {
        "seed": seed, "px_per_mm": ppm, "size": list(size), "tilt_deg": tilt_deg, "tilt_axis_deg": ax,
        "rotation_deg": rot, "centre_xy": list(centre), "blur_px": blur_px, "noise": noise,
        "jpeg_quality": jpeg_quality, "light_rgb": list(light_rgb), "card_light": card_light, "skin_type": sp.params.get("skin_type"),
    }
    return CardPhoto(
        rgb=out,
        homography=h,
        px_per_mm=float(np.sqrt(sv[0] * sv[1])),
        tilt_deg=float(np.degrees(np.arccos(min(1.0, sv[1] / sv[0])))),
        card_coverage=cov,
        skin_mask=np.asarray(sp.skin_mask),
        params=params,
    )
