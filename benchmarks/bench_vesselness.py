"""Speed and agreement of :func:`veinscope.vesselness.vesselness` (results: vesselness.md).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_vesselness.py            # everything
    .venv/bin/python benchmarks/bench_vesselness.py --only speed --runs 11 --skimage-runs 2
    .venv/bin/python benchmarks/bench_vesselness.py --only agreement

Speed: a 3000 x 4000 float32 image (smooth random texture plus dark curved lines and noise),
6 scales geometric from 1 to 8 px, timed warm (kernels compiled, one untimed call first);
medians of ``--runs`` runs for VeinScope and the OpenCV/numpy baselines, interleaved so that
they see the same machine load, and of ``--skimage-runs`` runs of ``skimage.filters.frangi``
(each beside a VeinScope run). Every run reports the wall time and, from Linux
``/proc/self/task/*/schedstat``, the busiest thread's on-CPU time and run-queue wait: on a
machine shared with other jobs the busiest thread's on-CPU time is the wall time to expect on
idle cores.

The OpenCV/numpy baseline computes the same filter at full resolution for every scale:
``cv2.sepFilter2D`` with the same separable derivative kernels (BORDER_REFLECT, float32,
OpenCV's own threads), then the eigenvalues and the Frangi formula in float32 numpy with
in-place operations. A second, cheaper baseline (``cv2.GaussianBlur`` then 3x3 ``cv2.Sobel``
second derivatives, an approximation) is timed too.

Agreement: Pearson correlation with scikit-image's ``frangi`` over the whole image and away
from the border (3 sigma_max), on synthetic and real images (``../shared/data`` images are
used when present).
"""

from __future__ import annotations

import argparse
import glob
import importlib
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SIGMAS = tuple(float(s) for s in np.geomspace(1.0, 8.0, 6))


