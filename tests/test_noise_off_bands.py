"""detect_vessels(noise_off_bands=True): the texture noise measured again off the vessels found.

The hysteresis levels are multiples of the skin texture's line strength, the mean over cells
of 16-64 px with a 5 x 5-cell median. Where vessels are dense, their own ridge strength is most
of every cell's mean and the levels rise with it: a faint vessel between strong ones is then
held to a level set by its neighbours. The second pass measures the texture off the bands the
first pass keeps.
"""

import numpy as np
import pytest

from veinscope.segment import detect_vessels
from veinscope.vesselness import ridge_response


def _lines(*, faint_amp: float, strong: bool = True, spot_amp: float = 0.0, seed: int = 1):
    """Noise (sd 0.02) with horizontal Gaussian lines (sd 1 px) of 0.5 every 16 px (none at row
    124) and a faint one of ``faint_amp`` at row 124, ``spot_amp`` along its columns 110-129."""
    rng = np.random.default_rng(seed)
    m = n = 240
    sig = rng.normal(0.0, 0.02, (m, n)).astype(np.float32)
    rows = np.arange(m, dtype=np.float32)[:, None]
    if strong:
        for y0 in range(12, 236, 16):
            if y0 != 124:
                sig += (0.5 * np.exp(-0.5 * (rows - y0) ** 2)).astype(np.float32)
    amp = np.full(n, faint_amp, np.float32)
    amp[110:130] = max(spot_amp, faint_amp)
    sig += (amp[None, :] * np.exp(-0.5 * (rows - 124) ** 2)).astype(np.float32)
    return sig


def _detect(sig, flag):
    ridge = ridge_response(sig, sigmas_px=(1.0, 1.5, 2.0), black_ridges=False, gamma=0.01, weighted=True)
    skin = np.ones(sig.shape, bool)
    return detect_vessels(ridge, skin, sig, high_noise=5.0, low_noise=3.0, min_length_px=10, min_piece_px=10,
                          noise_cell_px=16, noise_off_bands=flag)  # fmt: skip


def _on_row(det, y0):
    return int(np.count_nonzero(np.abs(det.points_yx[:, 0] - y0) <= 1))


def test_a_faint_vessel_between_dense_strong_ones_is_followed_off_their_noise():
    """Strong for 20 px, faint on either side: the first pass keeps the strong stretch only (its
    neighbours set the low level), the second follows the faint vessel along its band."""
    sig = _lines(faint_amp=0.12, spot_amp=0.5)
    one, two = _detect(sig, False), _detect(sig, True)
    assert 10 <= _on_row(one, 124) <= 40  # the strong stretch
    assert _on_row(two, 124) >= 200  # most of its 240 px
    assert two.noise < 0.5 * one.noise
    # nothing else is added: the strong lines' points are the same, no texture point appears
    rest_one = one.points_yx[np.abs(one.points_yx[:, 0] - 124) > 1]
    rest_two = two.points_yx[np.abs(two.points_yx[:, 0] - 124) > 1]
    np.testing.assert_array_equal(rest_one, rest_two)


def test_the_strong_point_a_band_must_reach_stays_the_first_passs():
    """The same faint vessel without its strong stretch: it passes the second pass's low level
    all along, but never the first pass's high level, so it is not a vessel either way."""
    sig = _lines(faint_amp=0.12)
    assert _on_row(_detect(sig, False), 124) == 0
    assert _on_row(_detect(sig, True), 124) == 0


def test_a_vessel_at_the_noise_is_not_found_either_way():
    sig = _lines(faint_amp=0.03, spot_amp=0.5)
    assert _on_row(_detect(sig, True), 124) <= 40


def test_without_a_band_kept_the_second_pass_changes_nothing():
    """Plain texture: no band is kept in the first pass, so there is no second one and the
    detection is the same to the bit."""
    sig = _lines(faint_amp=0.0, strong=False)
    one, two = _detect(sig, False), _detect(sig, True)
    assert one.noise == two.noise
    np.testing.assert_array_equal(one.points_yx, two.points_yx)
    np.testing.assert_array_equal(one.segment, two.segment)


def test_a_lone_vessel_barely_moves_the_noise():
    """Where vessels are sparse the cells' median already stands for the texture: one line
    found either way, the noise unit within 10 %."""
    sig = _lines(faint_amp=0.09, strong=False)
    one, two = _detect(sig, False), _detect(sig, True)
    assert _on_row(one, 124) >= 200 and _on_row(two, 124) >= 200
    assert two.noise == pytest.approx(one.noise, rel=0.1)


