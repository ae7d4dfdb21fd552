"""The API reference in docs/ is the one the docstrings give today, and the same on every build."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_reference_is_up_to_date(tmp_path):
    out = tmp_path / "reference.md"
    subprocess.run([sys.executable, str(ROOT / "docs" / "build_reference.py"), "--out", str(out)], check=True,
                   capture_output=True, cwd=ROOT)
    fresh = out.read_text(encoding="utf-8")
    assert " at 0x" not in fresh, "a default's repr with a memory address leaked into the reference"
    committed = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert fresh == committed, "docs/reference.md is stale: run .venv/bin/python docs/build_reference.py"
