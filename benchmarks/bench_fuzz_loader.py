"""Fuzz the photo loader: every input must load or raise PhotoError, never crash or hang.

Run:  .venv/bin/python benchmarks/bench_fuzz_loader.py [--n 100000] [--seed 0] [--timeout 10]

Seeds are real files generated here from a small colour photo: JPEG (baseline, progressive,
with EXIF orientation and GPS), PNG (8-bit, 16-bit, palette, RGBA), TIFF (8-bit, 16-bit,
LZW, multi-page), HEIC, WebP (lossy, lossless), BMP and GIF. Each fuzz input is one seed
mutated by a seeded mutator (bit flips, interesting bytes, header integers overwritten with
boundary values, chunks deleted, duplicated or inserted, truncation, splicing two seeds),
1-8 mutations stacked. A per-input alarm (``--timeout`` s) counts hangs.

Prints the count of inputs, how many loaded, how many were refused with PhotoError, the
failures (any other exception, a hang, or a PhotoError without a message), and the time.
Failing inputs are written to benchmarks/.cache/fuzz_failures/ for replay.
"""

from __future__ import annotations

import argparse
import io
import signal
import struct
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def seed_files() -> dict[str, bytes]:
    """Real encoded photos of every supported kind (small, so the fuzz runs fast)."""
    import cv2
    import tifffile
    from PIL import Image

    from veinscope.io import _heif_available

    _heif_available()
    rng = np.random.default_rng(0)
    h, w = 72, 96
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([190 + 30 * np.sin(xx / 9.0), 140 + 20 * np.cos(yy / 7.0), 120 + 15 * np.sin((xx + yy) / 11.0)], -1)
    rgb = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    out: dict[str, bytes] = {}

    def save(key, img, fmt, **kw):
        b = io.BytesIO()
        img.save(b, format=fmt, **kw)
        out[key] = b.getvalue()

    exif = im.getexif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2025:01:02 03:04:05"
    exif.get_ifd(0x8825)[2] = (52.0, 1.0, 2.0)
    save("jpeg", im, "JPEG", quality=90)
    save("jpeg_exif", im, "JPEG", quality=85, exif=exif)
    save("jpeg_progressive", im, "JPEG", quality=80, progressive=True)
    save("jpeg_cmyk", im.convert("CMYK"), "JPEG", quality=90)
    save("png", im, "PNG")
    save("png_palette", im.quantize(32), "PNG")
    save("png_rgba", im.convert("RGBA"), "PNG")
    ok, enc = cv2.imencode(".png", (rgb.astype(np.uint16) * 257)[..., ::-1])
    out["png16"] = enc.tobytes()
    save("tiff", im, "TIFF")
    save("tiff_lzw", im, "TIFF", compression="tiff_lzw")
    save("tiff_multipage", im, "TIFF", save_all=True, append_images=[im.rotate(90)])
    b = io.BytesIO()
    tifffile.imwrite(b, rgb.astype(np.uint16) * 257, photometric="rgb")
    out["tiff16"] = b.getvalue()
    save("heic", im, "HEIF", quality=80)
    save("webp", im, "WEBP", quality=80)
    save("webp_lossless", im, "WEBP", lossless=True)
    save("bmp", im, "BMP")
    save("gif", im, "GIF")
    return out


_INTERESTING_8 = (0x00, 0x01, 0x7F, 0x80, 0xFF)
_INTERESTING_32 = (0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 40000, 100000)


