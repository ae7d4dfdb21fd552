"""Centreline measurements -> per-vessel and per-class figures, the frozen :class:`Analysis`.

Diameters are the visible width (full width at half maximum of the vessel's own deblurred
contrast profile), fitted at every centreline point by :func:`veinscope.diameter.profile_diameters`.
Lengths follow the centreline (Kulpa's unbiased chain weights). Millimetre figures need an
explicit ``px_per_mm``; without one, the ``*_mm`` figures are ``None`` and the ``*_px`` ones
are given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from veinscope._version import __version__
from veinscope.segment import CLASS_CODES, CLASS_NAMES

__all__ = ["Analysis", "ClassFigures", "class_figures"]

_ALL = CLASS_NAMES + ("total",)


@dataclass(frozen=True)
class ClassFigures:
    """Figures of one vessel class (or ``total``)."""

    coverage_pct: float
    area_px2: float
    length_px: float
    diameter_px: dict[str, float | None]
    segments: int
    px_per_mm: float | None

    def to_dict(self) -> dict[str, Any]:
        ppm = self.px_per_mm
        mm = (lambda v: None if v is None or ppm is None else round(v / ppm, 4))
        return {
            "coverage_pct": round(self.coverage_pct, 4),
            "area_mm2": None if ppm is None else round(self.area_px2 / ppm**2, 4),
            "length_mm": mm(self.length_px),
            "diameter_mm": {k: mm(v) for k, v in self.diameter_px.items()},
            "segments": self.segments,
            "area_px2": round(self.area_px2, 2),
            "length_px": round(self.length_px, 2),
            "diameter_px": {k: None if v is None else round(v, 3) for k, v in self.diameter_px.items()},
        }


@dataclass(frozen=True)
class Analysis:
    """The result of :func:`veinscope.analyze` on one photo.

    Attributes
    ----------
    px_per_mm : float or None
        Scale used for millimetre figures (None: uncalibrated, pixel figures only).
    classes : dict[str, ClassFigures]
        Keys ``red_telangiectasia``, ``blue_telangiectasia``, ``reticular``, ``over_3mm``, ``total``.
    labels : ndarray (M, N) uint8
        0 none, 1 red_telangiectasia, 2 blue_telangiectasia, 3 reticular, 4 over_3mm.
    diameter_px : ndarray (M, N) float32
        Visible vessel diameter in pixels at vessel pixels, 0 elsewhere.
    skin : ndarray (M, N) bool
    vessels : list of dict
        One entry per vessel segment: class, length, diameter (median), colour.
    warnings : tuple of str
        Plain-language remarks on the photo and the measurement.
    params : dict
        Every parameter that produced this result.
    version : str
    """

    px_per_mm: float | None
    classes: dict[str, ClassFigures]
    labels: np.ndarray = field(repr=False)
    diameter_px: np.ndarray = field(repr=False)
    skin: np.ndarray = field(repr=False)
    vessels: list[dict[str, Any]] = field(default_factory=list, repr=False)
    warnings: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    name: str = "photo"

    @property
    def diameter_mm(self) -> np.ndarray:
        """Diameter in mm at vessel pixels (0 elsewhere); NaN at vessel pixels when uncalibrated."""
        if self.px_per_mm is None:
            out = np.zeros_like(self.diameter_px)
            out[self.labels > 0] = np.nan
            return out
        return (self.diameter_px / np.float32(self.px_per_mm)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """The ``analysis.json`` content (JSON-ready; arrays are written as separate files)."""
        return {
            "px_per_mm": self.px_per_mm,
            "warnings": list(self.warnings),
            "classes": {k: self.classes[k].to_dict() for k in _ALL},
            "skin_area_px2": int(self.skin.sum()),
            "skin_area_mm2": None if self.px_per_mm is None else round(float(self.skin.sum()) / self.px_per_mm**2, 2),
            "vessels": self.vessels,
            "photo": {"name": self.name, "height_px": int(self.labels.shape[0]), "width_px": int(self.labels.shape[1])},
            "parameters": self.params,
            "version": self.version,
        }


def class_figures(labels, point_class, point_width_px, segment_class, segment_length_px, skin, px_per_mm):
    """Per-class figures from the painted labels and the centreline points.

    Parameters
    ----------
    labels : ndarray (M, N) uint8
    point_class : ndarray (K,) int  class code of each centreline point
    point_width_px : ndarray (K,) float  diameter at each point (NaN allowed)
    segment_class : ndarray (S,) int
    segment_length_px : ndarray (S,) float
    skin : ndarray (M, N) bool
    px_per_mm : float or None
    """
    counts = np.bincount(labels.ravel(), minlength=5)
    skin_px = float(np.count_nonzero(skin))
    out = {}
    for name in _ALL:
        if name == "total":
            area = float(counts[1:].sum())
            psel = point_class > 0
            ssel = segment_class > 0
        else:
            code = CLASS_CODES[name]
            area = float(counts[code])
            psel = point_class == code
            ssel = segment_class == code
        w = point_width_px[psel]
        w = w[np.isfinite(w)]
        diam = (
            {"mean": float(w.mean()), "median": float(np.median(w)), "p90": float(np.percentile(w, 90))}
            if w.size
            else {"mean": None, "median": None, "p90": None}
        )
        out[name] = ClassFigures(
            coverage_pct=100.0 * area / skin_px if skin_px else 0.0,
            area_px2=area,
            length_px=float(segment_length_px[ssel].sum()),
            diameter_px=diam,
            segments=int(np.count_nonzero(ssel)),
            px_per_mm=px_per_mm,
        )
    return out


def finite_or_none(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def chain_lengths(points_yx, segment, n_segments: int, shape) -> np.ndarray:
    """Centreline length of each segment, in pixels (Kulpa's unbiased chain weights).

    Each pair of 8-adjacent centreline pixels of the same segment adds a step: 0.948 for an
    axial step, 1.343 for a diagonal one (Kulpa 1977, doi:10.1016/S0146-664X(77)80022-0). A
    diagonal step is skipped where both pixels also touch a common axial neighbour of the
    segment (an L-corner), which would otherwise count the same stretch twice.

    Parameters
    ----------
    points_yx : ndarray (K, 2) int
    segment : ndarray (K,) int, values in 0..n_segments-1
    n_segments : int
    shape : (M, N) of the image

    Returns
    -------
    ndarray (n_segments,) float64

    Examples
    --------
    >>> import numpy as np
    >>> pts = np.array([[5, x] for x in range(10)])
    >>> round(float(chain_lengths(pts, np.zeros(10, int), 1, (12, 12))[0]), 3)
    8.532
    """
    pts = np.asarray(points_yx, dtype=np.int64)
    seg = np.asarray(segment, dtype=np.int64)
    out = np.zeros(n_segments, np.float64)
    if pts.shape[0] == 0:
        return out
    m, n = shape
    img = np.full((m + 2, n + 2), -1, np.int64)  # padded so neighbours never fall outside
    y = pts[:, 0] + 1
    x = pts[:, 1] + 1
    img[y, x] = seg

    def same(dy, dx):
        return img[y + dy, x + dx] == seg

    right, down, left = same(0, 1), same(1, 0), same(0, -1)
    axial = right.astype(np.float64) + down
    diag_r = same(1, 1) & ~right & ~down
    diag_l = same(1, -1) & ~left & ~down
    step = 0.948 * axial + 1.343 * (diag_r.astype(np.float64) + diag_l)
    np.add.at(out, seg, step)
    return out
