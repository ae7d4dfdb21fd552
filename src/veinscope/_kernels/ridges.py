"""Centreline kernels: candidates by non-maximum suppression across ridges, chains, disc painting."""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True, inline="always")
def _disc_box(cy, cx, r, m, n):  # pragma: no cover - compiled
    """Rows i0..i1 and columns j0..j1 of an (m, n) image that a disc of radius r at (cy, cx) can touch."""
    return (max(0, int(math.ceil(cy - r))), min(m - 1, int(math.floor(cy + r))),
            max(0, int(math.ceil(cx - r))), min(n - 1, int(math.floor(cx + r))))


@nb.njit(cache=True, nogil=True)
def paint_discs(points_y, points_x, radius, code, value, labels, values, best):  # pragma: no cover
    """Paint a filled disc per centreline point; each pixel takes the nearest point's code/value.

    ``best`` (float32 (M, N)) holds the squared distance to the nearest painted point and must
    start at +inf. A pixel is inside a disc when its centre is within ``radius`` of the point
    (so a disc of radius r covers about pi r**2 pixels, an unbiased area).
    """
    m = labels.shape[0]
    n = labels.shape[1]
    for k in range(points_y.shape[0]):
        r = radius[k]
        if not (r > 0.0):
            continue
        cy = points_y[k]
        cx = points_x[k]
        r2 = r * r
        i0, i1, j0, j1 = _disc_box(cy, cx, r, m, n)
        for i in range(i0, i1 + 1):
            dy = i - cy
            for j in range(j0, j1 + 1):
                dx = j - cx
                d2 = dy * dy + dx * dx
                if d2 <= r2 and d2 < best[i, j]:
                    best[i, j] = d2
                    labels[i, j] = code[k]
                    values[i, j] = value[k]
    return labels


_FORWARD_DY = (0, 1, 1, 1)
_FORWARD_DX = (1, -1, 0, 1)


@nb.njit(cache=True, nogil=True)
def paint_links(pix_y, pix_x, points_y, points_x, radius, code, value, labels, values, best, max_radius=2.0):  # pragma: no cover
    """Paint the band swept between 8-neighbouring centreline pixels (the links of a chain).

    ``pix_y``, ``pix_x`` (int64) are the centreline pixels, unique and sorted row-major;
    ``points_y``, ``points_x`` where each is painted (the pixel, or its vessel's centre) and
    ``radius`` its half-width. Between two 8-neighbours a and b, a pixel is inside when its
    centre is within the radius (interpolated from a to b) of the segment between their
    centres, and it takes the code/value of the nearer end. With :func:`paint_discs` on the
    same points first, a chain of width w covers about w pixels across in every direction;
    discs alone leave a diagonal chain one pixel wide whatever its width below 2 px, and miss
    the pixels a diagonal step cuts through. ``best`` as in :func:`paint_discs`. Links whose
    ends both have a radius of ``max_radius`` or more are skipped: discs that wide, 1.4 px apart
    at most, leave gaps under 0.13 px deep to the swept band (speed on wide veins).
    """
    m = labels.shape[0]
    n = labels.shape[1]
    k = pix_y.shape[0]
    key = pix_y * n + pix_x
    for a in range(k):
        ra = radius[a]
        if not (ra > 0.0):
            continue
        for d in range(4):
            yy = pix_y[a] + _FORWARD_DY[d]
            xx = pix_x[a] + _FORWARD_DX[d]
            if xx < 0 or xx >= n or yy >= m:
                continue
            kk = yy * n + xx
            b = np.searchsorted(key, kk)
            if b >= k or key[b] != kk:
                continue
            rb = radius[b]
            if not (rb > 0.0) or min(ra, rb) >= max_radius:
                continue
            ay = points_y[a]
            ax = points_x[a]
            vy = points_y[b] - ay
            vx = points_x[b] - ax
            l2 = vy * vy + vx * vx
            if l2 <= 0.0:
                continue
            rmax = max(ra, rb)
            i0 = max(0, int(math.ceil(min(ay, ay + vy) - rmax)))
            i1 = min(m - 1, int(math.floor(max(ay, ay + vy) + rmax)))
            j0 = max(0, int(math.ceil(min(ax, ax + vx) - rmax)))
            j1 = min(n - 1, int(math.floor(max(ax, ax + vx) + rmax)))
            for i in range(i0, i1 + 1):
                for j in range(j0, j1 + 1):
                    t = ((i - ay) * vy + (j - ax) * vx) / l2
                    t = min(1.0, max(0.0, t))
                    ey = i - (ay + t * vy)
                    ex = j - (ax + t * vx)
                    d2 = ey * ey + ex * ex
                    r = ra + t * (rb - ra)
                    if d2 <= r * r and d2 < best[i, j]:
                        best[i, j] = d2
                        e = a if t < 0.5 else b
                        labels[i, j] = code[e]
                        values[i, j] = value[e]
    return labels


