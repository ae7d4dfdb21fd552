"""Real leg photos (../shared/data/legs-dev, third-party, local evaluation only: read, never copied).

Skipped with a reason when the folder is absent (a user's clone does not have it).
"""

import io

import numpy as np
import pytest
from PIL import Image

import veinscope

from .conftest import SHARED_DATA

LEGS = SHARED_DATA / "legs-dev"
pytestmark = pytest.mark.skipif(not LEGS.is_dir(), reason="../shared/data/legs-dev is not present on this machine")


def _load(name):
    return np.asarray(Image.open(LEGS / name).convert("RGB"))


def _total(a):
    return a.to_dict()["classes"]["total"]


@pytest.fixture(scope="module")
def veins01():
    rgb = _load("veins_01.jpg")
    return rgb, veinscope.analyze(rgb)


@pytest.mark.parametrize("name", ["normal_08.jpg", "normal_09.jpg", "normal_10.png"])
def test_legs_without_visible_veins_are_nearly_empty(name):
    a = veinscope.analyze(_load(name))
    assert _total(a)["coverage_pct"] < 1.5


def test_thread_veins_are_found(veins01):
    _, a = veins01
    tot = _total(a)
    assert tot["segments"] >= 10 and tot["length_px"] > 300
    # the spider veins on the calf (the middle of the photo) are blue telangiectasia mostly
    c = a.to_dict()["classes"]
    assert c["blue_telangiectasia"]["length_px"] > c["red_telangiectasia"]["length_px"]


@pytest.mark.parametrize(
    "change",
    [
        lambda rgb: np.ascontiguousarray(np.rot90(rgb)),
        lambda rgb: np.clip(rgb * 0.85, 0, 255).astype(np.uint8),
        lambda rgb: np.clip(rgb * np.array([1.06, 1.0, 0.92]), 0, 255).astype(np.uint8),
    ],
    ids=["rotate90", "exposure-15pct", "white-balance"],
)
def test_invariances(veins01, change):
    rgb, base = veins01
    other = veinscope.analyze(change(rgb))
    assert _total(other)["length_px"] == pytest.approx(_total(base)["length_px"], rel=0.3)


def test_messaging_app_recompression(veins01):
    rgb, base = veins01
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=75)
    other = veinscope.analyze(buf.getvalue())
    assert _total(other)["length_px"] == pytest.approx(_total(base)["length_px"], rel=0.35)


# the floor, wall, gravel and tiles around these legs pass the broad skin prior; the legs fill
# 0.34-0.62 of each photo (looked at, BENCHMARKS.md session 11); main's mask took 0.78-1.00
_BACKGROUND_OUT = {"normal_10.png": 0.34, "veins_01.jpg": 0.62, "veins_03.jpg": 0.43, "veins_07.jpg": 0.36}


@pytest.mark.parametrize("name", sorted(_BACKGROUND_OUT))
def test_skin_coloured_backgrounds_stay_out_of_the_skin_mask(name):
    from veinscope.segment import skin_mask

    assert abs(skin_mask(_load(name)).mean() - _BACKGROUND_OUT[name]) < 0.05


@pytest.mark.parametrize("name", [
    "normal_10.png", "veins_01.jpg", "veins_07.jpg",
    # the gravel's cluster is then 2.43 spreads from the skin's, under the 2.5 required
    pytest.param("veins_03.jpg", marks=pytest.mark.xfail(strict=True, reason="known: separation 2.43 < 2.5")),
])
def test_backgrounds_stay_out_under_a_cooler_white_balance(name):
    # part of the background falls under the prior's Cr bound: the second fit over the
    # relaxed bound still finds it
    from veinscope.segment import skin_mask

    cool = np.clip(_load(name) * np.array([0.94, 1.0, 1.08]), 0, 255).astype(np.uint8)
    assert abs(skin_mask(cool).mean() - _BACKGROUND_OUT[name]) < 0.05


def test_the_faint_rule_draws_nothing_on_a_floor():
    # session 10: with the rule on, a long line on normal_10's skin-coloured floor (0.55 %)
    a = veinscope.analyze(_load("normal_10.png"))
    assert a.params["faint_length_mm"] == 3.0
    assert _total(a)["coverage_pct"] < 0.1


