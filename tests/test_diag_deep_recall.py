"""benchmarks/diag_deep_recall.py (session 37, deep37): its usage names analyze's own options."""

import ast
import inspect
import re
from pathlib import Path

from veinscope.pipeline import analyze

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "diag_deep_recall.py"


def test_the_usage_sets_only_analyze_options():
    # session 37 (rev37): the usage named deep_veins_scale_mm, which analyze has not (a TypeError)
    doc = ast.get_docstring(ast.parse(_PATH.read_text(encoding="utf-8")))
    keys = re.findall(r"--set (\w+)=", doc)
    assert keys
    params = inspect.signature(analyze).parameters
    assert [k for k in keys if k not in params] == []
