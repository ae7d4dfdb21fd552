"""Optical density against the local skin background, and chromophore maps.

A colour photo is turned into optical density (OD = -ln of linear reflectance, per channel);
subtracting the OD of the surrounding skin leaves what a structure adds to it. That relative OD
vector is decomposed on three absorption directions (Beer-Lambert mixing):

* ``haemoglobin``: oxygenated blood near the surface (red telangiectasia). Molar extinction of
  HbO2 at the sRGB primaries' dominant wavelengths (~600, 540, 460 nm) from Prahl's
  compilation (https://omlc.org/spectra/hemoglobin/): about 3.2e3, 5.3e4, 3.3e4 cm-1/M.
* ``venous``: blood deeper in the dermis (blue telangiectasia, reticular veins). Red light
  reaches deep vessels and is absorbed there while blue light is scattered back before it
  does, so the visible OD change is largest in red (Kienle et al. 1996, "Why do veins appear
  blue?", doi:10.1364/AO.35.001151).
* ``melanin``: freckles, naevi, tan, haemosiderin-like brown staining: absorption falling with
  wavelength as lambda**-3.46 (Jacques 2013, doi:10.1088/0031-9155/58/11/R37).

Tsumura et al. 2003 (doi:10.1145/1201775.882285) separate haemoglobin and melanin in skin
photos the same way (in their case with ICA). The directions are physically motivated, not fitted
to any photo set; a dark hair or a shadow adds OD in all three channels alike and decomposes
into a mixture with a large melanin part, which segmentation uses to reject it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2

import numpy as np

from veinscope._grid import median_filter, nearest_fill
from veinscope._kernels.chroma import block_sum_od, project_relative_od

__all__ = [
    "CHROMOPHORE_DIRECTIONS",
    "VESSEL_DIRECTION",
    "SkinOptics",
    "optical_density",
    "skin_optics",
]

_SRGB = np.arange(256, dtype=np.float64) / 255.0
_LINEAR = np.where(_SRGB <= 0.04045, _SRGB / 12.92, ((_SRGB + 0.055) / 1.055) ** 2.4)
#: OD of each 8-bit sRGB value; black is clamped at the OD of value 0.5 to stay finite.
OD_LUT = (-np.log(np.maximum(_LINEAR, 0.5 / 255.0 / 12.92))).astype(np.float32)


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


#: Unit OD directions (R, G, B) of the three chromophores (see the module docstring).
CHROMOPHORE_DIRECTIONS = {
    "haemoglobin": _unit([0.06, 1.0, 0.62]),
    "venous": _unit([1.0, 0.62, 0.22]),
    "melanin": _unit([0.40, 0.57, 1.0]),
}
_NAMES = ("haemoglobin", "venous", "melanin")
_MIX = np.stack([CHROMOPHORE_DIRECTIONS[k] for k in _NAMES], axis=1)  # columns
_UNMIX = np.linalg.inv(_MIX)  # rows: concentration of each chromophore from (dR, dG, dB)
#: Unit OD direction that detection runs on (red and blue vessels alike).
VESSEL_DIRECTION = _unit(CHROMOPHORE_DIRECTIONS["haemoglobin"] + CHROMOPHORE_DIRECTIONS["venous"])


def optical_density(rgb) -> np.ndarray:
    """Optical density -ln(linear reflectance) of an sRGB uint8 image.

    Parameters
    ----------
    rgb : ndarray, shape (M, N, 3), uint8

    Returns
    -------
    ndarray, shape (M, N, 3), float32
        0 for white, about 7.7 for black (clamped).

    Examples
    --------
    >>> import numpy as np
    >>> float(optical_density(np.full((1, 1, 3), 255, np.uint8))[0, 0, 0])
    0.0
    """
    rgb = _as_rgb_uint8(rgb)
    return OD_LUT[rgb]


@dataclass(frozen=True)
class SkinOptics:
    """Relative optical density of a photo against its local skin background.

    Attributes
    ----------
    rgb : ndarray (M, N, 3) uint8
        The photo (not copied).
    background_od : ndarray (m, n, 3) float32
        Coarse OD of the skin background (vessels, freckles and hair suppressed); upsampled
        bilinearly on the fly.
    background_px : float
        Size of the background window in photo pixels.
    cell_px : int
        Size of one cell of ``background_od`` in photo pixels.
    """

    rgb: np.ndarray
    background_od: np.ndarray
    background_px: float
    cell_px: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[:2]

    def project(self, weights) -> np.ndarray:
        """Relative OD projected on K directions.

        Parameters
        ----------
        weights : array_like, shape (K, 3) or (3,)
            Each row maps (dR, dG, dB) to one output map.

        Returns
        -------
        ndarray, shape (K, M, N) (or (M, N) for a single direction), float32
        """
        w = np.asarray(weights, dtype=np.float32)
        single = w.ndim == 1
        w = np.atleast_2d(w)
        if w.shape[1] != 3:
            raise ValueError(f"weights must have shape (K, 3), got {w.shape}")
        m, n = self.shape
        out = np.empty((w.shape[0], m, n), dtype=np.float32)
        y0, wy = _bilinear_index(m, self.background_od.shape[0], self.cell_px)
        x0, wx = _bilinear_index(n, self.background_od.shape[1], self.cell_px)
        project_relative_od(self.rgb, OD_LUT, self.background_od, y0, wy, x0, wx, w, out)
        return out[0] if single else out

    def vessel_signal(self) -> np.ndarray:
        """Relative OD along the blood direction, float32 (M, N), vessels > 0.

        The projection on the unit sum of the haemoglobin and venous directions: it responds
        to red and blue vessels alike with unit noise gain. Unmixing (which would also cancel
        melanin) multiplies the pixel noise by about 2.3, so detection runs on this map and the
        colour of each detected structure is judged afterwards, averaged along it.
        """
        return self.project(VESSEL_DIRECTION)

    def chromophore_maps(self) -> dict[str, np.ndarray]:
        """Concentration-like maps ``haemoglobin``, ``venous``, ``melanin`` (float32 (M, N) each)."""
        maps = self.project(_UNMIX)
        return {name: maps[i] for i, name in enumerate(_NAMES)}

    def relative_od_at(self, points_yx) -> np.ndarray:
        """Relative OD (dR, dG, dB) at integer pixel positions, shape (K, 3), float32."""
        pts = np.asarray(points_yx)
        if pts.size == 0:
            return np.zeros((0, 3), np.float32)
        r = np.clip(np.rint(pts[:, 0]).astype(np.intp), 0, self.shape[0] - 1)
        c = np.clip(np.rint(pts[:, 1]).astype(np.intp), 0, self.shape[1] - 1)
        od = OD_LUT[self.rgb[r, c]]
        m, n = self.shape
        y0, wy = _bilinear_index(m, self.background_od.shape[0], self.cell_px)
        x0, wx = _bilinear_index(n, self.background_od.shape[1], self.cell_px)
        bg = self.background_od
        ya, yb = y0[r], np.minimum(y0[r] + 1, bg.shape[0] - 1)
        xa, xb = x0[c], np.minimum(x0[c] + 1, bg.shape[1] - 1)
        fy, fx = wy[r][:, None], wx[c][:, None]
        b = (bg[ya, xa] * (1 - fx) + bg[ya, xb] * fx) * (1 - fy) + (bg[yb, xa] * (1 - fx) + bg[yb, xb] * fx) * fy
        return (od - b).astype(np.float32)


def unmix(relative_od) -> np.ndarray:
    """Concentrations (haemoglobin, venous, melanin) from relative OD vectors, shape (..., 3)."""
    d = np.asarray(relative_od, dtype=np.float64)
    return (d @ _UNMIX.T).astype(np.float32)


def skin_optics(rgb, *, skin=None, background_px: float = 150.0) -> SkinOptics:
    """Estimate the local skin background and return the relative-OD model.

    The background is a masked, robust local mean of the OD at a scale of ``background_px``
    pixels (at least 4 times the widest vessel): the photo is averaged down to cells of
    ``background_px / 8`` pixels over skin only, cells without skin take the nearest skin value,
    and a 7x7-cell median removes what vessels and hair leave at that scale (a vessel a quarter
    of the window wide covers at most 3 of the 7 cells across it).

    Parameters
    ----------
    rgb : ndarray (M, N, 3) uint8
    skin : ndarray (M, N) bool, optional
        Skin mask; the background is estimated from skin pixels only.
    background_px : float
        Background window in pixels.
    """
    rgb = _as_rgb_uint8(rgb)
    if not np.isfinite(background_px) or background_px < 6:
        raise ValueError(f"background_px must be >= 6, got {background_px!r}")
    m, n = rgb.shape[:2]
    cell = max(1, int(round(background_px / 8.0)))
    gm, gn = -(-m // cell), -(-n // cell)
    mask = np.ones((m, n), np.bool_) if skin is None else np.asarray(skin, dtype=np.bool_)
    if mask.shape != (m, n):
        raise ValueError(f"skin must have shape {(m, n)}, got {mask.shape}")
    total = np.empty((gm, gn, 3), np.float64)
    count = np.empty((gm, gn), np.float64)
    block_sum_od(rgb, np.ascontiguousarray(mask), OD_LUT, cell, total, count)
    # a cell counts when a fifth of it is skin (edge cells are partial)
    cell_area = np.minimum(cell, m - np.arange(gm) * cell)[:, None] * np.minimum(cell, n - np.arange(gn) * cell)[None, :]
    valid = count > 0.2 * cell_area
    bg = np.zeros((gm, gn, 3), np.float32)
    bg[valid] = total[valid] / count[valid][:, None]
    if not valid.all():
        if valid.any():
            bg = nearest_fill(bg, valid)
        else:
            bg[:] = np.median(OD_LUT[rgb[:: max(1, m // 64), :: max(1, n // 64)]].reshape(-1, 3), axis=0)
    bg = median_filter(bg, 7)
    return SkinOptics(
        rgb=rgb, background_od=np.ascontiguousarray(bg, dtype=np.float32), background_px=float(background_px), cell_px=cell
    )


def _bilinear_index(full: int, coarse: int, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower neighbour index and upper weight, on a grid of cells of ``cell`` pixels."""
    pos = (np.arange(full, dtype=np.float64) + 0.5) / cell - 0.5
    pos = np.clip(pos, 0, coarse - 1)
    i0 = np.minimum(np.floor(pos).astype(np.int64), max(coarse - 2, 0))
    frac = (pos - i0).astype(np.float32)
    if coarse == 1:
        frac[:] = 0
    return i0, frac


