"""Scale calibration: the printable card, its detection in a photo, and scales entered by hand.

Data flow: RGB photo -> :func:`detect_card` -> :class:`Calibration` (px/mm at the card, which
lies on the skin; tilt; the card's region) -> :mod:`veinscope.colour` (patches) and
:mod:`veinscope.quality`. Without a card: :func:`manual_calibration` (``--px-per-mm``) or
:func:`scale_from_points` (two points on a ruler in the photo, for the app).

Detection: OpenCV's ArUco detector finds the card's markers (Garrido-Jurado et al. 2014,
doi:10.1016/j.patcog.2014.01.005); each marker's four outer sides are then located to a
fraction of a pixel from their 50 % edge crossings and fitted as straight lines (a
homography keeps lines straight), the sides are intersected into corners, and the card's
homography (mm -> px) is fitted to all corners by least squares.

``px_per_mm`` is the geometric mean of the two principal scales of the homography's
Jacobian at the card centre (``sqrt(|det J|)``), i.e. the scale for areas at the card; the
ratio of the two (``anisotropy``) gives the card's tilt relative to the image plane
(``tilt_deg = arccos(s_min / s_max)``, weak perspective).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veinscope._version import __version__
from veinscope.card import CARD, CardLayout, marker_bits
from veinscope.errors import CalibrationError

__all__ = [
    "Calibration",
    "CARD_TILT_WARN_DEG",
    "detect_card",
    "manual_calibration",
    "scale_from_points",
    "write_card_pdf",
]

log = logging.getLogger(__name__)

#: Tilt of the card relative to the image plane above which lengths err by more than ~6 %.
CARD_TILT_WARN_DEG = 20.0
#: Margin (mm) around the card's outline excluded from the skin (shadow, card edge).
CARD_MARGIN_MM = 2.0
#: Long side (px) of the copy the markers are first searched in.
_DETECT_PX = 2400


@dataclass(frozen=True)
class Calibration:
    """The scale of a photo, where it came from, and the card (when one was found).

    Attributes
    ----------
    px_per_mm : float
        Pixels per millimetre at the skin (at the card's centre for ``source == "card"``).
    source : str
        ``"card"``, ``"manual"`` (entered by hand) or ``"ruler"`` (two points on a ruler).
    homography : ndarray (3, 3) or None
        Card millimetres -> photo pixel coordinates (pixel centres integer), card only.
    marker_ids : tuple of int
        Markers used (card only).
    tilt_deg : float or None
        Tilt of the card relative to the image plane, degrees (card only).
    anisotropy : float or None
        Ratio of the largest to the smallest scale at the card (1 = seen square-on).
    residual_px : float or None
        RMS distance between the fitted and the detected marker corners, pixels.
    edge_blur_px : float or None
        Gaussian sigma (px) of the card's marker edges: the photo's blur at the card.
    image_shape : tuple of int or None
        (M, N) of the photo the card was found in.
    warnings : tuple of str
    """

    px_per_mm: float
    source: str
    homography: np.ndarray | None = None
    marker_ids: tuple[int, ...] = ()
    tilt_deg: float | None = None
    anisotropy: float | None = None
    residual_px: float | None = None
    edge_blur_px: float | None = None
    image_shape: tuple[int, int] | None = None
    warnings: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def project_mm(self, xy_mm) -> np.ndarray:
        """Card millimetres (K, 2) -> photo pixel (x, y) (K, 2). Card calibrations only."""
        if self.homography is None:
            raise CalibrationError("This scale was not measured on a card, so card positions are unknown.")
        p = np.asarray(xy_mm, dtype=np.float64).reshape(-1, 2)
        q = np.c_[p, np.ones(len(p))] @ self.homography.T
        return q[:, :2] / q[:, 2:3]

    def card_corners_px(self, *, margin_mm: float = 0.0, layout: CardLayout = CARD) -> np.ndarray | None:
        """(4, 2) photo (x, y) of the card's corners (grown by ``margin_mm``), or None."""
        if self.homography is None:
            return None
        c = layout.outline_corners_mm() + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * margin_mm
        return self.project_mm(c)

    def card_mask(self, shape: tuple[int, int] | None = None, *, margin_mm: float = CARD_MARGIN_MM) -> np.ndarray:
        """(M, N) bool: the card and a margin around it (empty without a card)."""
        import cv2

        shape = tuple(shape or self.image_shape or ())
        if len(shape) < 2:
            raise ValueError("shape is needed for a calibration not measured on a photo")
        mask = np.zeros(shape[:2], np.uint8)
        corners = self.card_corners_px(margin_mm=margin_mm)
        if corners is not None and np.all(np.isfinite(corners)):
            pts = np.round(corners * 16).astype(np.int32)  # 4 fractional bits
            cv2.fillConvexPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=4)
        return mask.astype(bool)

    def to_dict(self) -> dict[str, Any]:
        r = (lambda v, n: None if v is None else round(float(v), n))
        return {
            "px_per_mm": round(float(self.px_per_mm), 5),
            "scale_source": self.source,
            "marker_ids": list(self.marker_ids),
            "tilt_deg": r(self.tilt_deg, 2),
            "anisotropy": r(self.anisotropy, 4),
            "residual_px": r(self.residual_px, 4),
            "edge_blur_px": r(self.edge_blur_px, 3),
            "homography": None if self.homography is None else np.round(self.homography, 8).tolist(),
            "warnings": list(self.warnings),
            "version": self.version,
        }