@pytest.mark.parametrize(
    "name, kw",
    [
        ("normal_10.png", {}),
        ("veins_03.jpg", {}),
        ("veins_04.jpg", {}),
    ],
)
def test_a_moved_relit_copy_reports_no_matting_or_staining(name, kw):
    # the photo against itself rotated 3 degrees, scaled 0.97, relit and saved again as JPEG:
    # nothing changed. Main reported matting on all four (normal_10: 2 334 px², veins_03:
    # 5 393 px², veins_01: 32 132 px² along the fingers lying on the leg, veins_04: 7 520 px²
    # and a stain at the legs' rims; BENCHMARKS.md, session 27)
    from tests._followup import moved_copy
    from veinscope.compare import compare

    rgb = _load(name)
    c = compare(rgb, moved_copy(rgb), **kw)
    assert c.matting["patches"] == 0 and c.staining["patches"] == 0 and c.new_vessels["count"] == 0


def test_the_hand_on_veins_05_reads_no_matting_and_no_broad_stain_against_a_moved_copy():
    # the back of the hand and the fingers by the frame: 4 stains and 2 matting patches, 8 210
    # and 8 724 px², where the baseline's background (on its own skin mask) and the follow-up's
    # (on the compared skin) differ; with same_skin_check only a 90 px sliver on the fabric's
    # edge by the thumb is left (BENCHMARKS.md, session 30)
    from tests._followup import moved_copy
    from veinscope.compare import compare

    rgb = _load("veins_05.jpg")
    c = compare(rgb, moved_copy(rgb))
    assert c.matting["patches"] == 0 and c.new_vessels["count"] == 0
    assert c.staining["area_px2"] < 500


def test_the_red_nails_on_veins_01_read_no_matting_against_a_moved_copy():
    # the fingertip by a red nail (green and blue near code 0) read as matting before the
    # clipped channels were left out: 2 patches, 11 226 px² -> 1, 1 808 px² (session 28)
    from tests._followup import moved_copy
    from veinscope.compare import compare

    rgb = _load("veins_01.jpg")
    f = moved_copy(rgb)
    # (same_skin_check off in both: it drops the nail's patch too, session 30; and
    # matting_pigment_spots off in both: it drops the nail's and the leg edge's patches too,
    # 0 patches with or without the clipped channels, session 34)
    off = compare(rgb, f, clipped_code=0, same_skin_check=False, matting_pigment_spots=False)
    on = compare(rgb, f, same_skin_check=False, matting_pigment_spots=False)
    assert on.matting["patches"] < off.matting["patches"]
    assert on.matting["area_px2"] < 0.5 * off.matting["area_px2"]


def test_a_true_stain_beside_the_rim_is_kept_by_the_same_skin_check():
    """A true brown stain painted on veins_04 beside the left leg's rim, where the two photos'
    skin backgrounds differ, and the follow-up the stained photo moved, relit and saved again:
    ``same_skin_check`` must keep the stain (its part that still rises on the same-skin reading),
    not drop it with the rim's false rise it grew into (session 30's review: the first version
    dropped it whole; its same-skin median rise 0.125, 3x the seed level)."""
    import cv2

    from veinscope.compare import compare

    from ._followup import _EPS_STAIN, moved_copy, to_linear, to_srgb8

    rgb = _load("veins_04.jpg")
    cy, cx = 160, 708
    img = np.zeros(rgb.shape[:2], np.float32)
    cv2.ellipse(img, (cx, cy), (15, 35), 0, 0, 360, 1.0, -1)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    f = moved_copy(to_srgb8(to_linear(rgb) * 10.0 ** (-(0.12 * img[..., None] * _EPS_STAIN))))

    def on_truth(c):
        return [loc for loc in c.staining["locations"] if abs(loc["centre_yx"][0] - cy) < 40 and abs(loc["centre_yx"][1] - cx) < 30]

    assert on_truth(compare(rgb, f, same_skin_check=False))  # found without the check
    kept = on_truth(compare(rgb, f))
    assert kept, "the default dropped a true stain beside the rim"
    stain_px = int((img > 0.5).sum())
    assert 0.5 * stain_px <= sum(loc["area_px2"] for loc in kept) <= 2.0 * stain_px


