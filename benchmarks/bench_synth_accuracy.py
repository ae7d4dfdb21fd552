"""Engine accuracy on generated leg photos with exact truth (veinscope.synth), issue 4.

Run:  .venv/bin/python benchmarks/bench_synth_accuracy.py [--n 24] [--size 1600x1200] [--seed0 400]
      [--sheet benchmarks/synth_contact_sheet.png] [--json FILE] [--set key=value ...] [--types 5 6]

Photo i (seed seed0 + i) has Fitzpatrick skin type 1 + i % 6 and, at its centre, a scale from
6, 8, 10, 12, 15 px/mm (rotating so that every skin type meets several scales); the camera's
tilt, the light, the card (when it fits in the view) and everything else are drawn. The
engine (``veinscope.analyze``) is given the true scale at the photo centre. Everything is
compared with the truth on skin, ignoring the truth's ``ignore`` pixels (vessels too faint to
see, or under hair). Photos with the card in view are analysed a second time with the scale the
engine finds on the card (``veinscope.calibrate.detect_card``; unless ``--no-card``):

- pixel Dice of the vessel masks;
- clDice (Shit et al. 2021, doi:10.1109/CVPR46437.2021.01629): harmonic mean of the share of
  the engine's centreline (skeleton) inside true vessels and of the true centreline inside
  the engine's vessels; ``ignore`` pixels are left out of both skeletons, and those the
  generator cut out of a vessel (a hair across it) are filled before the true skeleton is
  taken, so that it runs along the vessel's middle, not round the hole (:func:`truth_skeleton`;
  since session 17, +0.002 on set A's median);
- recall along length: share of the visible true centreline length (vessels >= 0.2 mm
  visible diameter) whose pixel the engine marks as vessel; centreline precision as above;
- diameter: median absolute error (mm) of the engine's diameter at detected true centreline
  points, per photo; reported for photos at >= 10 px/mm and at 6 px/mm;
- class right: share of the engine's centreline length on true vessels whose class is the
  true class;
- per-class length and area error: engine figure vs true figure, % (classes with >= 10 mm of
  true length, or >= 5 mm2 of true area);
- recall by visibility: recall along length (all visible vessels) in bands of the vessel's
  contrast against the skin around it (CIEDE2000 at its centre, the truth's ``delta_e``): 2-3
  (just visible), 3-5, 5-10 and >= 10 (plain). Summed over all photos (length-weighted), so it
  shows which vessels the engine misses: the faint ones or all of them.

Every figure is the median over photos, overall and per skin type. A contact sheet (photo,
truth overlay, engine overlay; same colours: red telangiectasia red, blue telangiectasia blue,
reticular cyan, over 3 mm magenta, truth "ignore" yellow) of one photo per skin type is
written to ``--sheet``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CLASSES = ("red_telangiectasia", "blue_telangiectasia", "reticular", "over_3mm")
#: Bands of the vessels' contrast (CIEDE2000 against the skin around them) for recall by visibility.
DE_BANDS = ((2.0, 3.0), (3.0, 5.0), (5.0, 10.0), (10.0, float("inf")))
SCALES = (6.0, 8.0, 10.0, 12.0, 15.0)


def set_a_photo(i: int, seed: int, size: tuple[int, int], cache: Path | None = None):
    """Photo ``i`` of a set as the diagnostic scripts (bench_synth_losses, bench_synth_length)
    draw it: scale ``SCALES[(i + i // 6) % 5]``, skin type ``1 + i % 6``; pickled under
    ``cache`` as ``p{seed}_{w}x{h}.pkl`` when a folder is given."""
    import pickle

    from veinscope.synth import generate_photo

    w, h = size
    path = None if cache is None else cache / f"p{seed}_{w}x{h}.pkl"
    if path is not None and path.exists():
        return pickle.loads(path.read_bytes())
    photo = generate_photo(seed=seed, size=(w, h), px_per_mm=SCALES[(i + i // 6) % len(SCALES)], skin_type=1 + i % 6)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(photo))
    return photo
def set_a_arguments(ap, *, cache: bool = False) -> None:
    """The options every set A script shares: ``--n``, ``--size``, ``--seed0``, ``--set``
    (analyze keyword=value overrides), ``--types`` (only the photos of these skin types: photo i
    has type ``1 + i % 6``, so ``--n 36 --seed0 700 --types 5 6`` is 12 dark photos) and, with
    ``cache``, ``--cache``."""
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--size", default="1600x1200")
    ap.add_argument("--seed0", type=int, default=400)
    if cache:
        ap.add_argument("--cache", type=Path, default=None, help="keep the generated photos here")
    ap.add_argument("--set", action="append", default=[], help="analyze keyword=value override")
    ap.add_argument("--types", type=int, nargs="+", default=None,
                    help="only the photos of these skin types (photo i has type 1 + i %% 6)")


def set_a_options(args) -> tuple[tuple[int, int], dict]:
    """``((w, h), analyze keyword overrides)`` from :func:`set_a_arguments`' options."""
    w, h = (int(v) for v in args.size.split("x"))
    return (w, h), analyze_options(args.set)


# analyze keywords whose value is a word (``level_rates_guard=drop+near+long``), passed on as written
WORD_OPTIONS = frozenset({"level_rates_guard"})


def analyze_options(items: list[str]) -> dict:
    """``--set`` items as analyze keywords: ``["valley_sides=true", "size_class_z=none",
    "low_noise=2.2"]`` -> ``{"valley_sides": True, "size_class_z": None, "low_noise": 2.2}``
    (true / false / none, else a number, numbers separated by commas as a tuple, or the word
    itself for the keywords in ``WORD_OPTIONS``;
    anything else stops with a message)."""
    words = {"true": True, "false": False, "none": None}
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes KEY=VALUE, got {item!r}")
        low = raw.strip().lower()
        if key.strip() in WORD_OPTIONS and low not in words:
            out[key.strip()] = raw.strip()
            continue
        if "," in low:  # a pair (or more) of numbers: ``level_rates=0.04,0.01``
            try:
                out[key.strip()] = tuple(float(v) for v in raw.split(","))
            except ValueError:
                raise SystemExit(f"--set {key}: {raw!r} is not a list of numbers") from None
            continue
        try:
            out[key.strip()] = words[low] if low in words else float(raw)
        except ValueError:
            raise SystemExit(f"--set {key}: {raw!r} is neither true, false, none nor a number") from None
    return out


def set_a_start(ap, argv=None):
    """Parse a set A script's options (``ap`` already has :func:`set_a_arguments`' and its own)
    and warm the engine up: ``(args, (w, h), analyze keyword overrides)``."""
    args = ap.parse_args(argv)
    import veinscope

    size, kw = set_a_options(args)
    veinscope.warmup()
    return args, size, kw


COLOURS = {1: (255, 30, 30), 2: (40, 90, 255), 3: (0, 230, 230), 4: (255, 0, 255)}


def set_a_analysed(args, size, kw, rec):
    """Set A's photos one by one, analysed with the options ``kw`` while the recorder ``rec``
    (its ``seen`` cleared for each photo) watches: (i, seed, photo, analysis)."""
    import veinscope

    for i in range(args.n):
        if getattr(args, "types", None) and 1 + i % 6 not in args.types:
            continue
        seed = args.seed0 + i
        photo = set_a_photo(i, seed, size, getattr(args, "cache", None))
        rec.seen.clear()
        yield i, seed, photo, veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm, **kw)


def recall_population(centrelines, shape):
    """The recall figure's population on each true centreline (``photo.centrelines``) that has any:
    ``(centreline, pop, y, x)`` with ``pop`` (K,) its visible points of a vessel >= 0.2 mm and
    ``y``, ``x`` (K,) its points rounded to pixels inside an image of ``shape`` (M, N). Shared by
    ``diag_dropped_rules.py`` and ``diag_missed_paths.py``."""
    m, n = shape[:2]
    for c in centrelines:
        pop = c["visible"] & (c["diameter_mm"] >= 0.2)
        if not pop.any():
            continue
        p = c["points_yx"]
        yield c, pop, np.clip(np.round(p[:, 0]).astype(int), 0, m - 1), np.clip(np.round(p[:, 1]).astype(int), 0, n - 1)


def truth_skeleton(truth: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """The true vessels' skeleton for clDice: (M, N) bool, no ``ignore`` pixel in it.

    ``ignore`` pixels are neither vessel nor skin to the score, but the generator cuts them out
    of the vessel they lie on (a hair across a vein, a fainter vessel crossing it that owns the
    pixels), and the skeleton of a mask with a hole runs round the hole, along the vessel's
    edges, and across it in rungs where a hair cuts it. So a hole of the vessels made of ignore
    pixels only, and the ignore pixels in a gap of them that a disc of radius 3 px closes (a
    hair is 1-3 px wide), are vessel while the skeleton is taken and left out of it afterwards:
    the skeleton runs along the vessel's middle as if the hair were not there.
    """
    from scipy import ndimage as ndi
    from skimage.morphology import disk, skeletonize

    holes, n = ndi.label(ndi.binary_fill_holes(truth) & ~truth)
    if n:  # a hole of ignore pixels only (a hole with skin in it is skin: a loop of vessels)
        skin_in = np.bincount(holes[~ignore].ravel(), minlength=n + 1)
        holes = (skin_in == 0)[holes] & (holes > 0)
    else:
        holes = np.zeros_like(truth)
    filled = truth | holes | (ignore & ndi.binary_closing(truth, structure=disk(3)))
    return skeletonize(filled) & ~ignore


def topology_parts(truth: np.ndarray, pred: np.ndarray, ignore: np.ndarray) -> tuple[float, float, np.ndarray]:
    """clDice's two halves (Shit et al. 2021): topology sensitivity (share of the true skeleton,
    :func:`truth_skeleton`, inside ``pred``) and topology precision (share of ``pred``'s skeleton
    inside ``truth``), ``ignore`` pixels left out of both skeletons; and ``pred``'s skeleton."""
    from skimage.morphology import skeletonize

    s_gt = truth_skeleton(truth, ignore)
    s_pr = skeletonize(pred) & ~ignore
    tprec = float((s_pr & truth).sum() / max(1, s_pr.sum()))
    tsens = float((s_gt & pred).sum() / max(1, s_gt.sum()))
    return tsens, tprec, s_pr


def evaluate(photo, analysis) -> dict:
    ign = photo.ignore
    skin = photo.skin_mask
    truth = photo.labels > 0
    pred = (analysis.labels > 0) & skin
    gt = truth & ~ign
    pr = pred & ~ign
    dice = 2 * (gt & pr).sum() / max(1, gt.sum() + pr.sum())
    tsens, tprec, s_pr = topology_parts(truth, pred, ign)
    cldice = 2 * tprec * tsens / max(1e-9, tprec + tsens)

    # along the true centrelines (visible points), lengths in mm
    m, n = truth.shape
    L = []
    for c in photo.centrelines:
        v = c["visible"]
        if not v.any():
            continue
        y, x = np.round(c["points_yx"][v]).astype(int).T
        y, x = y.clip(0, m - 1), x.clip(0, n - 1)
        L.append((c["length_mm"][v], c["diameter_mm"][v], y, x, c["delta_e"][v]))
    length = np.concatenate([a[0] for a in L]) if L else np.zeros(0)
    de = np.concatenate([a[4] for a in L]) if L else np.zeros(0)
    dtrue = np.concatenate([a[1] for a in L]) if L else np.zeros(0)
    yy = np.concatenate([a[2] for a in L]) if L else np.zeros(0, int)
    xx = np.concatenate([a[3] for a in L]) if L else np.zeros(0, int)
    hit = pred[yy, xx]
    big = dtrue >= 0.2
    recall02 = float(length[big & hit].sum() / max(1e-9, length[big].sum()))
    derr = np.abs(analysis.diameter_mm[yy[hit], xx[hit]] - dtrue[hit])
    derr = derr[np.isfinite(derr)]

    on = s_pr & truth
    class_ok = float((analysis.labels[on] == photo.labels[on]).mean()) if on.any() else float("nan")

    tf = photo.truth_figures()
    ef = analysis.to_dict()["classes"]
    out = {
        "dice": float(dice),
        "cldice": float(cldice),
        "recall_ge_0.2mm": recall02,
        "centreline_precision": float(tprec),
        "diam_medae_mm": float(np.median(derr)) if derr.size else float("nan"),
        "class_right": class_ok,
    }
    for lo, hi in DE_BANDS:  # found and true length (mm) per contrast band, summed by the caller
        band = (de >= lo) & (de < hi)
        out[f"de_len_found:{lo:g}"] = float(length[band & hit].sum())
        out[f"de_len_true:{lo:g}"] = float(length[band].sum())
    for cls in (*CLASSES, "total"):
        t_len, t_area = tf[cls]["length_mm"], tf[cls]["area_mm2"]
        e_len, e_area = ef[cls]["length_mm"] or 0.0, ef[cls]["area_mm2"] or 0.0
        out[f"len_err_pct:{cls}"] = 100 * (e_len - t_len) / t_len if t_len >= 10 else float("nan")
        out[f"area_err_pct:{cls}"] = 100 * (e_area - t_area) / t_area if t_area >= 5 else float("nan")
    return out


def paint(rgb: np.ndarray, labels: np.ndarray, ignore: np.ndarray | None = None, alpha: float = 0.75) -> np.ndarray:
    out = rgb.astype(np.float32)
    for code, col in COLOURS.items():
        m = labels == code
        out[m] = (1 - alpha) * out[m] + alpha * np.array(col, np.float32)
    if ignore is not None:
        out[ignore] = (1 - alpha) * out[ignore] + alpha * np.array((255, 230, 0), np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def contact_sheet(rows: list[tuple], path: Path, width: int = 480) -> None:
    """rows of (title, photo rgb, truth overlay, engine overlay) -> one PNG."""
    from PIL import Image, ImageDraw

    h = int(round(width * rows[0][1].shape[0] / rows[0][1].shape[1]))
    pad, head = 6, 22
    sheet = Image.new("RGB", (3 * width + 4 * pad, len(rows) * (h + head + pad) + pad + head), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for j, t in enumerate(("photo", "truth", "engine")):
        draw.text((pad + j * (width + pad) + 4, 4), t, fill=(0, 0, 0))
    for i, (title, *imgs) in enumerate(rows):
        y = head + i * (h + head + pad)
        draw.text((pad + 4, y + 4), title, fill=(0, 0, 0))
        for j, img in enumerate(imgs):
            # a quarter-width central crop at full resolution would hide the context; show
            # the whole photo, downscaled with area averaging
            im = Image.fromarray(img).resize((width, h), Image.Resampling.BOX)
            sheet.paste(im, (pad + j * (width + pad), y + head))
    sheet.save(path, optimize=True)


def _median(vals):
    vals = [v for v in vals if np.isfinite(v)]
    return statistics.median(vals) if vals else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap)
    ap.add_argument("--sheet", type=Path, default=HERE / "synth_contact_sheet.png")
    ap.add_argument("--json", type=Path, default=None, help="also write every per-photo figure here")
    ap.add_argument("--no-card", action="store_true", help="skip the second run with the scale found from the card")
    args = ap.parse_args(argv)
    import veinscope
    from veinscope.synth import generate_photo

    (w, h), kw = set_a_options(args)
    veinscope.warmup()
    rows, sheet_rows = [], []
    for i in range(args.n):
        seed = args.seed0 + i
        skin_type = 1 + i % 6
        if args.types and skin_type not in args.types:
            continue
        ppm = SCALES[(i + i // 6) % len(SCALES)]
        t0 = time.perf_counter()
        ph = generate_photo(seed=seed, size=(w, h), px_per_mm=ppm, skin_type=skin_type)
        t1 = time.perf_counter()
        a = veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm, **kw)
        t2 = time.perf_counter()
        r = evaluate(ph, a)
        r.update(seed=seed, skin_type=skin_type, ppm=ppm, card=ph.card is not None, gen_s=t1 - t0, analyze_s=t2 - t1)
        if ph.card is not None and not args.no_card:  # the scale found from the card instead
            from veinscope.calibrate import detect_card
            from veinscope.errors import CalibrationError

            try:
                cal = detect_card(ph.rgb)
            except CalibrationError as exc:
                r["card_found"] = False
                print(f"  card not found: {exc}")
            else:
                rc = evaluate(ph, veinscope.analyze(ph.rgb, px_per_mm=cal.px_per_mm, **kw))
                r.update(card_found=True, card_ppm=cal.px_per_mm, card_ppm_true=ph.card["px_per_mm"],
                         card_scale_err_pct=100 * (cal.px_per_mm / ph.card["px_per_mm"] - 1),
                         centre_vs_card_pct=100 * (ph.card["px_per_mm"] / ph.px_per_mm - 1),
                         **{f"card:{k}": v for k, v in rc.items()})
                print(f"  card: {cal.px_per_mm:.3f} px/mm found, {ph.card['px_per_mm']:.3f} true at the card, "
                      f"{ph.px_per_mm:.3f} at the centre; with it clDice={rc['cldice']:.3f} diam_medae_mm={rc['diam_medae_mm']:.3f} "
                      f"len_err={rc['len_err_pct:total']:+.0f}%")
        rows.append(r)
        print(
            f"seed {seed} type {skin_type} {ppm:4.1f} px/mm card {int(r['card'])}: "
            + " ".join(f"{k}={r[k]:.3f}" for k in ("dice", "cldice", "recall_ge_0.2mm", "centreline_precision", "diam_medae_mm", "class_right"))
            + f" len_err={r['len_err_pct:total']:+.0f}% (gen {t1 - t0:.1f} s, analyze {t2 - t1:.1f} s)",
            flush=True,
        )
        if len(sheet_rows) < 6 and skin_type == len(sheet_rows) + 1:
            sheet_rows.append(
                (f"seed {seed}, skin type {skin_type}, {ppm:g} px/mm: clDice {r['cldice']:.2f}, recall {r['recall_ge_0.2mm']:.2f}",
                 ph.rgb, paint(ph.rgb, ph.labels, ph.ignore), paint(ph.rgb, a.labels * (a.labels > 0)))
            )
    if sheet_rows:
        contact_sheet(sheet_rows, args.sheet)
        print(f"contact sheet: {args.sheet}")

    keys = ["dice", "cldice", "recall_ge_0.2mm", "centreline_precision", "class_right"]
    print("\n| figure | all | " + " | ".join(f"type {t}" for t in range(1, 7)) + " | target |")
    print("|---|---|" + "---|" * 6 + "---|")
    targets = {"cldice": ">= 0.85", "class_right": ">= 0.95", "recall_ge_0.2mm": ">= 0.9", "dice": "reported", "centreline_precision": "reported"}

    def line(name, fn, target):
        cells = [fn(rows)] + [fn([r for r in rows if r["skin_type"] == t]) for t in range(1, 7)]
        print(f"| {name} | " + " | ".join("n/a" if not np.isfinite(c) else f"{c:.3f}" for c in cells) + f" | {target} |")

    for k in keys:
        line(k, lambda rs, k=k: _median([r[k] for r in rs]), targets[k])
    line("diameter median abs error (mm), >= 10 px/mm", lambda rs: _median([r["diam_medae_mm"] for r in rs if r["ppm"] >= 10]), "<= 0.08")
    line("diameter median abs error (mm), 6 px/mm", lambda rs: _median([r["diam_medae_mm"] for r in rs if r["ppm"] == 6]), "reported")
    for cls in (*CLASSES, "total"):
        line(f"length error % {cls} (median)", lambda rs, c=cls: _median([r[f"len_err_pct:{c}"] for r in rs]), "within 10")
        line(f"area error % {cls} (median)", lambda rs, c=cls: _median([r[f"area_err_pct:{c}"] for r in rs]), "within 10")
    def de_recall(rs, lo):
        true = sum(r[f"de_len_true:{lo:g}"] for r in rs)
        return sum(r[f"de_len_found:{lo:g}"] for r in rs) / true if true > 0 else float("nan")

    for lo, hi in DE_BANDS:
        band = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
        line(f"recall along length, contrast dE00 {band} (all photos' length)", lambda rs, lo=lo: de_recall(rs, lo), "reported")
    cards = [r for r in rows if r.get("card_found")]
    if cards:
        print(f"\nscale from the card ({len(cards)} photos with the card found of {sum(r['card'] for r in rows)} with it in view):")
        print(f"  |found / true px/mm at the card - 1|: median {_median([abs(r['card_scale_err_pct']) for r in cards]):.2f} %, "
              f"max {max(abs(r['card_scale_err_pct']) for r in cards):.2f} %; true scale at the card vs the photo centre: "
              f"median |difference| {_median([abs(r['centre_vs_card_pct']) for r in cards]):.2f} %")
        for k in ("cldice", "recall_ge_0.2mm", "diam_medae_mm", "len_err_pct:total", "area_err_pct:total"):
            print(f"  {k}: scale given {_median([r[k] for r in cards]):.3f}, scale from the card {_median([r['card:' + k] for r in cards]):.3f}")
    print(f"\n{len(rows)} photos {w}x{h}; card in view in {sum(r['card'] for r in rows)}; "
          f"median generate {statistics.median(r['gen_s'] for r in rows):.1f} s, analyze {statistics.median(r['analyze_s'] for r in rows):.1f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