# --------------------------------------------------------------------------- by hand


def manual_calibration(px_per_mm: float) -> Calibration:
    """A scale entered by hand (pixels per millimetre at the skin)."""
    if isinstance(px_per_mm, bool) or not isinstance(px_per_mm, (int, float, np.floating, np.integer)):
        raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
    v = float(px_per_mm)
    if not (math.isfinite(v) and 0 < v < 1e4):
        raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
    return Calibration(px_per_mm=v, source="manual", params={"px_per_mm": v})


def scale_from_points(p1_xy, p2_xy, distance_mm: float) -> Calibration:
    """The scale from two points on a ruler in the photo.

    Parameters
    ----------
    p1_xy, p2_xy : (x, y) pixel coordinates
        Two marks on a ruler lying on the skin (e.g. the 0 and 50 mm marks).
    distance_mm : float
        The distance between the marks on the ruler, millimetres.

    Returns
    -------
    Calibration
        ``source == "ruler"``. A warning is added when the points are so close that a
        one-pixel click error exceeds 1 % of the scale.

    Examples
    --------
    >>> round(scale_from_points((10, 20), (310, 20), 30.0).px_per_mm, 3)
    10.0
    """
    p1 = np.asarray(p1_xy, dtype=np.float64).reshape(-1)
    p2 = np.asarray(p2_xy, dtype=np.float64).reshape(-1)
    if p1.shape != (2,) or p2.shape != (2,) or not (np.all(np.isfinite(p1)) and np.all(np.isfinite(p2))):
        raise ValueError(f"p1_xy and p2_xy must be two (x, y) pixel positions, got {p1_xy!r} and {p2_xy!r}")
    if isinstance(distance_mm, bool) or not (isinstance(distance_mm, (int, float, np.number)) and math.isfinite(distance_mm) and distance_mm > 0):
        raise ValueError(f"distance_mm must be a positive number of millimetres, got {distance_mm!r}")
    d_px = float(np.hypot(*(p2 - p1)))
    if d_px < 2.0:
        raise CalibrationError("The two ruler points are the same point. Click two marks far apart on the ruler (e.g. 0 and 50 mm).")
    warns = []
    if d_px < 100.0:
        warns.append(
            f"The two ruler points are only {d_px:.0f} pixels apart, so a click one pixel off changes the scale by "
            f"{100 / d_px:.1f} %. Click two marks further apart on the ruler."
        )
    ppm = d_px / float(distance_mm)
    return Calibration(
        px_per_mm=ppm,
        source="ruler",
        warnings=tuple(warns),
        params={"p1_xy": p1.tolist(), "p2_xy": p2.tolist(), "distance_mm": float(distance_mm)},
    )


# --------------------------------------------------------------------------- detection