def _painted_matting(rgb, cy, cx, *, half_axes_px=(12, 8), amp_od=0.22, seed=5):
    """``rgb`` with a small matting patch painted at (``cy``, ``cx``) as ``tests._followup``
    paints the series' matting (fine 1 px red vessels of the given optical density, blurred by
    0.6 px, and a faint blush, inside an ellipse of ``half_axes_px`` (rows, columns)), and its
    truth as the generator outlines matting (within 0.75 mm of the visible vessels at the
    nominal 10 px/mm, closed and filled)."""
    import math

    import cv2
    from scipy import ndimage as ndi

    from ._followup import _EPS_BLUSH, _EPS_HB, to_linear, to_srgb8

    ra, rb = half_axes_px
    rng = np.random.default_rng(seed)
    m, n = rgb.shape[:2]
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float32)
    r = np.sqrt(((yy - cy) / ra) ** 2 + ((xx - cx) / rb) ** 2)
    lines = np.zeros((m, n), np.float32)
    for _ in range(max(4, int(22 * ra * rb / 525))):
        y, x = cy + rng.uniform(-ra, ra), cx + rng.uniform(-rb, rb)
        heading = rng.uniform(0, 2 * math.pi)
        pts = []
        for _k in range(int(rng.uniform(12, 30))):
            heading += rng.normal(0, 0.35)
            y += math.sin(heading)
            x += math.cos(heading)
            pts.append((x, y))
        cv2.polylines(lines, [np.round(np.array(pts)).astype(np.int32)], False, 1.0, 1)
    lines = np.minimum(cv2.GaussianBlur(lines, (0, 0), 0.6) * 1.6, 1.0)
    soft = np.clip(0.5 + (1.0 - r) * 6.0, 0.0, 1.0).astype(np.float32)
    od = (amp_od * lines * soft)[..., None] * _EPS_HB + (0.35 * soft)[..., None] * _EPS_BLUSH
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))
    seen = cv2.morphologyEx(cv2.dilate(((lines * soft) >= 0.3).astype(np.uint8), ker), cv2.MORPH_CLOSE, ker)
    return to_srgb8(to_linear(rgb) * 10.0 ** (-od)), ndi.binary_fill_holes(seen.astype(bool))


def test_true_matting_beside_the_rim_is_kept_by_the_same_skin_check():
    """Fine new red vessels painted on veins_04 beside the right leg's inner rim, where the two
    photos' skin backgrounds differ, and the follow-up the painted photo moved, relit and saved
    again: without ``same_skin_check`` the true patch and the rim's false rise are one 7 502 px²
    patch; the check must keep the true part (its new redness still rising on the same-skin
    reading, outlined again) and drop the rest, not drop the whole patch (session 30: the
    first version dropped it, the patch's median rise 0.095 -> -0.012 on the same-skin reading,
    the painted vessels' 0.25 -> 0.22)."""
    from veinscope.compare import compare

    from ._followup import moved_copy

    rgb = _load("veins_04.jpg")
    cy, cx = 193, 905
    painted, truth = _painted_matting(rgb, cy, cx)
    f = moved_copy(painted)

    def on_truth(c):
        return [loc for loc in c.matting["locations"] if abs(loc["centre_yx"][0] - cy) < 40 and abs(loc["centre_yx"][1] - cx) < 40]

    off = on_truth(compare(rgb, f, same_skin_check=False))
    assert off and sum(loc["area_px2"] for loc in off) > 4 * truth.sum()  # grown into the rim's false rise
    c = compare(rgb, f)
    kept = on_truth(c)
    assert kept, "the default dropped true matting beside the rim"
    assert 0.5 * truth.sum() <= sum(loc["area_px2"] for loc in kept) <= 2.0 * truth.sum()
    assert c.matting["area_px2"] == sum(loc["area_px2"] for loc in kept)  # none of the rim's false rise