@nb.njit(cache=True, nogil=True)
def thin_corners(mask):  # pragma: no cover - compiled
    """Remove redundant corner pixels of 1-pixel chains, in place (uint8 (M, N), 0/1).

    A pixel goes when it has two perpendicular 4-neighbours (an L-corner of a staircase) and is
    a simple point in 8-connectivity (Yokoi connectivity number 1, at least two neighbours), so
    chains stay connected and keep their end points. Raster order, sequential: deterministic.
    Returns the number of pixels removed.
    """
    m = mask.shape[0]
    n = mask.shape[1]
    removed = 0
    x = np.zeros(8, np.uint8)
    dy = (0, -1, -1, -1, 0, 1, 1, 1)
    dx = (1, 1, 0, -1, -1, -1, 0, 1)
    for i in range(m):
        for j in range(n):
            if mask[i, j] == 0:
                continue
            # ring: E, NE, N, NW, W, SW, S, SE
            x[:] = 0
            cnt = 0
            for k in range(8):
                yy = i + dy[k]
                xx = j + dx[k]
                if 0 <= yy < m and 0 <= xx < n and mask[yy, xx] != 0:
                    x[k] = 1
                    cnt += 1
            if cnt < 2:
                continue
            e, nn, w, s = x[0], x[2], x[4], x[6]
            if not ((nn and e) or (e and s) or (s and w) or (w and nn)):
                continue
            c8 = 0
            for k in (0, 2, 4, 6):
                a = 1 - x[k]
                b = 1 - x[(k + 1) % 8]
                c = 1 - x[(k + 2) % 8]
                c8 += a - a * b * c
            if c8 == 1:
                mask[i, j] = 0
                removed += 1
    return removed


@nb.njit(cache=True, nogil=True, inline="always")
def _bilinear(img, y, x):  # pragma: no cover - compiled
    """Bilinear sample of ``img`` at (y, x), clamped to the image."""
    m = img.shape[0]
    n = img.shape[1]
    if y < 0.0:
        y = 0.0
    elif y > m - 1:
        y = m - 1.0
    if x < 0.0:
        x = 0.0
    elif x > n - 1:
        x = n - 1.0
    y0 = min(int(math.floor(y)), max(m - 2, 0))
    x0 = min(int(math.floor(x)), max(n - 2, 0))
    y1 = min(y0 + 1, m - 1)
    x1 = min(x0 + 1, n - 1)
    fy = y - y0
    fx = x - x0
    return (img[y0, x0] * (1.0 - fx) + img[y0, x1] * fx) * (1.0 - fy) + (img[y1, x0] * (1.0 - fx) + img[y1, x1] * fx) * fy


@nb.njit(cache=True, nogil=True, inline="always")
def _on_mask(mask, y, x):  # pragma: no cover - compiled
    """``mask`` at the pixel nearest (y, x), clamped to the image (the photo's frame is no outline)."""
    m = mask.shape[0]
    n = mask.shape[1]
    i = min(max(int(math.floor(y + 0.5)), 0), m - 1)
    j = min(max(int(math.floor(x + 0.5)), 0), n - 1)
    return mask[i, j]


@nb.njit(cache=True, nogil=True, inline="always")
def _level(s, inner_ij, noise_grid, inv, i, j, low_noise, high_noise, min_strength):  # pragma: no cover - compiled
    """0 (below the low level or outside ``inner``), 1 (low) or 2 (also high) for strength ``s``
    at pixel (i, j): levels ``max(low_noise * local, min_strength)`` and
    ``max(high_noise * local, 2 min_strength)``, ``local`` the noise grid bilinear at the pixel."""
    if s < min_strength or s <= 0.0 or not inner_ij:
        return 0
    local = _bilinear(noise_grid, (i + 0.5) * inv - 0.5, (j + 0.5) * inv - 0.5)
    if s < max(low_noise * local, min_strength):
        return 0
    return 2 if s >= max(high_noise * local, 2.0 * min_strength) else 1