# --------------------------------------------------------------------------------------
# test images
# --------------------------------------------------------------------------------------
def synthetic_vessels(shape=(3000, 4000), n_lines=60, seed=0) -> np.ndarray:
    """Bright textured background, dark sinuous lines of 1-24 px width, Gaussian noise."""
    rng = np.random.default_rng(seed)
    m, n = shape
    import cv2

    # low-frequency texture
    small = rng.random((m // 50 + 2, n // 50 + 2)).astype(np.float32)
    img = 0.7 + 0.1 * cv2.resize(small, (n, m), interpolation=cv2.INTER_CUBIC)
    yy = np.arange(m, dtype=np.float32)[:, None]
    xx = np.arange(n, dtype=np.float32)[None, :]
    for _ in range(n_lines):
        width = rng.uniform(1.0, 24.0)
        ang = rng.uniform(0, np.pi)
        c, s = math.cos(ang), math.sin(ang)
        off = rng.uniform(-0.45, 0.45) * min(m, n)
        amp = rng.uniform(0, 60)
        per = rng.uniform(200, 1500)
        u = (xx - n / 2) * c + (yy - m / 2) * s
        v = -(xx - n / 2) * s + (yy - m / 2) * c - off - amp * np.sin(2 * np.pi * u / per)
        img -= rng.uniform(0.03, 0.25) * np.exp(-0.5 * (v / (width / 2)) ** 2)
    img += rng.normal(0, 0.02, shape).astype(np.float32)
    return img.astype(np.float32)


def agreement_images() -> dict[str, np.ndarray]:
    from skimage import data, transform

    out = {
        "synthetic lines + noise": synthetic_vessels((600, 800), n_lines=25, seed=1),
        "skimage camera": data.camera().astype(np.float32) / 255,
        "skimage retina (green, 1/2)": transform.rescale(
            data.retina()[..., 1].astype(np.float32) / 255, 0.5, anti_aliasing=True
        ).astype(np.float32),
        "skimage coins": data.coins().astype(np.float32) / 255,
    }
    from PIL import Image

    # local evaluation data (../shared/data): read only, skipped when absent
    leg = SHARED / "legs-dev" / "veins_01.jpg"
    if leg.exists():
        out["legs-dev veins_01 (green)"] = np.asarray(Image.open(leg).convert("RGB"))[..., 1].astype(np.float32) / 255
    drive = SHARED / "drive-train" / "images" / "21_training.tif"
    if drive.exists():
        out["DRIVE 21_training (green)"] = np.asarray(Image.open(drive).convert("RGB"))[..., 1].astype(np.float32) / 255
    return out


# --------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------
def opencv_frangi(img, sigmas=SIGMAS, beta=0.5, black_ridges=True):
    """Same filter, full resolution per scale: cv2.sepFilter2D + float32 numpy maths."""
    import cv2

    vs = importlib.import_module("veinscope.vesselness")
    src = np.asarray(img, np.float32)
    if not black_ridges:
        src = -src
    out = np.zeros(src.shape, np.float32)
    cb = np.float32(1.0 / (2.0 * beta * beta))
    for sigma in sigmas:
        h0, h1, h2 = vs._derivative_kernels(sigma)
        k0 = np.concatenate([h0[:0:-1], h0]).astype(np.float32)
        k1 = np.concatenate([-h1[:0:-1], h1]).astype(np.float32)
        k2 = np.concatenate([h2[:0:-1], h2]).astype(np.float32)
        # filter2D correlates: flip the (anti)symmetric kernels to convolve
        hrr = cv2.sepFilter2D(src, cv2.CV_32F, k0, k2, borderType=cv2.BORDER_REFLECT)
        hrc = cv2.sepFilter2D(src, cv2.CV_32F, k1[::-1].copy(), k1[::-1].copy(), borderType=cv2.BORDER_REFLECT)
        hcc = cv2.sepFilter2D(src, cv2.CV_32F, k2, k0, borderType=cv2.BORDER_REFLECT)
        _frangi_numpy(hrr, hrc, hcc, np.float32(sigma * sigma), cb, out)
    return out


def opencv_sobel_frangi(img, sigmas=SIGMAS, beta=0.5):
    """Cheaper variant: cv2.GaussianBlur then 3x3 Sobel second derivatives (an approximation)."""
    import cv2

    src = np.asarray(img, np.float32)
    out = np.zeros(src.shape, np.float32)
    cb = np.float32(1.0 / (2.0 * beta * beta))
    for sigma in sigmas:
        g = cv2.GaussianBlur(src, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        hrr = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3, borderType=cv2.BORDER_REFLECT)
        hcc = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
        hrc = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
        hrc *= np.float32(0.25)
        _frangi_numpy(hrr, hrc, hcc, np.float32(sigma * sigma), cb, out)
    return out


def _frangi_numpy(hrr, hrc, hcc, k, cb, out):
    """Frangi (dark ridges, gamma = half the max norm) folded into ``out``; consumes inputs."""
    hrr *= k
    hrc *= k
    hcc *= k
    mean = hrr + hcc
    mean *= np.float32(0.5)
    hd = np.subtract(hrr, hcc, out=hrr)
    hd *= np.float32(0.5)
    d = np.multiply(hd, hd, out=hd)
    d += np.multiply(hrc, hrc, out=hrc)
    np.sqrt(d, out=d)
    l2 = np.add(mean, d, out=hcc)
    l1 = np.subtract(mean, d, out=d)
    s2 = l1 * l1
    s2 += l2 * l2
    gamma2 = np.float32(s2.max() / 4.0) or np.float32(1.0)
    rb = np.divide(l1, np.maximum(l2, np.float32(1e-30)), out=l1)
    np.clip(rb, -1e3, 1e3, out=rb)  # only where l2 <= 0, zeroed below
    rb *= rb
    rb *= -cb
    v = np.exp(rb, out=rb)
    s2 *= np.float32(-1.0 / (2.0 * gamma2))
    np.exp(s2, out=s2)
    np.subtract(np.float32(1.0), s2, out=s2)
    v *= s2
    v[mean <= 0] = 0
    np.maximum(out, v, out=out)


def skimage_frangi_per_scale(img, sigmas=SIGMAS, black_ridges=True):
    """skimage's frangi called once per scale (gamma = half the max norm of that scale)."""
    from skimage.filters import frangi

    img = np.asarray(img, np.float64)
    return np.max([frangi(img, sigmas=[s], black_ridges=black_ridges) for s in sigmas], axis=0)


# --------------------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------------------
class _ThreadClock:
    """Wall time, and per-thread on-CPU and run-queue-wait time of this process (Linux
    ``/proc/self/task/*/schedstat``, nanoseconds). On a machine shared with other jobs the
    busiest thread's on-CPU time is what the wall time would be on idle cores; the wait is
    what the other jobs cost."""

    def _read(self):
        out = {}
        for path in glob.glob("/proc/self/task/*/schedstat"):
            try:
                with open(path) as fh:
                    run, wait, _ = (int(v) for v in fh.read().split())
            except (OSError, ValueError):
                continue
            out[path] = (run, wait)
        return out

    def __enter__(self):
        self.before = self._read()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        after = self._read()
        runs = {k: (after[k][0] - v[0]) / 1e9 for k, v in self.before.items() if k in after}
        waits = {k: (after[k][1] - v[1]) / 1e9 for k, v in self.before.items() if k in after}
        busiest = max(runs, key=runs.get) if runs else None
        self.cpu_total = sum(runs.values())
        self.cpu_busiest = runs[busiest] if busiest else float("nan")
        self.wait_busiest = waits[busiest] if busiest else float("nan")
        return False


def _measure(fn, runs):
    out = []
    for _ in range(runs):
        with _ThreadClock() as clock:
            fn()
        out.append(clock)
    return out


def _summary(name, clocks, ref=None):
    med = statistics.median
    wall = med(c.wall for c in clocks)
    busy = med(c.cpu_busiest for c in clocks)
    line = (f"{name:28s} wall median {wall:7.3f} s (min {min(c.wall for c in clocks):.3f}, n={len(clocks)}) | "
            f"busiest thread on-CPU median {busy:6.3f} s, run-queue wait {med(c.wait_busiest for c in clocks):.3f} s, "
            f"all threads CPU {med(c.cpu_total for c in clocks):.3f} s")
    if ref is not None:
        line += (f" | vs veinscope: wall x{wall / med(c.wall for c in ref):.1f}, "
                 f"busiest-thread CPU x{busy / med(c.cpu_busiest for c in ref):.1f}")
    print(line)


def corr(a, b, border=0):
    if border:
        a = a[border:-border, border:-border]
        b = b[border:-border, border:-border]
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def speed(args):
    import cv2
    import numba

    vs = importlib.import_module("veinscope.vesselness")
    cv2.setNumThreads(args.threads)
    numba.set_num_threads(args.threads)
    img = synthetic_vessels((args.rows, args.cols))
    print(f"# image {img.shape} {img.dtype}, sigmas {', '.join(f'{s:.3g}' for s in SIGMAS)}, "
          f"Numba/OpenCV threads {args.threads}, load average before: {os.getloadavg()[0]:.2f}")
    t = time.perf_counter()
    vs.warmup()
    print(f"warmup() in this process (cache warm): {time.perf_counter() - t:.2f} s")
    vs.vesselness(img, sigmas_px=SIGMAS)
    opencv_frangi(img)
    ours, ocv, ocv_sobel = [], [], []
    for _ in range(args.runs):  # interleaved: the same machine load for all
        ours += _measure(lambda: vs.vesselness(img, sigmas_px=SIGMAS), 1)
        ocv += _measure(lambda: opencv_frangi(img), 1)
        ocv_sobel += _measure(lambda: opencv_sobel_frangi(img), 1)
    rr = _measure(lambda: vs.ridge_response(img, sigmas_px=SIGMAS), max(3, args.runs // 2))
    img64 = img.astype(np.float64)
    ours64 = _measure(lambda: vs.vesselness(img64, sigmas_px=SIGMAS), max(3, args.runs // 2))
    _summary("veinscope vesselness", ours)
    _summary("veinscope vesselness (f64 in)", ours64)
    _summary("veinscope ridge_response", rr)
    _summary("OpenCV sepFilter2D + numpy", ocv, ours)
    _summary("OpenCV Blur+Sobel + numpy", ocv_sobel, ours)
    if args.skimage_runs:
        from skimage.filters import frangi

        sk, ours2 = [], []
        for _ in range(args.skimage_runs):
            sk += _measure(lambda: frangi(img64, sigmas=SIGMAS, black_ridges=True), 1)
            ours2 += _measure(lambda: vs.vesselness(img, sigmas_px=SIGMAS), 1)
        _summary("veinscope (beside skimage)", ours2)
        _summary("skimage.filters.frangi", sk, ours2)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def agreement(args):
    from skimage.filters import frangi

    vs = importlib.import_module("veinscope.vesselness")
    border = int(math.ceil(3 * max(SIGMAS)))
    print(f"# Pearson r; interior = excluding {border} px at the border")
    print("| image | veinscope vs skimage per-scale calls: all / interior | same, veinscope without pyramid "
          "| veinscope vs veinscope without pyramid | veinscope vs skimage default multi-scale call: all / interior |")
    print("|---|---|---|---|---|")
    for name, img in agreement_images().items():
        ours = vs.vesselness(img, sigmas_px=SIGMAS)
        exact = vs._compute(img, SIGMAS, True, 0.5, None, ridge=False, pyramid=False)[0][0]
        sk = skimage_frangi_per_scale(img)
        skd = frangi(img.astype(np.float64), sigmas=SIGMAS, black_ridges=True)
        print(f"| {name} {img.shape[0]}x{img.shape[1]} | {corr(ours, sk):.4f} / {corr(ours, sk, border):.4f} "
              f"| {corr(exact, sk):.4f} / {corr(exact, sk, border):.4f} | {corr(ours, exact):.4f} "
              f"| {corr(ours, skd):.3f} / {corr(ours, skd, border):.3f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["speed", "agreement"], default=None)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--skimage-runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=3000)
    p.add_argument("--cols", type=int, default=4000)
    args = p.parse_args(argv)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    if args.only in (None, "speed"):
        speed(args)
    if args.only in (None, "agreement"):
        agreement(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
