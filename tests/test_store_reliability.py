"""Crash safety and concurrency of the store, with real processes (SQLite and PostgreSQL).

- kill -9 of an import at a random moment, 100 trials: after every kill the store is
  consistent (no half file under a final name, no row without its file, every photo
  committed before the kill still there and intact); `check(repair=True)` removes what the
  kill left (a ``.part`` file, a file whose row was never committed) and nothing else.
- two processes importing into the same session at once (some photos in both): 0 rows lost,
  each photo stored once, no "database is locked" surfaced.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.store_fixtures import (  # noqa: F401  (fixtures)
    ROOT,
    make_photo,
    pg_admin_url,
    pg_url,
    store,
    target,
)

N_TRIALS = 100
PHOTOS_PER_TRIAL = 4


class Zygote:
    """A helper process that forks one importer per trial (see store_fixtures.zygote_main)."""

    def __init__(self, target, code, *, real_analysis=False):
        snippet = "from tests.store_fixtures import zygote_main; zygote_main()"
        args = [sys.executable, "-c", snippet, target.url, str(target.data_dir), code]
        env = target.env()
        if real_analysis:
            args.append("analyze")
            env["NUMBA_THREADING_LAYER"] = "workqueue"  # GNU OpenMP does not survive fork()
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env, cwd=ROOT, bufsize=0)
        self._buf = b""
        line = self.readline(timeout=120)
        assert line.startswith("zygote"), line + self.p.stderr.read().decode()

    def readline(self, timeout=60.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                raise TimeoutError(f"no line from the helper process in {timeout} s")
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError("helper process ended: " + self.p.stderr.read().decode()[-2000:])
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def trial(self, seed, n, kill_after_s):
        """Run one importer; SIGKILL it ``kill_after_s`` after it started (None: let it finish)."""
        self.p.stdin.write(f"run {seed} {n}\n".encode())
        line = self.readline()
        assert line.startswith("ready"), line
        pid = int(line.split()[1])
        t0 = time.monotonic()
        if kill_after_s is not None:
            time.sleep(kill_after_s)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        committed = []
        while True:
            line = self.readline()
            if line.startswith("committed"):
                committed.append(line.split()[1])
            elif line.startswith("exit"):
                status = int(line.split()[2])
                break
        return committed, status, time.monotonic() - t0

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()


def _verify(store, committed, hashed=None):
    """The store is consistent and holds every photo committed so far, intact.

    Files are re-hashed once each (``hashed`` remembers which); sizes and presence every time.
    """
    report = store.check(verify_hashes=hashed is None)
    assert report.missing == () and report.corrupt == (), report
    for rel in report.orphans:  # a file left by the kill is complete: its content matches its name
        assert store.files.file_sha256(rel) == rel.split("/")[-1].split(".")[0], "half file under a final name"
    rows = {p.sha256: p for p in store.list_photos()}
    for sha in committed:
        assert sha in rows, f"committed photo {sha[:12]} lost"
    for sha, p in rows.items():
        assert p.analyses == 1  # analysis saved with every photo, in the same transaction
        if hashed is not None and sha not in hashed:
            assert store.files.file_sha256(p.stored_path) == sha, "half-written or damaged file"
            assert p.size_bytes == p.path.stat().st_size
            hashed.add(sha)
    return report


@pytest.mark.slow
def test_kill9_during_import_leaves_a_consistent_store(target, store, record_property):
    code = "P-KILL"
    store.add_patient(code)
    z = Zygote(target, code)
    rng = np.random.default_rng(7)
    try:
        # how long an uninterrupted importer takes (median of 3): the kills fall within that span
        committed, spans = [], []
        for seed in (10_000, 10_001, 10_002):
            got, status, span = z.trial(seed, PHOTOS_PER_TRIAL, None)
            assert status == 0 and len(got) == PHOTOS_PER_TRIAL
            committed += got
            spans.append(span)
        full_s = float(np.median(spans))
        hashed: set[str] = set()
        outcome = {"killed": 0, "finished": 0, "leftovers": 0, "orphans": 0, "photos_committed": 0}
        t0 = time.monotonic()
        for trial in range(N_TRIALS):
            got, status, _ = z.trial(trial, PHOTOS_PER_TRIAL, float(rng.uniform(0.0, full_s)))
            committed += got
            outcome["photos_committed"] += len(got)
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
                outcome["killed"] += 1
            else:
                outcome["finished"] += 1
            report = _verify(store, committed, hashed)
            outcome["leftovers"] += bool(report.temporaries)
            outcome["orphans"] += bool(report.orphans)
            if not report.ok:
                fixed = store.check(repair=True)
                assert fixed.missing == () and fixed.corrupt == ()
                assert store.check().ok
                _verify(store, committed, hashed)  # repair removed nothing that was saved
        elapsed = time.monotonic() - t0
    finally:
        z.close()
    _verify(store, committed)  # every file re-hashed
    final = store.check()
    assert final.ok and final.photos == len(set(store.list_photos())) >= len(set(committed))
    record_property("kill9", {**outcome, "trials": N_TRIALS, "seconds": round(elapsed, 1),
                              "importer_s": round(full_s, 3)})
    print(f"\nkill -9 [{target.kind}]: {outcome}, {N_TRIALS} trials in {elapsed:.1f} s "
          f"(uninterrupted importer of {PHOTOS_PER_TRIAL} photos: {full_s:.3f} s)")
    # the kills landed in different phases (timing on a loaded machine varies, hence loose bounds)
    assert outcome["killed"] >= N_TRIALS // 4
    assert outcome["photos_committed"] > 0


@pytest.mark.slow
def test_kill9_during_import_with_the_real_analysis(tmp_path):
    """Fewer trials, on SQLite, with veinscope.analyze running in the killed importer."""
    from tests.store_fixtures import Target
    from veinscope.store import open_store

    target = Target("sqlite", f"sqlite:///{tmp_path / 'd' / 'veinscope.sqlite3'}", tmp_path / "d")
    with open_store(target.url, data_dir=target.data_dir) as st:
        st.add_patient("P-REAL")
        z = Zygote(target, "P-REAL", real_analysis=True)
        rng = np.random.default_rng(3)
        try:
            committed, status, full_s = z.trial(20_000, 3, None)
            assert status == 0 and len(committed) == 3
            for trial in range(10):
                got, _, _ = z.trial(trial, 3, float(rng.uniform(0, full_s)))
                committed += got
                _verify(st, committed)
                st.check(repair=True)
                assert st.check().ok
        finally:
            z.close()
        a = st.get_analysis(st.list_photos()[0].id)
        assert a["version"] and "classes" in a


def _start_worker(target, code, seeds):
    snippet = "from tests.store_fixtures import concurrent_worker_main; concurrent_worker_main()"
    return subprocess.Popen([sys.executable, "-c", snippet, target.url, str(target.data_dir), code,
                             ",".join(map(str, seeds))], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=target.env(), cwd=ROOT, text=True)


@pytest.mark.slow
def test_two_processes_importing_at_once_lose_nothing(target, record_property):
    """Both start on an empty database (schema creation races too), same patient, site and date."""
    code = "P-CONC"
    n = 30
    shared = list(range(500, 510))  # imported by both: must end up stored once
    seeds_a = list(range(0, n)) + shared
    seeds_b = list(range(1000, 1000 + n)) + shared[::-1]
    workers = [_start_worker(target, code, s) for s in (seeds_a, seeds_b)]
    time.sleep(1.0)  # let both decode their photos; then start together
    t0 = time.monotonic()
    for w in workers:
        w.stdin.write("go\n")
        w.stdin.flush()
    outs = [w.communicate(timeout=300) for w in workers]
    elapsed = time.monotonic() - t0
    for w, (out, err) in zip(workers, outs, strict=True):
        assert w.returncode == 0, err[-3000:]
        assert "locked" not in (out + err).lower() and "busy" not in (out + err).lower()
    statuses = [line.split() for out, _ in outs for line in out.splitlines()]
    assert len(statuses) == 2 * (n + len(shared))
    imported = [sha for st, sha in statuses if st == "imported"]
    expected = {make_photo_sha(s) for s in seeds_a + seeds_b}
    assert len(imported) == len(expected) == 2 * n + len(shared)  # each photo imported exactly once
    with target.open() as st:
        photos = st.list_photos(code=code)
        assert {p.sha256 for p in photos} == expected  # 0 rows lost, no duplicates
        assert len(st.list_sessions(code)) == 1 and len(st.list_sites(code)) == 1
        assert st.check().ok
    record_property("concurrent", {"photos": len(expected), "seconds": round(elapsed, 2)})
    print(f"\nconcurrent [{target.kind}]: 2 processes, {2 * (n + len(shared))} imports "
          f"({len(expected)} distinct photos) in {elapsed:.2f} s, 0 lost")


def make_photo_sha(seed):
    import hashlib

    return hashlib.sha256(make_photo(seed)).hexdigest()


def test_opening_waits_while_another_process_holds_the_new_database_locked(tmp_path):
    """A second process opening a new store while the first still creates the schema (holding
    SQLite's write lock) waits and opens it, rather than failing with "database is locked"."""
    import sqlite3
    import threading

    from veinscope.store import open_store

    data = tmp_path / "data"
    data.mkdir()
    db = data / "veinscope.sqlite3"
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    # as a schema migration in another process would: it holds the write lock, then commits
    # while this process is in its own transaction (SQLite then answers "locked" at once)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE other_process (a INTEGER)")
    threading.Timer(1.5, lambda: holder.execute("COMMIT")).start()
    t0 = time.monotonic()
    store = open_store(f"sqlite:///{db}", data_dir=data)
    waited = time.monotonic() - t0
    try:
        assert waited >= 1.0  # it did meet the lock, and waited for it
        store.add_patient("P-LOCK")
        assert [p.code for p in store.list_patients()] == ["P-LOCK"]
    finally:
        store.close()
        holder.close()