@nb.njit(cache=True, nogil=True, parallel=True)
def centreline_candidates(
    q, normal_y, normal_x, scale_px, inner, noise_grid, cell, low_noise, high_noise, min_strength,
    signal, use_signal, flank_skin, min_symmetry, out,
):  # pragma: no cover - compiled  # fmt: skip
    """Centreline candidates in one pass: ridge NMS, local hysteresis levels, symmetric profile.

    A pixel of ``inner`` is a candidate when ``q`` is not smaller than its values bilinearly
    interpolated one pixel away on either side along the normal (Steger 1998,
    doi:10.1109/34.659930; Canny's suppression applied to line strength) and ``q >= max(low_noise * local, min_strength)``, ``local`` being
    ``noise_grid`` (cells of ``cell`` px) bilinear at the pixel; it is strong when also
    ``q >= max(high_noise * local, 2 min_strength)``. With ``use_signal``, a candidate whose
    ``signal`` profile is not higher than both sides (at ``2 scale + 1`` px along the normal)
    by at least ``min_symmetry`` of the stronger side is dropped (an edge, not a vessel), and
    so is one whose profile point on either side lies off ``flank_skin`` (bool (M, N), the skin
    with small specks closed and holes filled; the photo's frame counts as skin): off the skin
    the signal is the skin's level by construction, so the rim of a shaded leg beside clothing
    would pass as a dark band between two brighter sides.
    ``out`` (uint8 (M, N)) gets 0 (none), 1 (candidate) or 2 (strong candidate).
    """
    m = q.shape[0]
    n = q.shape[1]
    inv = 1.0 / cell
    for i in nb.prange(m):
        for j in range(n):
            out[i, j] = 0
            s = q[i, j]
            level = _level(s, inner[i, j], noise_grid, inv, i, j, low_noise, high_noise, min_strength)
            if level == 0:
                continue
            ny = normal_y[i, j]
            nx = normal_x[i, j]
            if _bilinear(q, i + ny, j + nx) > s or _bilinear(q, i - ny, j - nx) > s:
                continue
            if use_signal:
                d = 2.0 * scale_px[i, j] + 1.0
                if not (_on_mask(flank_skin, i + d * ny, j + d * nx) and _on_mask(flank_skin, i - d * ny, j - d * nx)):
                    continue
                c = signal[i, j]
                a = c - _bilinear(signal, i + d * ny, j + d * nx)
                b = c - _bilinear(signal, i - d * ny, j - d * nx)
                near = min(a, b)
                far = max(a, b)
                if not (near > 0.0 and near > min_symmetry * max(far, 1e-6)):
                    continue
            out[i, j] = level
    return out


@nb.njit(cache=True, nogil=True)
def kept_points(lab, cand, nlab, min_size):  # pragma: no cover - compiled
    """Centreline points of the components that have a strong pixel and ``>= min_size`` pixels.

    ``lab`` int32 (M, N) component labels 1..nlab (0 background), ``cand`` uint8 with 2 (or 3,
    :func:`mark_in_labels`' weak bands) at strong pixels. Returns (ys, xs, segment ids 0..K-1 in order of first appearance of the
    kept labels' numbering, number of kept segments), points in row-major order.
    """
    m = lab.shape[0]
    n = lab.shape[1]
    size = np.zeros(nlab + 1, np.int64)
    strong = np.zeros(nlab + 1, np.bool_)
    for i in range(m):
        for j in range(n):
            k = lab[i, j]
            if k > 0:
                size[k] += 1
                if cand[i, j] >= 2:
                    strong[k] = True
    new_id = np.full(nlab + 1, -1, np.int64)
    kept = 0
    total = 0
    for k in range(1, nlab + 1):
        if strong[k] and size[k] >= min_size:
            new_id[k] = kept
            kept += 1
            total += size[k]
    ys = np.empty(total, np.int32)
    xs = np.empty(total, np.int32)
    seg = np.empty(total, np.int32)
    p = 0
    for i in range(m):
        for j in range(n):
            k = lab[i, j]
            if k > 0 and new_id[k] >= 0:
                ys[p] = i
                xs[p] = j
                seg[p] = new_id[k]
                p += 1
    return ys, xs, seg, kept


@nb.njit(cache=True, nogil=True)
def _row_starts(ys, m):  # pragma: no cover - compiled
    """Index of the first point of each row 0..m (points sorted row-major)."""
    starts = np.zeros(m + 1, np.int64)
    p = 0
    for row in range(m + 1):
        while p < ys.shape[0] and ys[p] < row:
            p += 1
        starts[row] = p
    return starts


@nb.njit(cache=True, nogil=True)
def _find_x(xs, lo, hi, x):  # pragma: no cover - compiled
    """First index in xs[lo:hi] (sorted) with xs >= x."""
    while lo < hi:
        mid = (lo + hi) // 2
        if xs[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, nogil=True, inline="always")
def _row_span(xs, starts, y, x0, x1):  # pragma: no cover - compiled
    """Index range [lo, hi) of the points on row ``y`` (``starts`` from :func:`_row_starts`)
    with ``x0 <= xs <= x1``."""
    lo = _find_x(xs, starts[y], starts[y + 1], x0)
    return lo, _find_x(xs, lo, starts[y + 1], x1 + 1)


