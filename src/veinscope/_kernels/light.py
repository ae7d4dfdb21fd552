"""Per-pixel light matching: linear light x gain field, encoded back to sRGB through a table."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def apply_gain(rgb, lin_lut, gain, enc_n, enc_lut, out):  # pragma: no cover - compiled
    """``out[i, j, c] = enc_lut[int(clip(lin_lut[rgb[i, j, c]] * gain[i, j, c], 0, enc_n) + 0.5)]``.

    ``rgb`` (R, N, 3) uint8; ``lin_lut`` (256,) float32 (linear light x ``enc_n``); ``gain``
    (R, N, 3) float32; ``enc_n`` float32; ``enc_lut`` (enc_n + 1,) uint8; ``out`` (R, N, 3)
    uint8. All arithmetic in float32, in the order the NumPy reference
    (``compare._apply_gain_numpy``) uses, so the results are the same to the bit.
    """
    zero = np.float32(0.0)
    half = np.float32(0.5)
    for i in range(rgb.shape[0]):
        for j in range(rgb.shape[1]):
            for c in range(3):
                v = lin_lut[rgb[i, j, c]] * gain[i, j, c]
                if not v > zero:  # also NaN: black
                    v = zero
                elif v > enc_n:
                    v = enc_n
                v = v + half
                out[i, j, c] = enc_lut[np.int64(v)]