def test_analyze_records_the_option_and_leaves_it_off_by_default():
    import veinscope

    rng = np.random.default_rng(0)
    rgb = np.full((96, 96, 3), (200, 150, 130), np.uint8)
    rgb[40:44, :] = (170, 120, 130)
    rgb = np.clip(rgb.astype(int) + rng.integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)
    assert veinscope.analyze(rgb, px_per_mm=10.0).params["noise_off_bands"] is False
    assert veinscope.analyze(rgb, px_per_mm=10.0, noise_off_bands=True).params["noise_off_bands"] is True


# --- off_bands_guard: what the lowered level may add, judged against the first pass (session 26)


def _with_neighbour(seed: int = 1):
    """The faint vessel of :func:`_lines` (strong for 20 px) and a second faint line 5 px below
    it, over columns 150-229 only, that no pass finds on its own (it never reaches the high
    level): the second pass's bands join it to the vessel's band, its centreline is a chain of
    its own."""
    sig = _lines(faint_amp=0.12, spot_amp=0.5, seed=seed)
    rows = np.arange(sig.shape[0], dtype=np.float32)[:, None]
    amp = np.zeros(sig.shape[1], np.float32)
    amp[150:230] = 0.12
    return sig + (amp[None, :] * np.exp(-0.5 * (rows - 129) ** 2)).astype(np.float32)


def _guarded(sig, guard, **kw):
    ridge = ridge_response(sig, sigmas_px=(1.0, 1.5, 2.0), black_ridges=False, gamma=0.01, weighted=True)
    return detect_vessels(ridge, np.ones(sig.shape, bool), sig, high_noise=5.0, low_noise=3.0, min_length_px=10,
                          min_piece_px=10, noise_cell_px=16, noise_off_bands=True, weak_bands=True,
                          off_bands_guard=guard, **kw)  # fmt: skip


def _segments_on_row(det, y0):
    return np.unique(det.segment[np.abs(det.points_yx[:, 0] - y0) <= 1])


def test_attached_leaves_a_vessel_followed_from_its_strong_stretch_as_it_was():
    """The faint vessel's chain holds the first pass's strong stretch: not weak, the same points."""
    sig = _lines(faint_amp=0.12, spot_amp=0.5)
    free, det = _guarded(sig, None), _guarded(sig, "attached")
    np.testing.assert_array_equal(det.points_yx, free.points_yx)
    assert _on_row(det, 124) >= 200
    assert not det.weak[_segments_on_row(det, 124)].any()


def test_attached_marks_weak_the_chains_the_first_pass_never_touched():
    """The neighbour's chains lie outside every band the first pass kept: weak with the guard;
    the points are the same, only the marks differ, and never fewer chains are weak."""
    sig = _with_neighbour()
    free, det = _guarded(sig, None), _guarded(sig, "attached")
    np.testing.assert_array_equal(det.points_yx, free.points_yx)
    np.testing.assert_array_equal(det.segment, free.segment)
    assert (det.weak | ~free.weak).all()  # never less weak
    below = _segments_on_row(det, 129)
    assert below.size and det.weak[below].all()
    assert not det.weak[_segments_on_row(det, 124)].all()


def test_drop_removes_only_chains_outside_every_band_of_the_first_pass():
    sig = _with_neighbour()
    att, det = _guarded(sig, "attached"), _guarded(sig, "attached+drop")
    kept = {tuple(p) for p in det.points_yx}
    gone = np.array([tuple(p) not in kept for p in att.points_yx])
    assert gone.any() and kept <= {tuple(p) for p in att.points_yx}
    assert att.weak[np.unique(att.segment[gone])].all()  # only weak (unattached) chains go
    assert _on_row(det, 124) >= 100  # the vessel's chain through its strong stretch stays


def test_scale_keeps_the_lowered_level_off_coarser_scales():
    sig = _with_neighbour()
    free = _guarded(sig, "scale")  # no limit: as without the guard
    np.testing.assert_array_equal(free.points_yx, _guarded(sig, None).points_yx)
    tight = _guarded(sig, "scale", off_bands_max_scale_px=0.5)  # below every scale: the first pass's bands
    assert _on_row(tight, 124) <= 40
    assert _on_row(tight, 129) == 0


def test_split_cuts_the_gained_runs_off_their_chain_and_weak_marks_them():
    """The faint vessel: its strong stretch (the first pass's) and the runs either side that the
    lowered level adds become three chains; "weak" marks the two added runs weak."""
    sig = _lines(faint_amp=0.12, spot_amp=0.5)
    free, split, weak = _guarded(sig, None), _guarded(sig, "split"), _guarded(sig, "weak")
    for det in (split, weak):
        np.testing.assert_array_equal(det.points_yx, free.points_yx)
        on = _segments_on_row(det, 124)
        assert on.size == 3
        sizes = np.bincount(det.segment)[on]
        assert sizes.max() >= 100 and 15 <= sizes.min() <= 40
    on = _segments_on_row(weak, 124)
    sizes = np.bincount(weak.segment)[on]
    assert not weak.weak[on[sizes.argmin()]] and weak.weak[on[sizes > 60]].all()
    assert not split.weak[_segments_on_row(split, 124)].any()
    # elsewhere nothing changes: the strong lines' chains are not weak
    assert weak.weak.sum() == 2