def mutate(data: bytes, rng: np.random.Generator, seeds: list[bytes]) -> bytes:
    """Stack 1-8 random mutations on ``data`` (deterministic for a given rng state)."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        if not b:
            b = bytearray(seeds[int(rng.integers(len(seeds)))])
        op = int(rng.integers(9))
        n = len(b)
        # header bytes are where the format's structure lives: bias half the hits there
        pos = int(rng.integers(min(n, 64))) if rng.random() < 0.5 else int(rng.integers(n))
        if op == 0:  # bit flips
            for _ in range(int(rng.integers(1, 9))):
                i = int(rng.integers(n))
                b[i] ^= 1 << int(rng.integers(8))
        elif op == 1:  # interesting byte
            b[pos] = _INTERESTING_8[int(rng.integers(len(_INTERESTING_8)))]
        elif op == 2 and n >= 4:  # interesting 16/32-bit integer, either endianness
            v = _INTERESTING_32[int(rng.integers(len(_INTERESTING_32)))]
            size = 2 if rng.random() < 0.5 else 4
            fmt = ("<" if rng.random() < 0.5 else ">") + ("H" if size == 2 else "I")
            pos = min(pos, n - size)
            b[pos : pos + size] = struct.pack(fmt, v & (0xFFFF if size == 2 else 0xFFFFFFFF))
        elif op == 3:  # random bytes overwrite
            k = int(rng.integers(1, 33))
            b[pos : pos + k] = rng.integers(0, 256, k, dtype=np.uint8).tobytes()
        elif op == 4:  # delete a chunk
            k = int(rng.integers(1, max(2, n // 8)))
            del b[pos : pos + k]
        elif op == 5:  # duplicate a chunk
            k = int(rng.integers(1, max(2, n // 8)))
            b[pos:pos] = b[pos : pos + k]
        elif op == 6:  # insert random bytes
            k = int(rng.integers(1, 65))
            b[pos:pos] = rng.integers(0, 256, k, dtype=np.uint8).tobytes()
        elif op == 7:  # truncate
            b = b[: int(rng.integers(0, n + 1))]
        else:  # splice with another seed
            other = seeds[int(rng.integers(len(seeds)))]
            cut = int(rng.integers(len(other)))
            b = b[:pos] + bytearray(other[cut:])
    return bytes(b)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run(n: int, seed: int = 0, timeout_s: float = 10.0, fail_dir: Path | None = None, progress: bool = True) -> dict:
    """Fuzz ``n`` inputs; returns counts, failures and timings."""
    import warnings

    from veinscope.errors import PhotoError
    from veinscope.io import load_photo

    seeds_by_kind = seed_files()
    kinds = sorted(seeds_by_kind)
    seeds = [seeds_by_kind[k] for k in kinds]
    for k in kinds:  # every seed itself loads
        load_photo(seeds_by_kind[k])
    rng = np.random.default_rng(seed)
    counts: Counter = Counter()
    failures: list[tuple[int, str, str]] = []
    times = np.empty(n)
    signal.signal(signal.SIGALRM, _alarm)
    t_start = time.perf_counter()
    for i in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        data = mutate(seeds_by_kind[kind], rng, seeds)
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a library warning leaking out counts as a failure too
                load_photo(data)
            counts["loaded"] += 1
        except PhotoError as exc:
            if not str(exc).strip():
                failures.append((i, kind, "PhotoError without a message"))
            counts["refused"] += 1
        except _Timeout:
            failures.append((i, kind, f"hang (> {timeout_s} s)"))
            counts["hang"] += 1
        except BaseException as exc:  # noqa: BLE001 - this is what the fuzz looks for
            failures.append((i, kind, f"{type(exc).__name__}: {exc}"[:300]))
            counts["crash"] += 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        times[i] = time.perf_counter() - t0
        if failures and fail_dir is not None and failures[-1][0] == i:
            fail_dir.mkdir(parents=True, exist_ok=True)
            (fail_dir / f"fail_{seed}_{i}_{kind}.bin").write_bytes(data)
        if progress and (i + 1) % 10000 == 0:
            print(f"  {i + 1} inputs, {time.perf_counter() - t_start:.0f} s, failures {len(failures)}", file=sys.stderr, flush=True)
    return {
        "n": n,
        "seed": seed,
        "seconds": time.perf_counter() - t_start,
        "counts": dict(counts),
        "failures": failures,
        "median_ms": float(np.median(times) * 1000),
        "max_ms": float(times.max() * 1000),
        "kinds": kinds,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    res = run(a.n, a.seed, a.timeout, fail_dir=HERE / ".cache" / "fuzz_failures")
    c = res["counts"]
    print(f"fuzzed {res['n']} inputs (seed {res['seed']}, {len(res['kinds'])} seed files: {', '.join(res['kinds'])})")
    print(f"loaded {c.get('loaded', 0)}, refused with PhotoError {c.get('refused', 0)}, "
          f"crashes {c.get('crash', 0)}, hangs {c.get('hang', 0)}")
    print(f"time {res['seconds']:.0f} s; per input median {res['median_ms']:.2f} ms, max {res['max_ms']:.0f} ms")
    for f in res["failures"][:20]:
        print("  FAIL", f)
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
