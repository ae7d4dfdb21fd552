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


_THREADS = r"""
import json, resource, threading
import numpy as np
from veinscope._memory import retain_freed_memory
def touch():
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones((3000, 4000, 3), np.float32)  # 144 MB: larger than a thread arena's heap
    f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del a
    return f1 - f0
out = {}
def first():
    retain_freed_memory()
    out["first"] = touch()
def later(i):
    out[i] = touch()
for target, args in [(first, ())] + [(later, (i,)) for i in range(3)]:
    t = threading.Thread(target=target, args=args)  # a new thread per rerun, as Streamlit does
    t.start()
    t.join()
print(json.dumps({"first": out["first"], "again": max(out[i] for i in range(3))}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc arenas")
def test_threads_reuse_memory_only_with_one_malloc_arena():
    # why `make app` starts Streamlit with MALLOC_ARENA_MAX=1: analyses run in script threads
    import os

    def run(arena_max):
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
        if arena_max:
            env["MALLOC_ARENA_MAX"] = arena_max
        r = subprocess.run([sys.executable, "-c", _THREADS], capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout.strip().splitlines()[-1])

    one, many = run("1"), run(None)
    assert one["first"] > 0 and many["first"] > 0
    assert one["again"] <= 0.1 * one["first"], one
    assert many["again"] >= 0.5 * many["first"], many


_KEEP = r"""
import json
from veinscope._memory import retain_freed_memory
retain_freed_memory()
from veinscope._memory import _numpy_huge_pages
print(json.dumps({"huge_pages_advised": _numpy_huge_pages(False)}))
"""


def test_retaining_memory_turns_numpys_huge_page_advice_off():
    # NumPy advises huge pages for large arrays; with the kernel's THP defrag at "madvise" each
    # fault in a growing heap may compact memory synchronously (0.3-1.7 s of system CPU per 12 MP
    # photo in the app, which keeps its results): retain_freed_memory() turns the advice off
    from veinscope._memory import _numpy_huge_pages

    r = subprocess.run([sys.executable, "-c", _KEEP], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    prev = _numpy_huge_pages(False)
    if prev is None:
        pytest.skip("this NumPy has no huge-page switch")
    _numpy_huge_pages(prev)
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"huge_pages_advised": False}
