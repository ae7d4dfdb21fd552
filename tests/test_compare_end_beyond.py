"""A matting patch is a new vessel's end only if that vessel runs on beyond the patch
(``compare(matting_end_beyond_mm=2.0)``, off by default): on whole-leg photos a patch whose
tortuous fine vessels the engine follows as one course of 5 mm or more, all inside the patch,
was dropped as a new vessel's end (issue 6, session 38, helper mat38)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.test_compare import bars  # noqa: F401  (the fixture)
from veinscope.compare import _course_beyond, _end_of_new_vessel, _new_courses

PPM = 10.0


def _tortuous_course(shape=(160, 160)):
    """A fine vessel winding inside a 10 mm disc (about 9 mm of course), and the disc."""
    img = np.zeros(shape, np.uint8)
    t = np.linspace(0.0, 1.0, 400)
    ys = (80 + 35 * np.sin(2 * np.pi * 2 * t)).astype(int)
    xs = (35 + 90 * t).astype(int)
    for i in range(len(t) - 1):
        cv2.line(img, (int(xs[i]), int(ys[i])), (int(xs[i + 1]), int(ys[i + 1])), 1, 1)
    patch = np.zeros(shape, np.uint8)
    cv2.circle(patch, (80, 80), 50, 1, -1)
    return img > 0, patch > 0


def _through_and_beyond(vessel, patch, on_vessel):
    lab, length = _new_courses(vessel, on_vessel, None, None, ppm=PPM)

    def through(sel):
        ids = np.unique(lab[sel])
        return float(length[ids].max()) if ids.size else 0.0

    def beyond(sel):
        ids = np.unique(lab[sel])
        return _course_beyond(lab, ids[ids > 0], ~on_vessel & ~patch)

    return through, beyond


def test_a_course_all_inside_the_patch_is_no_vessel_end_when_asked_to_run_on():
    vessel, patch = _tortuous_course()
    on_vessel = np.zeros_like(vessel)
    through, beyond = _through_and_beyond(vessel, patch, on_vessel)
    assert through(vessel) >= 5.0 * PPM  # one course of 5 mm or more: main's test alone calls it an end
    assert _end_of_new_vessel(vessel & patch, PPM, red=vessel & patch, through=through)
    assert beyond(vessel) == 0.0
    assert not _end_of_new_vessel(vessel & patch, PPM, red=vessel & patch, through=through, beyond=beyond, min_beyond_mm=2.0)


def test_a_vessel_running_on_beyond_the_patch_is_still_its_end():
    vessel, patch = _tortuous_course()
    cv2.line(vessel.view(np.uint8), (125, 80), (159, 80), 1, 1)  # the course leaves the disc for 3.5 mm
    on_vessel = np.zeros_like(vessel)
    through, beyond = _through_and_beyond(vessel, patch, on_vessel)
    assert beyond(vessel) >= 2.0 * PPM
    assert _end_of_new_vessel(vessel & patch, PPM, red=vessel & patch, through=through, beyond=beyond, min_beyond_mm=2.0)
    # what runs on over a baseline vessel's place is not counted beyond the patch
    on_vessel[:, 131:] = True
    through, beyond = _through_and_beyond(vessel, patch, on_vessel)
    assert beyond(vessel) < 2.0 * PPM
    assert not _end_of_new_vessel(vessel & patch, PPM, red=vessel & patch, through=through, beyond=beyond, min_beyond_mm=2.0)


def test_course_beyond_is_the_longest_course_outside():
    c = np.zeros((30, 80), np.int32)
    c[5, 10:70] = 2
    c[20, 10:40] = 5
    out = np.ones((30, 80), bool)
    out[:, :35] = False
    assert _course_beyond(c, np.array([2, 5]), out) == pytest.approx(35, abs=1)
    assert _course_beyond(c, np.array([5]), out) == pytest.approx(5, abs=1)
    assert _course_beyond(c, np.array([], int), out) == 0.0


def test_the_keyword_is_recorded_and_off_by_default(bars):  # noqa: F811
    from veinscope.compare import compare

    b, f = bars
    c = compare(b, f, px_per_mm=10.0)
    assert c.params["matting_end_beyond_mm"] == 0.0
    on = compare(b, f, px_per_mm=10.0, matting_end_beyond_mm=2.0)
    assert on.params["matting_end_beyond_mm"] == 2.0
    assert on.to_dict()["matting"] == c.to_dict()["matting"]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "2"])
def test_the_keyword_is_checked(bars, bad):  # noqa: F811
    """Until review rev38 (session 38) a negative or NaN length turned the rule off silently and
    "2" passed as 2.0; now each names the keyword and the value received."""
    from veinscope.compare import compare

    b, f = bars
    with pytest.raises(ValueError, match="matting_end_beyond_mm must be"):
        compare(b, f, px_per_mm=10.0, matting_end_beyond_mm=bad)


@pytest.mark.xfail(strict=True, reason="the rule reads only the course the engine joins: this thread's part beyond the "
                   "cleared vein's place is a course of its own (no fine follow-up vessel found across the place), so "
                   "the patch's course (6.3 mm, all inside it) does not run on and the patch reads as matting (session 38)")
def test_a_new_thread_beyond_a_cleared_veins_place_is_still_its_end_with_the_rule():
    # tests/test_compare.py's analytic thread (seed 0): with the rule on the whole suite stopped
    # here (one matting patch of 20.1 mm²), which is why the rule is off
    from tests.test_compare import PPM as PPM_T
    from tests.test_compare import _thread_from_a_cleared_vein
    from veinscope.compare import compare

    b, f = _thread_from_a_cleared_vein(0)
    c = compare(b, f, px_per_mm=PPM_T, matting_end_beyond_mm=2.0)
    assert c.matting["patches"] == 0 and c.matting["area_mm2"] == 0


@pytest.mark.slow
def test_generated_new_thread_from_a_cleared_vein_is_still_a_new_vessel_with_the_rule():
    # fresh series pair 360/2 (session 26): a new red thread crossing a cleared reticular vein's
    # place, its part near the place a matting false alarm without ``matting_vessel_ends``; the
    # thread runs on beyond that patch for about 27 mm, so the rule keeps it a new vessel
    from tests.test_compare import _series_compare_kw, _series_pair
    from veinscope.compare import compare

    b, f, ppm, truth_mm2, _ = _series_pair(360, 2)
    kw = _series_compare_kw(b, f, ppm)
    assert truth_mm2 == 0
    on = compare(b, f, matting_end_beyond_mm=2.0, **kw)
    assert on.matting["patches"] == 0 and on.matting["area_mm2"] == 0
