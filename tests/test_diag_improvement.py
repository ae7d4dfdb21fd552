"""benchmarks/diag_improvement.py's point truth and its per-point dump (issue 6, diagnosis only)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import veinscope.synth as synth

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import diag_improvement  # noqa: E402


def _records(monkeypatch, **kw):
    cap = {}
    changes = synth._changes

    def keep(plan, records, photos, k):
        cap["plan"], cap["records"] = plan, records
        return changes(plan, records, photos, k)

    monkeypatch.setattr(synth, "_changes", keep)
    ser = synth.generate_series(**kw)
    return ser, cap["plan"], cap["records"]


def test_the_truth_records_carry_each_points_colour_difference_and_threshold(monkeypatch):
    ser, plan, records = _records(monkeypatch, seed=305, sessions=2, size=(400, 300), px_per_mm=8.0)
    n_vis = 0
    for rec in records:
        for r in rec.values():
            de, thr = r["delta_e"], r["thr"]
            assert de is not None and thr is not None
            assert de.shape == thr.shape == r["visible"].shape
            # the truth's visibility rule: visible only where the ΔE00 reaches the threshold
            assert np.all(de[r["visible"]] >= thr[r["visible"]])
            assert np.all(thr >= 2.0 - 1e-9)
            n_vis += int(r["visible"].sum())
    assert n_vis > 0
    t = diag_improvement._truth_points(plan, records[0], records[1])
    assert t.shape[1] == 10 and len(t) > 0
    # columns 6-9: ΔE00 at baseline and follow-up, thresholds; a point kept visible reaches it
    kept = t[:, 3] > 0
    assert np.all(np.isfinite(t[:, 6:10]))
    assert np.all(t[kept, 7] >= t[kept, 9])


@pytest.mark.slow
def test_the_dump_holds_compares_points_and_their_matched_truth(tmp_path):
    assert diag_improvement.main(["--n", "1", "--seed0", "305", "--sessions", "2", "--dump", str(tmp_path)]) == 0
    z = np.load(tmp_path / "305_1.npz")
    k = len(z["ys"])
    assert k > 0
    for key in ("st", "cls", "de_b", "de_f", "brown", "brown0", "dist", "tkept", "tde_b", "tde_f", "edge_mm"):
        assert z[key].shape == (k,), key
    # the stain / matting test only takes points away from "brown"
    assert not np.any(z["brown"] & ~z["brown0"])
    # a point counted at baseline reads at least the threshold there
    counted = z["st"] <= 1
    assert np.all(z["de_b"][counted] >= z["thr_b"] - 1e-9)