def _as_rgb_uint8(rgb) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"rgb must have shape (M, N, 3), got {a.shape}")
    if a.dtype != np.uint8:
        raise TypeError(f"rgb must be uint8 (use veinscope.load_photo), got {a.dtype}")
    return np.ascontiguousarray(a)


def matched_vessel_weights(optics: SkinOptics, skin, *, block_px: int = 64, max_blocks: int = 96,
                           texture_sigma_px: float = 3.0, rng=None) -> np.ndarray:  # fmt: skip
    """OD weights (3,) that see a vessel of :data:`VESSEL_DIRECTION` with unit gain and the least
    skin texture and noise of this photo (a matched filter: ``w = C^-1 d / d' C^-1 d``).

    ``C`` is the covariance of the (dR, dG, dB) texture of the skin, measured on up to
    ``max_blocks`` blocks of ``block_px`` pixels lying wholly on skin, after a Gaussian of
    ``texture_sigma_px`` is taken out (the fine texture and sensor noise, which is what the
    finest vessels compete with). On light skin ``C`` is nearly isotropic and ``w`` stays close
    to the vessel direction; on dark skin the blue and green channels are much noisier (less
    light), and ``w`` leans on the channels that still carry the vessel. Only the channels'
    variances are used (``C`` diagonal). Falls back to the plain direction when too little skin is seen.
    """
    import cv2

    d = VESSEL_DIRECTION.astype(np.float64)
    skin = np.asarray(skin, dtype=bool)
    m, n = skin.shape
    b = int(block_px)
    gm, gn = m // b, n // b
    if gm == 0 or gn == 0:
        return d.astype(np.float32)
    full = skin[: gm * b, : gn * b].reshape(gm, b, gn, b).all(axis=(1, 3))
    cells = np.argwhere(full)
    if cells.shape[0] < 4:
        return d.astype(np.float32)
    rng = np.random.default_rng(0) if rng is None else rng
    if cells.shape[0] > max_blocks:
        cells = cells[np.sort(rng.choice(cells.shape[0], max_blocks, replace=False))]
    res = []
    for i, j in cells:
        od = OD_LUT[optics.rgb[i * b : (i + 1) * b, j * b : (j + 1) * b]]
        hp = od - cv2.GaussianBlur(od, (0, 0), texture_sigma_px)
        res.append(hp[4:-4, 4:-4].reshape(-1, 3))
    x = np.concatenate(res).astype(np.float64)
    # vessels, hair and clipped pixels in the blocks: drop the 2 % largest residuals
    r2 = (x * x).sum(axis=1)
    x = x[r2 <= np.quantile(r2, 0.98)]
    # Per-channel variances only: the channels' texture is strongly correlated (light, JPEG's
    # shared luminance), and a full inverse covariance would build the signal from channel
    # differences, where JPEG's chroma blocks and coarse colour blotches live. Diagonal
    # weighting cannot turn a channel's sign.
    var = x.var(axis=0) + 1e-12
    ci_d = d / var
    w = ci_d / float(d @ ci_d)
    if not np.all(np.isfinite(w)):
        return d.astype(np.float32)
    return w.astype(np.float32)