@nb.njit(cache=True, nogil=True)
def _root(parent, a):  # pragma: no cover - compiled
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@nb.njit(cache=True, nogil=True)
def same_class_pieces(ys, xs, cls, codes, m):  # pragma: no cover - compiled
    """8-connected runs of points of the same class: piece id per point (-1 where the class is
    not in ``codes``) and the number of pieces.

    Pieces are numbered class by class in the order of ``codes``, and within a class in raster
    order of their first point (as ``cv2.connectedComponents`` numbers them).
    """
    k = ys.shape[0]
    starts = _row_starts(ys, m)
    parent = np.arange(k)
    for i in range(k):
        c = cls[i]
        y = ys[i]
        x = xs[i]
        # forward neighbours: (y, x + 1) and (y + 1, x - 1 .. x + 1)
        if i + 1 < k and ys[i + 1] == y and xs[i + 1] == x + 1 and cls[i + 1] == c:
            ra, rb = _root(parent, i), _root(parent, i + 1)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        if y + 1 < m:
            lo = _find_x(xs, starts[y + 1], starts[y + 2], x - 1)
            for p in range(lo, starts[y + 2]):
                if xs[p] > x + 1:
                    break
                if cls[p] == c:
                    ra, rb = _root(parent, i), _root(parent, p)
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
    piece = np.full(k, -1, np.int64)
    root_id = np.full(k, -1, np.int64)
    n = 0
    for c in codes:
        for i in range(k):
            if cls[i] != c:
                continue
            rt = _root(parent, i)
            if root_id[rt] < 0:
                root_id[rt] = n
                n += 1
            piece[i] = root_id[rt]
    return piece, n


@nb.njit(cache=True, nogil=True, parallel=True)
def ridge_regions(q, inner, noise_grid, cell, low_noise, high_noise, min_strength, out):  # pragma: no cover - compiled
    """Pixels of ``inner`` whose line strength ``q`` passes the local low level (1) or also the
    high level (2), else 0, into ``out`` (uint8 (M, N)).

    The levels are those of :func:`centreline_candidates`: ``max(low_noise * local, min_strength)``
    and ``max(high_noise * local, 2 min_strength)``, ``local`` being ``noise_grid`` (cells of
    ``cell`` px) bilinear at the pixel.
    """
    m = q.shape[0]
    n = q.shape[1]
    inv = 1.0 / cell
    for i in nb.prange(m):
        for j in range(n):
            out[i, j] = _level(q[i, j], inner[i, j], noise_grid, inv, i, j, low_noise, high_noise, min_strength)
    return out


@nb.njit(cache=True, nogil=True)
def strong_labels(lab, region, nlab):  # pragma: no cover - compiled
    """Whether each component 0..nlab of ``lab`` holds a pixel with ``region == 2``."""
    m = lab.shape[0]
    n = lab.shape[1]
    strong = np.zeros(nlab + 1, np.bool_)
    for i in range(m):
        for j in range(n):
            if region[i, j] == 2:
                strong[lab[i, j]] = True
    strong[0] = False
    return strong


@nb.njit(cache=True, nogil=True, parallel=True)
def keep_in_labels(cand, lab, keep):  # pragma: no cover - compiled
    """Set ``cand`` to 0 outside the components whose ``keep`` is True (in place)."""
    m = cand.shape[0]
    n = cand.shape[1]
    for i in nb.prange(m):
        for j in range(n):
            if cand[i, j] != 0 and not keep[lab[i, j]]:
                cand[i, j] = 0
    return cand


@nb.njit(cache=True, nogil=True, parallel=True)
def mark_in_labels(cand, lab, keep, weak):  # pragma: no cover - compiled
    """Set ``cand`` to 0 outside the components whose ``keep`` or ``weak`` is True and to 3
    (a weak band's candidate) inside those only ``weak`` is True for (in place)."""
    m = cand.shape[0]
    n = cand.shape[1]
    for i in nb.prange(m):
        for j in range(n):
            if cand[i, j] != 0:
                k = lab[i, j]
                if not keep[k]:
                    cand[i, j] = 3 if weak[k] else 0
    return cand


@nb.njit(cache=True, nogil=True, parallel=True)
def split_in_labels(cand, lab, code, weak_mark, band, cand_kept, cand_marked):  # pragma: no cover - compiled
    """One pass over the components ``lab`` of a band map with a code each (``code``: 1 a kept
    band, 3 a weak one, 0 neither): ``band`` the code at each pixel, ``cand_kept`` ``cand``
    inside the code-1 bands (0 elsewhere), ``cand_marked`` that and ``weak_mark`` at ``cand``'s
    nonzero pixels inside the code-3 bands (as :func:`mark_in_labels` marks them)."""
    m = cand.shape[0]
    n = cand.shape[1]
    for i in nb.prange(m):
        for j in range(n):
            c = code[lab[i, j]]
            band[i, j] = c
            v = cand[i, j]
            if c == 1:
                cand_kept[i, j] = v
                cand_marked[i, j] = v
            else:
                cand_kept[i, j] = 0
                cand_marked[i, j] = weak_mark if c == 3 and v != 0 else 0
    return band


