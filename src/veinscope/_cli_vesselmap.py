"""``veinscope vesselmap``: DIR/<stem>_score.png (16-bit) and DIR/<stem>_mask.png (0/255)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

__all__ = ["run_vesselmap"]


def _read(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from veinscope.io import _heif_available, _is_heif

    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if not head:
            raise ValueError("the file is empty (0 bytes)")
        if _is_heif(head) and not _heif_available():
            raise ValueError("a HEIC/HEIF image, and the HEIC reader (pillow-heif) is not installed")
        with Image.open(path) as im:
            im.seek(0)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return np.asarray(im)
            return np.asarray(im.convert("RGB") if im.mode not in ("L", "1") else im.convert("L"))
    except FileNotFoundError:
        raise ValueError("the file does not exist") from None
    except IsADirectoryError:
        raise ValueError("a folder, not an image") from None
    except UnidentifiedImageError:
        raise ValueError("not an image file that can be read (PNG, JPEG, TIFF, WebP, BMP, GIF or HEIC)") from None
    except (OSError, SyntaxError):
        raise ValueError("the image file is damaged or incomplete (cut off while copying?)") from None


def run_vesselmap(args) -> int:
    from PIL import Image

    from veinscope.vesselmap import vesselmap

    fov = None
    if args.fov is not None:
        try:
            fov_img = _read(args.fov)
        except ValueError as exc:
            print(f"{args.fov}: {exc}", file=sys.stderr)
            return 2
        fov = (fov_img if fov_img.ndim == 2 else fov_img.max(axis=2)) > 0
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in args.images:
        path = Path(name)
        try:
            img = _read(path)
            if fov is not None and fov.shape != img.shape[:2]:
                raise ValueError(f"the FOV mask is {fov.shape[1]}x{fov.shape[0]}, the image {img.shape[1]}x{img.shape[0]}")
            res = vesselmap(img, fov=fov, bright=getattr(args, "bright", False))
        except ValueError as exc:
            failed += 1
            print(f"{path.name}: {exc}", file=sys.stderr)
            continue
        score16 = np.round(res.score * 65535).astype(np.uint16)
        Image.fromarray(score16).save(args.out / f"{path.stem}_score.png")
        Image.fromarray(res.mask.astype(np.uint8) * 255).save(args.out / f"{path.stem}_mask.png")
        print(f"{path.name}: {res.mask.mean() * 100:.1f} % vessel -> {args.out}")
    return 1 if failed else 0
