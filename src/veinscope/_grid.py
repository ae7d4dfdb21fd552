"""Small-grid and mask helpers on OpenCV and Numba (no SciPy on the analysis path: start-up)."""

from __future__ import annotations

import cv2
import numpy as np

from veinscope._kernels.chroma import median_grid


def nearest_fill(grid: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``grid`` (M, N[, C]) with every invalid cell taken from its nearest valid cell (L2).

    ``valid`` must hold at least one True.
    """
    src = np.where(valid, 0, 255).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, cv2.DIST_MASK_PRECISE, labelType=cv2.DIST_LABEL_PIXEL)
    # DIST_LABEL_PIXEL numbers the zero (valid) pixels 1.. in raster order
    values = grid[valid]
    return values[labels - 1]


def median_filter(grid: np.ndarray, size: int) -> np.ndarray:
    """Median over ``size`` x ``size`` windows (borders replicated) of a (M, N[, C]) grid."""
    g = np.ascontiguousarray(grid, dtype=np.float32)
    flat = g.ndim == 2
    out = median_grid(g[:, :, None] if flat else g, int(size))
    return out[:, :, 0] if flat else out


def keep_large_filled(mask: np.ndarray, *, min_frac_of_largest: float, min_frac_of_image: float) -> np.ndarray:
    """Connected regions (4-connected) of ``mask`` with at least ``min_frac_of_largest`` of the
    largest region's area and ``min_frac_of_image`` of the image, holes filled."""
    m8 = mask.astype(np.uint8)
    nlab, lab, stats, _ = cv2.connectedComponentsWithStats(m8, connectivity=4)
    if nlab <= 1:
        return mask.astype(bool)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(nlab, bool)
    keep[1:] = sizes >= max(min_frac_of_largest * sizes.max(), min_frac_of_image * mask.size)
    s = keep[lab]
    return fill_holes(s)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the background regions not connected to the image border filled."""
    m, n = mask.shape
    pad = np.zeros((m + 2, n + 2), np.uint8)
    pad[1:-1, 1:-1] = mask
    flood = np.zeros((m + 4, n + 4), np.uint8)
    cv2.floodFill(pad, flood, (0, 0), 2, flags=4)
    return pad[1:-1, 1:-1] != 2