def test_the_guard_does_nothing_without_the_second_pass():
    sig = _with_neighbour()
    ridge = lambda: ridge_response(sig, sigmas_px=(1.0, 1.5, 2.0), black_ridges=False, gamma=0.01, weighted=True)  # noqa: E731
    kw = dict(high_noise=5.0, low_noise=3.0, min_length_px=10, min_piece_px=10, noise_cell_px=16, weak_bands=True)
    one = detect_vessels(ridge(), np.ones(sig.shape, bool), sig, **kw)
    two = detect_vessels(ridge(), np.ones(sig.shape, bool), sig, off_bands_guard="attached+drop+scale", **kw)
    np.testing.assert_array_equal(one.points_yx, two.points_yx)
    np.testing.assert_array_equal(one.weak, two.weak)


def test_analyze_records_the_guard_and_refuses_unknown_words():
    import veinscope

    rgb = np.full((64, 64, 3), (200, 150, 130), np.uint8)
    rgb[30:33, :] = (170, 120, 130)
    assert veinscope.analyze(rgb, px_per_mm=10.0).params["off_bands_guard"] is None
    a = veinscope.analyze(rgb, px_per_mm=10.0, noise_off_bands=True, off_bands_guard="attached+drop")
    assert a.params["off_bands_guard"] == "attached+drop"
    for bad in ("", "attach", "drop", "scale+", 3):
        with pytest.raises(ValueError, match="off_bands_guard"):
            veinscope.analyze(rgb, px_per_mm=10.0, noise_off_bands=True, off_bands_guard=bad)


def test_long_leaves_a_gained_run_a_vessel_only_when_it_is_long_enough_alone():
    """"split+long": the runs either side of the strong stretch (about 109 px each) are vessels
    when a band that long would stand on its length alone (``long_length_px`` 50), weak when not (150)."""
    sig = _lines(faint_amp=0.12, spot_amp=0.5)
    for long_px, weak_sides in ((50.0, False), (150.0, True)):
        det = _guarded(sig, "split+long", long_length_px=long_px)
        on = _segments_on_row(det, 124)
        sizes = np.bincount(det.segment)[on]
        assert on.size == 3
        assert not det.weak[on[sizes.argmin()]]
        assert (det.weak[on[sizes > 60]] == weak_sides).all()


def test_chains_judges_against_the_first_passs_own_points():
    """"chains": a point is the first pass's when the first pass kept that very centreline point
    (not merely a pixel of a band it kept). Cut with "split", the faint vessel's middle run is
    exactly the first pass's points, and each gained run has that run as its parent ("parent",
    kept only with it: :func:`veinscope.measure.measure_vessels`)."""
    sig = _lines(faint_amp=0.12, spot_amp=0.5)
    one = _detect(sig, False)
    det = _guarded(sig, "split+chains+parent")
    np.testing.assert_array_equal(det.points_yx, _guarded(sig, None).points_yx)
    on = _segments_on_row(det, 124)
    assert on.size == 3
    sizes = np.bincount(det.segment)[on]
    middle = on[sizes.argmin()]
    first = {tuple(p) for p in one.points_yx}
    assert {tuple(p) for p in det.points_yx[det.segment == middle]} <= first
    assert not det.weak[on].any()
    assert det.parent[middle] == -1 and (det.parent[on[on != middle]] == middle).all()
    assert (det.parent[np.setdiff1d(np.arange(det.n_segments), on)] == -1).all()
    # without "parent" no parents are recorded
    assert _guarded(sig, "split+chains").parent is None


def test_a_gained_run_goes_with_the_chain_it_leaves():
    """measure_vessels keeps a chain with a parent only with that parent (as a side branch)."""
    from veinscope.measure import _with_parents
    from veinscope.segment import VesselDetection

    k = 6
    det = VesselDetection(np.zeros((k, 2), np.int32), np.array([0, 0, 1, 1, 2, 2], np.int32), np.ones(k, np.float32),
                          np.zeros((k, 2), np.float32), np.ones(k, np.float32), 3, 1.0, (1.0, 2.0),
                          parent=np.array([-1, 0, -1]))  # fmt: skip
    accepted = np.array([False, False, True, True, True, True])
    np.testing.assert_array_equal(_with_parents(accepted, det), [False, False, False, False, True, True])