@nb.njit(cache=True, nogil=True)
def bridge_gaps(mask, max_gap):  # pragma: no cover - compiled
    """Join chain ends across gaps of up to ``max_gap`` pixels, in place (uint8 (M, N), 0/1).

    An end (a pixel with at most one 8-neighbour) looks ahead (away from its neighbour) for
    the nearest chain pixel at Chebyshev distance 2 .. max_gap + 1 that is not next to its own
    neighbour, and the straight pixels between them are set. Raster order, sequential:
    deterministic. Returns the number of gaps bridged.
    """
    m = mask.shape[0]
    n = mask.shape[1]
    bridged = 0
    reach = max_gap + 1
    for i in range(m):
        for j in range(n):
            if mask[i, j] == 0:
                continue
            cnt = 0
            ny = 0
            nx = 0
            for di in range(-1, 2):
                for dj in range(-1, 2):
                    if di == 0 and dj == 0:
                        continue
                    yy = i + di
                    xx = j + dj
                    if 0 <= yy < m and 0 <= xx < n and mask[yy, xx] != 0:
                        cnt += 1
                        ny = yy
                        nx = xx
            if cnt > 1:
                continue
            best = 1e9
            by = -1
            bx = -1
            for di in range(-reach, reach + 1):
                for dj in range(-reach, reach + 1):
                    if max(abs(di), abs(dj)) < 2:
                        continue
                    yy = i + di
                    xx = j + dj
                    if not (0 <= yy < m and 0 <= xx < n) or mask[yy, xx] == 0:
                        continue
                    if cnt == 1:
                        # ahead of the end, and not part of its own chain's next pixels
                        if di * (i - ny) + dj * (j - nx) <= 0:
                            continue
                        if abs(yy - ny) <= 1 and abs(xx - nx) <= 1:
                            continue
                    d2 = di * di + dj * dj
                    if d2 < best:
                        best = d2
                        by = yy
                        bx = xx
            if by < 0:
                continue
            steps = max(abs(by - i), abs(bx - j))
            for t in range(1, steps):
                yy = int(round(i + (by - i) * t / steps))
                xx = int(round(j + (bx - j) * t / steps))
                mask[yy, xx] = 1
            bridged += 1
    return bridged


@nb.njit(cache=True, nogil=True)
def snap_to_crest(cand, q, normal_y, normal_x, scale_px, min_level_sigma, out):  # pragma: no cover - compiled
    """Move each candidate to the sub-pixel crest of ``q`` along its normal, into ``out``.

    The crest is the vertex of the parabola through ``q`` at -h, 0 and +h along the normal,
    ``h`` being the pixel step of the pyramid level the point's scale was computed on
    (``2**floor(log2(scale / min_level_sigma))``, at least 1): coarse scales are interpolated
    from a grid of that step, on which non-maximum suppression alone puts the centre of a wide
    vessel on the grid's rows or columns, a staircase of parallel dashes. ``out`` (uint8, zero on
    entry) gets the candidate's value at the rounded crest position. Returns ``out``.
    """
    m = cand.shape[0]
    n = cand.shape[1]
    for i in range(m):
        for j in range(n):
            c = cand[i, j]
            if c == 0:
                continue
            s = scale_px[i, j]
            h = 1.0
            r = s / min_level_sigma
            while h * 2.0 <= r:
                h *= 2.0
            ny = normal_y[i, j]
            nx = normal_x[i, j]
            q0 = q[i, j]
            qm = _bilinear(q, i - h * ny, j - h * nx)
            qp = _bilinear(q, i + h * ny, j + h * nx)
            den = qp - 2.0 * q0 + qm
            t = 0.0
            if den < 0.0:
                t = -h * (qp - qm) / (2.0 * den)
                if t > h:
                    t = h
                elif t < -h:
                    t = -h
            y = int(round(i + t * ny))
            x = int(round(j + t * nx))
            y = min(max(y, 0), m - 1)
            x = min(max(x, 0), n - 1)
            if c > out[y, x]:
                out[y, x] = c
    return out


@nb.njit(cache=True, nogil=True)
def drop_covered_chains(ys, xs, radius, members, starts, order, mask, max_covered, judged):  # pragma: no cover - compiled
    """Which chains add a vessel of their own, longest first.

    Chain ``c`` holds the points ``members[starts[c]:starts[c + 1]]``. Chains are visited in
    ``order``; a chain with more than ``max_covered`` of its ``judged`` points ((K,) bool) inside
    the discs (radius ``radius`` per point) of the chains kept before it repeats a vessel
    already found (the clutter of ridge points at the blunt end of a wide vessel, a parallel
    crest inside it) and is dropped; otherwise the discs of all its points are painted into
    ``mask`` (uint8 (M, N), zero on entry). Returns a bool array, True for the chains kept.
    """
    m = mask.shape[0]
    n = mask.shape[1]
    nchain = starts.shape[0] - 1
    keep = np.ones(nchain, np.bool_)
    for c in order:
        a = starts[c]
        b = starts[c + 1]
        if b <= a:
            continue
        cnt = 0
        tot = 0
        for k in range(a, b):
            p = members[k]
            if judged[p]:
                tot += 1
                if mask[ys[p], xs[p]] != 0:
                    cnt += 1
        if cnt > max_covered * tot:
            keep[c] = False
            continue
        for k in range(a, b):
            p = members[k]
            r = radius[p]
            cy = ys[p]
            cx = xs[p]
            r2 = r * r
            i0, i1, j0, j1 = _disc_box(cy, cx, r, m, n)
            for i in range(i0, i1 + 1):
                for j in range(j0, j1 + 1):
                    if (i - cy) * (i - cy) + (j - cx) * (j - cx) <= r2:
                        mask[i, j] = 1
    return keep


