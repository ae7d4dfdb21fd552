"""Keeping freed image memory for reuse (veinscope._memory): fewer page faults, same results."""

import json
import subprocess
import sys

import pytest

_FAULTS = r"""
import json, resource, sys
import numpy as np
from veinscope._memory import retain_freed_memory
on = retain_freed_memory() if sys.argv[1] == "retain" else False
def touch():
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones((3000, 4000), np.float32)  # 48 MB, written once
    f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del a
    return f1 - f0
first = touch()
again = [touch() for _ in range(3)]
print(json.dumps({"on": on, "first": first, "again": max(again)}))
"""


def _faults(mode: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_image_memory_is_reused_without_new_page_faults():
    retained = _faults("retain")
    plain = _faults("plain")
    assert retained["on"] is True
    # the first 48 MB array faults its pages in either way
    assert retained["first"] > 0 and plain["first"] > 0
    # freed and allocated again: the same pages are reused when retained, fresh ones otherwise
    assert retained["again"] <= 0.1 * retained["first"], retained
    assert plain["again"] >= 0.5 * plain["first"], plain


def test_retain_is_idempotent_and_release_is_safe():
    from veinscope._memory import release_memory, retain_freed_memory

    first = retain_freed_memory()
    assert retain_freed_memory() is first
    assert release_memory() in (True, False)
