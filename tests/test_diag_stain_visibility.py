"""benchmarks/diag_stain_visibility.py: the staining truth against the photo rendered without it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import veinscope.synth as synth  # noqa: E402
from diag_stain_visibility import series_rows  # noqa: E402


def test_the_truths_stain_is_where_the_photo_changes_and_the_generator_is_left_as_it_was():
    orig = synth._Course.stain_map
    rows = [r for seed in (304, 306) for r in series_rows(seed, 4, size=(400, 300))]
    assert synth._Course.stain_map is orig
    stained = [r for r in rows if r["truth_mm2"] > 5]
    assert stained, rows
    for r in stained:  # the truth's visible stain is what differs by ΔE00 >= 2 in the photo
        assert r["seen_mm2"] == pytest.approx(r["truth_mm2"], rel=0.3)
        assert r["iou"] > 0.6 and r["de_median_in_truth"] >= 2.0