@nb.njit(cache=True, nogil=True)
def window_median(ys, xs, vals, r, m):  # pragma: no cover - compiled
    """Median of ``vals`` over the points within the (2r+1)^2 window of each point.

    Points (ys, xs) are sorted row-major, unique, inside rows 0..m-1; NaN values are skipped
    (a point whose window holds no finite value gets NaN). Robust where a mean is not: one
    failed fit among the neighbours (a wide vessel's profile read as a hair-thin one) does not
    pull the smoothed diameter.
    """
    k = ys.shape[0]
    starts = _row_starts(ys, m)
    out = np.empty(k, np.float32)
    buf = np.empty(max(1, (2 * r + 1) * (2 * r + 1)), np.float64)
    for i in range(k):
        y = ys[i]
        x = xs[i]
        cnt = 0
        for yy in range(max(0, y - r), min(m - 1, y + r) + 1):
            lo, hi = _row_span(xs, starts, yy, x - r, x + r)
            for p in range(lo, hi):
                v = vals[p]
                if v == v:
                    buf[cnt] = v
                    cnt += 1
        out[i] = np.median(buf[:cnt]) if cnt > 0 else np.nan
    return out


@nb.njit(cache=True, nogil=True)
def free_ends(ys, xs, chain, m, dir_px):  # pragma: no cover - compiled
    """Free chain ends and their outward directions.

    Points (ys, xs) are sorted row-major and unique, ``chain`` their chain ids. A free end has
    exactly one 8-neighbour of its own chain; its outward direction is the unit vector from
    the mean of its own chain's points within ``dir_px`` (a (2 dir_px + 1)^2 window) to the
    end. Returns ``is_end`` (bool) and ``out_y``, ``out_x`` (0 where not an end, or where the
    direction is undefined).
    """
    k = ys.shape[0]
    starts = _row_starts(ys, m)
    is_end = np.zeros(k, np.bool_)
    out_y = np.zeros(k, np.float64)
    out_x = np.zeros(k, np.float64)
    for i in range(k):
        y = ys[i]
        x = xs[i]
        c = chain[i]
        deg = 0
        sy = 0.0
        sx = 0.0
        cnt = 0
        for yy in range(max(0, y - dir_px), min(m - 1, y + dir_px) + 1):
            lo, hi = _row_span(xs, starts, yy, x - dir_px, x + dir_px)
            for p in range(lo, hi):
                if chain[p] != c:
                    continue
                sy += ys[p]
                sx += xs[p]
                cnt += 1
                if p != i and abs(ys[p] - y) <= 1 and abs(xs[p] - x) <= 1:
                    deg += 1
        if deg != 1:
            continue
        uy = y - sy / cnt
        ux = x - sx / cnt
        un = math.sqrt(uy * uy + ux * ux)
        if un < 0.5:
            continue
        is_end[i] = True
        out_y[i] = uy / un
        out_x[i] = ux / un
    return is_end, out_y, out_x