def _detector(layout: CardLayout):
    import cv2

    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, layout.dictionary))
    p = cv2.aruco.DetectorParameters()
    p.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_NONE
    p.minMarkerPerimeterRate = 0.01
    p.adaptiveThreshWinSizeMax = 53
    p.adaptiveThreshWinSizeStep = 8
    return cv2.aruco.ArucoDetector(d, p)


def _grey(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _find_markers(grey: np.ndarray, layout: CardLayout) -> dict[int, np.ndarray]:
    """Coarse marker corners {id: (4, 2) px (x, y), TL TR BR BL} of the card's ids."""
    import cv2

    m, n = grey.shape
    f0 = min(1.0, _DETECT_PX / max(m, n))
    wanted = set(layout.marker_ids)
    found: dict[int, list[np.ndarray]] = {}
    # blurred photos: markers missed at full resolution are often found at half or a quarter
    for f in (f0, f0 / 2, f0 / 4):
        if len(found) == len(wanted) or min(m, n) * f < 120:
            break
        small = cv2.resize(grey, (round(n * f), round(m * f)), interpolation=cv2.INTER_AREA) if f < 1 else grey
        corners, ids, _ = _detector(layout).detectMarkers(small)
        if ids is None:
            continue
        fx, fy = small.shape[1] / n, small.shape[0] / m
        new: dict[int, list[np.ndarray]] = {}
        for c, i in zip(corners, ids.ravel()):
            if int(i) in wanted and int(i) not in found:
                # back to full-resolution pixel-centre coordinates
                c = c.reshape(4, 2).astype(np.float64)
                new.setdefault(int(i), []).append(np.c_[(c[:, 0] + 0.5) / fx - 0.5, (c[:, 1] + 0.5) / fy - 0.5])
        found.update(new)
    return _one_card(found, layout)


def _one_card(found: dict[int, list[np.ndarray]], layout: CardLayout) -> dict[int, np.ndarray]:
    """Markers of a single card when several cards (or false matches) are in view.

    Every marker instance seeds a group; other ids join when their distance to the seed is
    within 25 % of the card's layout distance at the seed's scale. The largest group (then
    the largest markers) wins.
    """
    inst = [(i, c) for i, cs in found.items() for c in cs]
    if all(len(cs) == 1 for cs in found.values()):
        return {i: cs[0] for i, cs in found.items()}
    best: dict[int, np.ndarray] = {}
    best_key = (-1, -1.0)
    for i0, c0 in inst:
        side = math.sqrt(abs(_polygon_area(c0)))
        scale = side / layout.marker(i0).size_mm
        centre0 = c0.mean(axis=0)
        group = {i0: c0}
        for i, c in inst:
            if i == i0:
                continue
            expect = np.hypot(*(layout.marker(i).corners_mm().mean(axis=0) - layout.marker(i0).corners_mm().mean(axis=0))) * scale
            d = float(np.hypot(*(c.mean(axis=0) - centre0)))
            if abs(d - expect) <= 0.25 * expect:
                if i not in group or abs(_polygon_area(c)) > abs(_polygon_area(group[i])):
                    group[i] = c
        key = (len(group), sum(abs(_polygon_area(c)) for c in group.values()))
        if key > best_key:
            best, best_key = group, key
    return best


def _polygon_area(c: np.ndarray) -> float:
    x, y = c[:, 0], c[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _homography(src_mm: np.ndarray, dst_px: np.ndarray) -> np.ndarray:
    import cv2

    H, _ = cv2.findHomography(src_mm.astype(np.float64), dst_px.astype(np.float64), 0)
    if H is None:
        raise CalibrationError("The card's markers do not fit together (the card may be bent or partly hidden).")
    return H / H[2, 2]


def _apply(H: np.ndarray, xy: np.ndarray) -> np.ndarray:
    q = np.c_[xy, np.ones(len(xy))] @ H.T
    return q[:, :2] / q[:, 2:3]


def _refine_marker(grey_f: np.ndarray, H: np.ndarray, marker, layout: CardLayout) -> tuple[np.ndarray, list[float]] | None:
    """Sub-pixel outer corners of one marker from its four fitted sides; and edge blur samples."""
    import cv2

    cell = marker.size_mm / (marker_bits(marker.id, layout=layout).shape[0])
    c_mm = marker.corners_mm()
    # local scale (px per mm) for the sampling density
    ppm_local = math.sqrt(abs(np.linalg.det(_jacobian(H, c_mm.mean(axis=0)))))
    n_samples = int(np.clip(marker.size_mm * ppm_local / 1.5, 12, 120))
    reach_mm = 0.6 * cell
    step_mm = min(0.25 / max(ppm_local, 1e-6), reach_mm / 8)
    offsets = np.arange(-reach_mm, reach_mm + 1e-9, step_mm)
    lines = []
    blurs: list[float] = []
    for k in range(4):
        a, b = c_mm[k], c_mm[(k + 1) % 4]
        t = np.linspace(0.12, 0.88, n_samples)
        pts = a + (b - a) * t[:, None]
        d = (b - a) / np.linalg.norm(b - a)
        normal = np.array([d[1], -d[0]])  # points outward for a clockwise (y-down) square
        prof_mm = pts[:, None, :] + offsets[None, :, None] * normal[None, None, :]
        prof_px = _apply(H, prof_mm.reshape(-1, 2)).reshape(len(t), len(offsets), 2).astype(np.float32)
        vals = cv2.remap(grey_f, prof_px[..., 0], prof_px[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        q = max(2, len(offsets) // 5)
        lo = np.median(vals[:, :q], axis=1)
        hi = np.median(vals[:, -q:], axis=1)
        half = 0.5 * (lo + hi)
        above = vals > half[:, None]
        cross = ~above[:, :-1] & above[:, 1:]
        mid = (len(offsets) - 1) / 2.0
        dist = np.where(cross, np.abs(np.arange(len(offsets) - 1) + 0.5 - mid)[None, :], np.inf)
        i = np.argmin(dist, axis=1)
        rows = np.arange(len(t))
        good = np.isfinite(dist[rows, i]) & (hi - lo >= 0.03)
        v0, v1 = vals[rows, i], vals[rows, i + 1]
        frac = np.clip((half - v0) / np.where(v1 != v0, v1 - v0, 1.0), 0.0, 1.0)
        u_mm = offsets[i] + frac * step_mm
        edge_pts = (pts + u_mm[:, None] * normal[None, :])[good]
        # blur: second moment of the edge's derivative (the line spread function), in px
        dv = np.diff(vals, axis=1) / np.maximum(hi - lo, 1e-6)[:, None]
        dv = np.where(dv > 0.05 * dv.max(axis=1, keepdims=True), dv, 0.0)
        w = dv.sum(axis=1)
        centres = (offsets[:-1] + offsets[1:]) / 2
        ok = good & (w > 0.5)
        if ok.any():
            mu = (dv[ok] * centres).sum(axis=1) / w[ok]
            var = (dv[ok] * (centres[None, :] - mu[:, None]) ** 2).sum(axis=1) / w[ok]
            blurs.extend((np.sqrt(np.maximum(var, 0.0)) * ppm_local).tolist())
        if len(edge_pts) < 6:
            return None
        e_px = _apply(H, np.asarray(edge_pts))
        line = _fit_line(e_px)
        if line is None:
            return None
        lines.append(line)
    corners = []
    for k in range(4):
        p = _intersect(lines[(k - 1) % 4], lines[k])  # corner k joins side k-1 and side k
        if p is None:
            return None
        corners.append(p)
    return np.asarray(corners), blurs


def _fit_line(pts: np.ndarray) -> np.ndarray | None:
    """Total-least-squares line (a, b, c), a x + b y + c = 0, with outliers (> 3 robust sd) removed."""
    keep = np.ones(len(pts), bool)
    line = None
    for _ in range(3):
        p = pts[keep]
        if len(p) < 4:
            return None
        c0 = p.mean(axis=0)
        _, _, vt = np.linalg.svd(p - c0, full_matrices=False)
        nrm = vt[-1]
        line = np.array([nrm[0], nrm[1], -float(nrm @ c0)])
        r = pts @ line[:2] + line[2]
        mad = 1.4826 * np.median(np.abs(r[keep])) + 0.02
        new = np.abs(r) <= 3.0 * mad
        if np.array_equal(new, keep):
            break
        keep = new
    return line


def _intersect(l1: np.ndarray, l2: np.ndarray) -> np.ndarray | None:
    p = np.cross(l1, l2)
    if abs(p[2]) < 1e-12:
        return None
    return p[:2] / p[2]


def _jacobian(H: np.ndarray, xy: np.ndarray) -> np.ndarray:
    x, y = float(xy[0]), float(xy[1])
    w = H[2, 0] * x + H[2, 1] * y + H[2, 2]
    u = H[0, 0] * x + H[0, 1] * y + H[0, 2]
    v = H[1, 0] * x + H[1, 1] * y + H[1, 2]
    return np.array(
        [
            [(H[0, 0] * w - u * H[2, 0]) / w**2, (H[0, 1] * w - u * H[2, 1]) / w**2],
            [(H[1, 0] * w - v * H[2, 0]) / w**2, (H[1, 1] * w - v * H[2, 1]) / w**2],
        ]
    )


def scale_at(H: np.ndarray, xy_mm) -> tuple[float, float, float]:
    """(px_per_mm, anisotropy, tilt_deg) of a homography mm -> px at a card point."""
    s = np.linalg.svd(_jacobian(H, np.asarray(xy_mm, dtype=np.float64)), compute_uv=False)
    ppm = math.sqrt(float(s[0] * s[1]))
    aniso = float(s[0] / s[1]) if s[1] > 0 else float("inf")
    tilt = math.degrees(math.acos(min(1.0, 1.0 / aniso))) if math.isfinite(aniso) else 90.0
    return ppm, aniso, tilt


def detect_card(rgb, *, layout: CardLayout = CARD, refine: bool = True) -> Calibration:
    """Find the calibration card in a photo and measure the scale at it.

    Parameters
    ----------
    rgb : ndarray (M, N, 3) uint8
        The upright photo (see :func:`veinscope.load_photo`). Not modified.
    layout : CardLayout
        The card printed (default :data:`veinscope.card.CARD`).
    refine : bool
        Locate the marker sides to a fraction of a pixel (default). False keeps OpenCV's
        corners (faster, about 3x less precise).

    Returns
    -------
    Calibration
        ``source == "card"``.

    Raises
    ------
    CalibrationError
        When no marker of the card is visible, or the markers do not fit together.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"rgb must be a (M, N, 3) uint8 array, got shape {a.shape} dtype {a.dtype}")
    grey = _grey(a)
    found = _find_markers(grey, layout)
    if not found:
        raise CalibrationError(
            "No calibration card was found in the photo. Put the whole card flat on the skin, in focus and "
            "without glare on it, or enter the scale by hand."
        )
    ids = sorted(found)
    src = np.concatenate([layout.marker(i).corners_mm() for i in ids])
    dst = np.concatenate([found[i] for i in ids])
    H = _homography(src, dst)
    warns: list[str] = []
    blurs: list[float] = []
    if refine:
        # edges are blurred in linear light, before the camera's tone curve: locate them there
        lut = ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4
        lut[:11] = np.arange(11) / 255.0 / 12.92
        grey_f = lut.astype(np.float32)[grey]
        ref_src, ref_dst = [], []
        for i in ids:
            res = _refine_marker(grey_f, H, layout.marker(i), layout)
            if res is None:
                ref_src.append(layout.marker(i).corners_mm())
                ref_dst.append(found[i])
                continue
            c, b = res
            # sanity: refined corners stay close to OpenCV's
            if np.max(np.hypot(*(c - found[i]).T)) > 0.15 * math.sqrt(abs(_polygon_area(found[i]))) + 2.0:
                c = found[i]
            ref_src.append(layout.marker(i).corners_mm())
            ref_dst.append(c)
            blurs.extend(b)
        src, dst = np.concatenate(ref_src), np.concatenate(ref_dst)
        H = _homography(src, dst)
    resid = float(np.sqrt(np.mean(np.sum((_apply(H, src) - dst) ** 2, axis=1))))
    centre = np.array([layout.width_mm / 2, layout.height_mm / 2])
    ppm, aniso, tilt = scale_at(H, centre)
    marker_px = float(np.mean([math.sqrt(abs(_polygon_area(found[i]))) for i in ids]))
    if len(ids) < len(layout.markers):
        warns.append(
            f"Only {len(ids)} of the card's {len(layout.markers)} markers were found, so the scale is less precise. "
            "Keep the whole card in the picture, flat, and without glare on it."
        )
    if resid > max(1.0, 0.02 * marker_px):
        warns.append(
            f"The card's markers do not line up well ({resid:.1f} px off): the card may be bent or not flat on the skin. "
            "Lay the card flat on the skin; a flexible card on a curved leg errs by several per cent."
        )
    log.info("card: %d markers, %.3f px/mm, tilt %.1f deg, residual %.3f px", len(ids), ppm, tilt, resid)
    return Calibration(
        px_per_mm=ppm,
        source="card",
        homography=H,
        marker_ids=tuple(ids),
        tilt_deg=tilt,
        anisotropy=aniso,
        residual_px=resid,
        edge_blur_px=float(np.median(blurs)) if blurs else None,
        image_shape=(int(a.shape[0]), int(a.shape[1])),
        warnings=tuple(warns),
        params={"layout_version": layout.version, "refine": refine, "marker_side_px": round(marker_px, 2)},
    )


# --------------------------------------------------------------------------- printable card

_INSTRUCTIONS = (
    "How to print and use the VeinScope scale card",
    "1. Print this page at 100 % ('Actual size'). Switch OFF 'Fit to page', 'Shrink' or 'Scale to fit'.",
    "2. Check the print: the ruler on the card must measure exactly 40 mm and the card 85.6 x 54 mm",
    "   (the size of a bank card). If not, fix the printer setting and print again.",
    "3. Print on matte white paper (no glossy paper: it reflects light) with a laser or good inkjet printer.",
    "4. Cut the card out along the grey line and glue it onto stiff card so it stays flat. Do not laminate.",
    "5. For each photo, lay the card flat on the skin next to the treated area, printed side up, not covering it.",
    "6. Hold the phone parallel to the skin, 20-40 cm away, the whole card and the area in the picture.",
    "7. Use even, indirect light (no flash glare on the card or the skin). Use the same card at every visit.",
    "Replace the card when it is dirty, faded or bent. Keep it out of the sun.",
)


def write_card_pdf(path, *, layout: CardLayout = CARD, page: str = "A4", copies: int = 2) -> Path:
    """Write the printable calibration card (100 % scale, with printing instructions) as a PDF.

    Parameters
    ----------
    path : path
        Output file (``.pdf``).
    page : {"A4", "Letter"}
        Paper size.
    copies : int
        Cards on the page (1-4); spares for when one gets dirty.

    Returns
    -------
    Path
        The file written.
    """
    from fpdf import FPDF

    if page not in ("A4", "Letter"):
        raise ValueError(f"page must be 'A4' or 'Letter', got {page!r}")
    if not (isinstance(copies, int) and 1 <= copies <= 4):
        raise ValueError(f"copies must be an integer 1-4, got {copies!r}")
    out = Path(path)
    pdf = FPDF(orientation="portrait", unit="mm", format=page)
    pdf.set_auto_page_break(False)
    pdf.set_creator(f"VeinScope {__version__}")
    pdf.set_title("VeinScope scale card - print at 100 %")
    pdf.set_author("VeinScope")
    pdf.add_page()
    page_w = pdf.w
    pdf.set_font("Helvetica", "B", 13)
    pdf.set_xy(15, 12)
    pdf.cell(0, 7, _INSTRUCTIONS[0])
    pdf.set_font("Helvetica", "", 9.5)
    y = 21.0
    for line in _INSTRUCTIONS[1:]:
        pdf.set_xy(15, y)
        pdf.cell(0, 5, line)
        y += 5.2
    # cards: two per row, from below the instructions
    x_positions = [15.0, page_w - 15.0 - layout.width_mm]
    y0 = y + 8.0
    for k in range(copies):
        cx = x_positions[k % 2]
        cy = y0 + (k // 2) * (layout.height_mm + 12.0)
        _draw_card(pdf, layout, cx, cy)
    # a 100 mm check ruler on the page itself
    ry = y0 + ((copies + 1) // 2) * (layout.height_mm + 12.0) + 6.0
    _draw_page_ruler(pdf, 15.0, ry, 100)
    pdf.set_font("Helvetica", "", 8)
    pdf.set_xy(15, ry + 9)
    pdf.cell(0, 4, "Check ruler: this line must measure exactly 100 mm (10 cm) on paper.")
    pdf.set_xy(15, pdf.h - 14)
    pdf.cell(0, 4, f"VeinScope scale card, layout {layout.version}, ArUco {layout.dictionary} ids "
             f"{', '.join(map(str, layout.marker_ids))}; markers {layout.markers[0].size_mm:g} mm. VeinScope measures and documents; it does not diagnose.")
    out.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(out))
    return out


def _draw_card(pdf, layout: CardLayout, x0: float, y0: float) -> None:
    # cutting outline
    pdf.set_draw_color(*layout.outline_srgb)
    pdf.set_line_width(layout.outline_mm)
    h = layout.outline_mm / 2
    pdf.rect(x0 + h, y0 + h, layout.width_mm - 2 * h, layout.height_mm - 2 * h, style="D")
    pdf.set_line_width(0)
    for mk in layout.markers:
        bits = marker_bits(mk.id, layout=layout)
        n = bits.shape[0]
        cell = mk.size_mm / n
        pdf.set_fill_color(0, 0, 0)
        pdf.rect(x0 + mk.x_mm, y0 + mk.y_mm, mk.size_mm, mk.size_mm, style="F")
        pdf.set_fill_color(255, 255, 255)
        for r in range(n):
            c = 0
            while c < n:  # runs of white cells as one rectangle (no hairline seams)
                if bits[r, c]:
                    c1 = c
                    while c1 < n and bits[r, c1]:
                        c1 += 1
                    pdf.rect(x0 + mk.x_mm + c * cell, y0 + mk.y_mm + r * cell, (c1 - c) * cell, cell, style="F")
                    c = c1
                else:
                    c += 1
    for p in layout.patches:
        if p.srgb == layout.background_srgb:
            continue
        pdf.set_fill_color(*p.srgb)
        pdf.rect(x0 + p.x_mm, y0 + p.y_mm, p.w_mm, p.h_mm, style="F")
    ru = layout.ruler
    pdf.set_fill_color(0, 0, 0)
    pdf.rect(x0 + ru.x0_mm - ru.line_mm / 2, y0 + ru.y_mm - ru.line_mm / 2, ru.length_mm + ru.line_mm, ru.line_mm, style="F")
    pdf.set_font("Helvetica", "", 5)
    pdf.set_text_color(0, 0, 0)
    for i, x in enumerate(ru.tick_x_mm()):
        length = ru.tick_mm[2] if i % 10 == 0 else ru.tick_mm[1] if i % 5 == 0 else ru.tick_mm[0]
        pdf.rect(x0 + x - ru.line_mm / 2, y0 + ru.y_mm, ru.line_mm, length, style="F")
        if i % 10 == 0:
            label = f"{i // 10}" if i else "0"
            pdf.set_xy(x0 + x - 2, y0 + ru.y_mm + ru.tick_mm[2] + 0.3)
            pdf.cell(4, 2.2, label, align="C")
    pdf.set_xy(x0 + ru.x0_mm + ru.length_mm + 0.8, y0 + ru.y_mm + ru.tick_mm[2] + 0.3)
    pdf.cell(4, 2.2, "cm")
    pdf.set_font("Helvetica", "", 4.5)
    pdf.set_text_color(90, 90, 90)
    pdf.set_xy(x0 + ru.x0_mm, y0 + layout.height_mm - 5.6)
    pdf.cell(ru.length_mm, 2.2, f"VeinScope scale card {layout.version}  -  ruler 40 mm at 100 % print", align="C")
    pdf.set_text_color(0, 0, 0)


def _draw_page_ruler(pdf, x0: float, y: float, length_mm: int) -> None:
    pdf.set_fill_color(0, 0, 0)
    pdf.rect(x0, y - 0.1, length_mm, 0.2, style="F")
    for i in range(length_mm + 1):
        ln = 4.0 if i % 10 == 0 else 2.8 if i % 5 == 0 else 1.8
        pdf.rect(x0 + i - 0.1, y, 0.2, ln, style="F")
