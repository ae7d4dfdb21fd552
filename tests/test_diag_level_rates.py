"""benchmarks/diag_level_rates.py: the skin's own rates at the detection's levels (session 32)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import diag_level_rates  # noqa: E402


def test_a_small_run_reports_rates_per_skin_type(capsys):
    assert diag_level_rates.main(["--n", "2", "--size", "400x300"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| type ")]
    assert [r.split("|")[1].strip() for r in rows] == ["type 1 (1)", "type 2 (1)"]
    for r in rows:
        v = np.array([float(c) for c in r.split("|")[2:-1]])
        assert v.size == len(diag_level_rates.COLUMNS)
        p_off3, p_off5, _, _, mean, median, _, p3, p5, q96, q99 = v
        assert 0 <= p_off5 <= p_off3 <= 1 and 0 <= p5 <= p3 <= 1
        assert 0.5 < mean < 2.0 and median < mean  # the unit is the mean; the texture is skewed
        assert q96 <= q99