@nb.njit(cache=True, nogil=True)
def end_links(ys, xs, chain, width, normal_y, normal_x, is_end, out_y, out_x, m, cos_min, max_width):  # pragma: no cover - compiled
    """For each free end of a chain, the nearest point of another chain just ahead of it.

    Points (ys, xs) are sorted row-major and unique, ``chain`` their chain ids, ``width``
    their diameters (px, NaN: none), ``normal_y``, ``normal_x`` the unit normals across the
    vessel, ``is_end``, ``out_y``, ``out_x`` from :func:`free_ends`. A point ``q`` of another
    chain is a target of the end ``e`` when it lies within ``cos_min`` (cosine) of ``e``'s
    outward direction, no farther than ``e``'s own diameter plus half of ``q``'s (the two
    painted discs at most half ``e``'s diameter apart), and the link either crosses ``q``'s
    vessel (meets it at more than 45 degrees: a branch joining it) or ends at a free end of
    ``q``'s chain that faces back within ``cos_min`` (two pieces of one vessel). A link
    running along the other vessel (a stub beside it) is not one, nor is a link to a chain
    with a point nearer than 0.7 times the link (the end lies beside that chain: a parallel
    crest overlapping it), nor a link that crosses ``q``'s vessel from inside it (the end
    closer to ``q`` than half ``q``'s diameter: a stub in it). ``max_width`` bounds the
    widths searched for. Returns ``target`` (index of the nearest target, -1 for none) and
    ``gap`` (its distance, px; 0 where none).
    """
    k = ys.shape[0]
    starts = _row_starts(ys, m)
    target = np.full(k, -1, np.int64)
    gap = np.zeros(k, np.float64)
    for i in range(k):
        wi = width[i]
        if not is_end[i] or not (wi > 0.0):
            continue
        y = ys[i]
        x = xs[i]
        c = chain[i]
        uy = out_y[i]
        ux = out_x[i]
        r = int(math.ceil(wi + 0.5 * max_width))
        best = np.inf
        cross = False
        for yy in range(max(0, y - r), min(m - 1, y + r) + 1):
            lo, hi = _row_span(xs, starts, yy, x - r, x + r)
            for p in range(lo, hi):
                if chain[p] == c:
                    continue
                wp = width[p]
                lim = wi + 0.5 * (wp if wp > 0.0 else 0.0)
                vy = float(ys[p] - y)
                vx = float(xs[p] - x)
                d = math.sqrt(vy * vy + vx * vx)
                if d > lim or d >= best or d == 0.0:
                    continue
                if vy * uy + vx * ux < cos_min * d:
                    continue
                # along q's vessel (tangent = normal turned by 90 degrees)?
                along = abs(vy * normal_x[p] - vx * normal_y[p]) / d
                if along > 0.7071067811865476:
                    if not is_end[p] or -(vy * out_y[p] + vx * out_x[p]) < cos_min * d:
                        continue
                best = d
                target[i] = p
                cross = along <= 0.7071067811865476
        if target[i] < 0:
            continue
        # the end must face the other chain, not lie beside it: no point of that chain much
        # nearer than the target (outside the cone: a parallel crest overlapping this one);
        # and a branch must reach the other vessel from outside it (not a stub inside it)
        ct = chain[target[i]]
        near = 0.7 * best
        r = int(math.ceil(max(near, 0.5 * max_width if cross else 0.0)))
        for yy in range(max(0, y - r), min(m - 1, y + r) + 1):
            lo, hi = _row_span(xs, starts, yy, x - r, x + r)
            for p in range(lo, hi):
                if chain[p] != ct:
                    continue
                d2 = float((ys[p] - y) ** 2 + (xs[p] - x) ** 2)
                wp = width[p]
                if d2 < near * near or (cross and wp > 0.0 and d2 < 0.25 * wp * wp):
                    target[i] = -1
                    break
            if target[i] < 0:
                break
        if target[i] >= 0:
            gap[i] = best
    return target, gap


@nb.njit(cache=True, nogil=True)
def path_ranks(nbr, branch, n_branch):  # pragma: no cover - compiled
    """Each point's position along its branch: (S,) int64, -1 off every branch.

    ``nbr`` (S, 8) holds each point's 8-neighbours' indices (-1: none) and ``branch`` (S,) its
    branch id (0 .. ``n_branch`` - 1, negative: none); a branch is a chain between junctions, a
    path. The walk starts at the branch's first point (in the given order) with at most one
    neighbour on the branch (an end; its first point on a loop) and steps to an unvisited
    neighbour on the branch, a 4-neighbour before a diagonal one (a step's corner pixel); where
    it stops short it restarts at the branch's next unvisited end (or point) and the ranks go on.
    """
    s = branch.shape[0]
    rank = np.full(s, -1, np.int64)
    deg = np.zeros(s, np.int64)
    for i in range(s):
        if branch[i] < 0:
            continue
        for j in range(8):
            q = nbr[i, j]
            if q >= 0 and branch[q] == branch[i]:
                deg[i] += 1
    nxt = np.zeros(n_branch, np.int64)  # next rank per branch
    # ends first, then the rest (loops, and points a walk left behind), each in the given order
    for phase in range(2):
        for i in range(s):
            b = branch[i]
            if b < 0 or rank[i] >= 0 or (phase == 0 and deg[i] > 1):
                continue
            p = i
            while p >= 0:
                rank[p] = nxt[b]
                nxt[b] += 1
                q_next = -1
                for j in (1, 3, 4, 6, 0, 2, 5, 7):  # 4-neighbours first
                    q = nbr[p, j]
                    if q >= 0 and branch[q] == b and rank[q] < 0:
                        q_next = q
                        break
                p = q_next
    return rank


@nb.njit(cache=True, nogil=True)
def neighbour_index(key, cols, n):  # pragma: no cover - compiled
    """(S, 8) index of each point's 8-neighbours among the points, -1 where there is none.

    ``key`` (S,) int64 is row * ``n`` + column, strictly increasing (points sorted row-major),
    ``cols`` (S,) int64 the columns. The neighbours come in the order (dy, dx) = (-1, -1),
    (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1). The rows above and below are
    found by a binary search for their leftmost key, the row's own neighbours beside the point.
    """
    s = key.shape[0]
    out = np.full((s, 8), -1, np.int64)
    for i in range(s):
        x = cols[i]
        j = 0
        for dy in (-1, 0, 1):
            if dy == 0:
                if x >= 1 and i >= 1 and key[i - 1] == key[i] - 1:
                    out[i, 3] = i - 1
                if x + 1 < n and i + 1 < s and key[i + 1] == key[i] + 1:
                    out[i, 4] = i + 1
                j = 5
                continue
            lo_key = key[i] + dy * n - 1
            # first index with key >= lo_key, searched on the side of i where that row lies
            if dy < 0:
                lo, hi = 0, i
            else:
                lo, hi = i + 1, s
            while lo < hi:
                mid = (lo + hi) >> 1
                if key[mid] < lo_key:
                    lo = mid + 1
                else:
                    hi = mid
            for dx in (-1, 0, 1):
                target = lo_key + 1 + dx
                while lo < s and key[lo] < target:
                    lo += 1
                if lo < s and key[lo] == target and 0 <= x + dx < n:
                    out[i, j] = lo
                j += 1
    return out