# veins_01 against two different moves of itself (the benchmark's, and another rotation and
# scale): nothing changed, so the improvement must read near 0 %. Main (session 32) read 6.2
# and 6.5 points: 50-65 of its ~650 counted centreline points sit within 12 % above the
# threshold of "perceptible", and the copy's 4:2:0 JPEG chroma and relighting tip them under it
# with 90-98 % of their ΔE00 kept (BENCHMARKS.md, session 33, helper self33). Session 33's
# cleared_drop_frac (a fixed share of the ΔE00 kept) was measured off and removed in session 35;
# session 34's margin measured on the pair is below (off), hence the strict xfail with the defaults.
_MOVES = {
    "bench": {},
    "turned": {"deg": -2.0, "scale": 1.03},
}


def _veins_01_and_copy(move):
    from tests._followup import moved_copy

    rgb = _load("veins_01.jpg")
    return rgb, moved_copy(rgb, **_MOVES[move])


@pytest.mark.parametrize("move", sorted(_MOVES))
def test_veins_01_against_a_moved_copy_reads_no_improvement_with_the_pairs_noise_margin(move):
    # the same with the margin measured on the pair (session 34, helper imp34): a point is
    # cleared only when its ΔE00 fell by more than the pair's own noise (the skin samples' ΔE00
    # change between the photos, ~0.45 here). The benchmark's copy reads 0.3 %; off by default
    # (the development series 3.55 -> 3.93 points)
    from veinscope.compare import compare

    b, f = _veins_01_and_copy(move)
    c = compare(b, f, cleared_noise_margin=1.0)
    assert c.params["cleared_noise_margin"] == 1.0
    assert 0.2 < c.params["pair_noise_delta_e"] < 1.0
    assert c.improvement_pct is not None and abs(c.improvement_pct) <= 3.0
    assert c.staining["patches"] == 0 and c.new_vessels["count"] == 0


@pytest.mark.xfail(strict=True, reason="the defaults read 6.2 points of false improvement (sessions 31-33)")
def test_veins_01_against_a_moved_copy_reads_no_improvement_with_the_defaults():
    from veinscope.compare import compare

    b, f = _veins_01_and_copy("bench")
    c = compare(b, f)
    assert abs(c.improvement_pct) <= 5.0


def test_veins_01_against_a_moved_copy_at_10_px_per_mm_reads_no_matting():
    # a 2 029 px² matting patch on the out-of-focus leg by the front leg's edge (sessions 30-33,
    # a strict xfail until session 34): all of its new redness lies on the dark, brownish edge
    # the baseline already shows (``matting_pigment_spots``, on)
    from veinscope.compare import compare

    b, f = _veins_01_and_copy("bench")
    assert compare(b, f, px_per_mm=10.0).matting["patches"] == 0
    assert compare(b, f, px_per_mm=10.0, matting_pigment_spots=False).matting["patches"] == 1


def test_the_app_and_compare_read_the_same_figures_for_a_moved_copy(tmp_path):
    # without a scale the app gave compare the follow-up's own analysis (imported in this run),
    # and register then aligned on its skin mask; compare alone registers on the photos:
    # veins_01 against its moved copy read 6.74 % and no matting in the app, 6.25 % and a
    # 2 029 px² matting patch from compare (main, session 32). The app now lets compare analyse
    # the follow-up when neither photo has a scale, and both read the same
    from veinscope import app_support as sup
    from veinscope.compare import compare

    b, f = _veins_01_and_copy("bench")
    buf = io.BytesIO()
    Image.fromarray(f).save(buf, "PNG")
    raw_b = (LEGS / "veins_01.jpg").read_bytes()
    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-SELF")
        [o1] = sup.import_uploads(store, cache, "P-SELF", "calf", "2026-01-01", [("a.jpg", raw_b)])
        [o2] = sup.import_uploads(store, cache, "P-SELF", "calf", "2026-02-01", [("b.png", buf.getvalue())])
        assert o1.ok and o2.ok
        sa, sb = (p.session_id for p in store.list_photos(code="P-SELF"))
        app = sup.compare_sessions(store, cache, sa, sb).figures
    finally:
        store.close()
    c = compare(raw_b, f).to_dict()
    for key in ("improvement_pct",):
        assert app[key] == pytest.approx(c[key], abs=0.01)
    for key in ("staining", "matting"):
        assert app[key]["area_px2"] == c[key]["area_px2"]
