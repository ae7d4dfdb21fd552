"""Which pairs move between two ``bench_compare.py --json`` runs of the same series (issues 4 and 6).

Helper knife31's rule (session 31, after mat31's): a pair moves when its matting or its staining
area moves by more than 10 % and more than 2 mm² (the scale alone moves an area by its square,
2 % at 1 %), or its improvement by more than 2 points (it should not move). Run on two runs that
differ only in the entered scale (``--scale-factor``), it counts the pairs whose reading the scale
tips; the rows are matched by case.

    .venv/bin/python benchmarks/count_scale_moves.py /tmp/x100.json /tmp/x1001.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def area_moved(a, b) -> bool:
    """An area (mm²) moved: by more than 10 % of the larger and more than 2 mm²."""
    a, b = float(a or 0.0), float(b or 0.0)
    return abs(a - b) > 2.0 and abs(a - b) > 0.10 * max(abs(a), abs(b))


def imp_moved(a, b) -> bool:
    """An improvement (points) moved by more than 2 points, or found in one run only."""
    if a is None or b is None:
        return (a is None) != (b is None)
    return abs(float(a) - float(b)) > 2.0


def moves(rows_a: list[dict], rows_b: list[dict]) -> dict[str, list[str]]:
    """The cases whose matting, staining and improvement moved between the two runs (a case
    refused in one run only counts in all three)."""
    b_by = {r["case"]: r for r in rows_b}
    out: dict[str, list[str]] = {"matting": [], "staining": [], "improvement": []}
    for ra in rows_a:
        rb = b_by.get(ra["case"])
        if rb is None:
            continue
        if ra.get("refused") or rb.get("refused"):
            if bool(ra.get("refused")) != bool(rb.get("refused")):
                for v in out.values():
                    v.append(ra["case"])
            continue
        if area_moved(ra["matt"], rb["matt"]):
            out["matting"].append(ra["case"])
        if area_moved(ra["stain"], rb["stain"]):
            out["staining"].append(ra["case"])
        if imp_moved(ra["imp"], rb["imp"]):
            out["improvement"].append(ra["case"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="bench_compare.py --json rows (e.g. at the true scale)")
    ap.add_argument("b", help="the same series' rows at another entered scale")
    args = ap.parse_args(argv)
    m = moves(json.loads(Path(args.a).read_text()), json.loads(Path(args.b).read_text()))
    print(f"pairs moved: matting {len(m['matting'])} / staining {len(m['staining'])} / improvement {len(m['improvement'])}")
    for k, v in m.items():
        if v:
            print(f"  {k}: {', '.join(v)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