@nb.njit(cache=True, nogil=True)
def junction_branches(key, cols, n, chain):  # pragma: no cover - compiled
    """Chains split at their junctions: (branch (S,) int64, number of branches B, the points'
    8-neighbours (S, 8) int64 as :func:`neighbour_index` gives them).

    ``key``, ``cols`` and ``n`` are as for :func:`neighbour_index`, ``chain`` (S,) is each
    point's chain id. A point with 3 or more 8-neighbours in its chain is a junction (branch
    -2); the other points are joined to their 8-neighbours of the same chain that are not
    junctions, and each connected set is a branch, numbered 0 .. B - 1 in the order of its
    first point (an 8-connected component named by its smallest index, the ids in order).
    """
    nbr = neighbour_index(key, cols, n)
    s = chain.shape[0]
    branch = np.full(s, -1, np.int64)
    for i in range(s):
        deg = 0
        for j in range(8):
            q = nbr[i, j]
            if q >= 0 and chain[q] == chain[i]:
                deg += 1
        if deg >= 3:
            branch[i] = -2
    n_branch = _label_runs(nbr, chain, branch)
    return branch, n_branch, nbr


@nb.njit(cache=True, nogil=True)
def _label_runs(nbr, chain, label):  # pragma: no cover - compiled
    """Number the 8-connected sets of unlabelled points (``label`` -1) of one chain 0, 1, ... in
    the order of each set's first point, in place (points labelled otherwise, e.g. -2, stay
    out); return how many. ``nbr`` (S, 8) is each point's neighbour index (-1: none)."""
    s = chain.shape[0]
    stack = np.empty(s, np.int64)
    n_run = 0
    for i in range(s):
        if label[i] != -1:
            continue
        label[i] = n_run
        stack[0] = i
        top = 1
        while top > 0:
            top -= 1
            p = stack[top]
            for j in range(8):
                q = nbr[p, j]
                if q >= 0 and label[q] == -1 and chain[q] == chain[p]:
                    label[q] = n_run
                    stack[top] = q
                    top += 1
        n_run += 1
    return n_run


@nb.njit(cache=True, nogil=True)
def follow_detected(key, cols, n, chain, core, red):  # pragma: no cover - compiled
    """The colour ``red`` (S,) bool with each run of tracked points given the majority colour
    of the detected points it touches: (S,) bool.

    ``key``, ``cols`` and ``n`` are as for :func:`neighbour_index`, ``chain`` (S,) is each
    point's chain id and ``core`` (S,) bool whether it was detected (else tracked). A run is an 8-connected
    set of tracked points of one chain; its votes are its points' 8-neighbours that are
    detected points of the same chain (a detected point counts once per tracked neighbour).
    A run takes red when at least half of its votes are red (a tie reads red); a run without
    votes keeps its colours.
    """
    nbr = neighbour_index(key, cols, n)
    s = chain.shape[0]
    run = np.where(core, -2, -1).astype(np.int64)  # detected points are in no run
    n_run = _label_runs(nbr, chain, run)
    votes = np.zeros(n_run, np.int64)
    reds = np.zeros(n_run, np.int64)
    for i in range(s):
        if core[i]:
            continue
        for j in range(8):
            q = nbr[i, j]
            if q >= 0 and core[q] and chain[q] == chain[i]:
                votes[run[i]] += 1
                if red[q]:
                    reds[run[i]] += 1
    out = red.copy()
    for i in range(s):
        if not core[i] and votes[run[i]] > 0:
            out[i] = 2 * reds[run[i]] >= votes[run[i]]
    return out


@nb.njit(cache=True, nogil=True)
def value_runs(key, cols, n, value):  # pragma: no cover - compiled
    """8-connected runs of points with the same ``value``: (run id (S,) int64, number of runs).

    ``key``, ``cols`` and ``n`` are as for :func:`neighbour_index`; ``value`` (S,) int64 is each
    point's value (e.g. chain id and colour together), negative: in no run (-1). Runs are
    numbered 0, 1, ... in the order of their first point.
    """
    nbr = neighbour_index(key, cols, n)
    label = np.where(value < 0, -2, -1).astype(np.int64)
    n_run = _label_runs(nbr, value, label)
    for i in range(label.shape[0]):
        if label[i] < 0:
            label[i] = -1
    return label, n_run
