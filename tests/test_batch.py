"""``veinscope batch`` / ``reanalyze``: outputs, resume, failures, CSV, exit codes, Dask = local.

Photos are small generated legs (320 x 240 px) so the whole file stays well under a minute on a
loaded 2-core machine; throughput on 12 MP photos is measured in benchmarks/bench_batch.py.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from veinscope._version import __version__
from veinscope.batch import (
    SUMMARY_COLUMNS,
    _output_names,
    collect_photos,
    read_manifest,
    reanalyze_store,
    run_batch,
)
from veinscope.cli import main

PPM = 8.0
OUTPUT_FILES = {"analysis.json", "labels.png", "diameter_mm.tif", "overlay.png"}


@pytest.fixture(scope="module")
def legs(tmp_path_factory) -> Path:
    """Three small generated leg photos (one in a sub-folder) and a corrupt 'photo'."""
    from veinscope.synth import generate_photo

    d = tmp_path_factory.mktemp("legs")
    (d / "visit2").mkdir()
    for seed, name in [(1, "leg_a.jpg"), (2, "leg_b.png"), (3, "visit2/leg_c.jpg")]:
        p = generate_photo(seed=seed, size=(320, 240), px_per_mm=PPM, card=False, n_vessels=4)
        Image.fromarray(p.rgb).save(d / name, quality=92)
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (d / "notes.txt").write_text("not a photo")
    return d


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _analysis(out: Path, name: str) -> dict:
    d = json.loads((out / name / "analysis.json").read_text())
    d["parameters"].pop("seconds")
    return d


def test_collect_photos_folder_recursive_glob_and_missing(legs):
    top = collect_photos(legs)
    assert [p.name for p in top] == ["corrupt.jpg", "leg_a.jpg", "leg_b.png"]  # no .txt, no sub-folder
    assert [p.name for p in collect_photos(legs, recursive=True)] == ["corrupt.jpg", "leg_a.jpg", "leg_b.png", "leg_c.jpg"]
    assert [p.name for p in collect_photos(str(legs / "**" / "leg_*.jpg"))] == ["leg_a.jpg", "leg_c.jpg"]
    # the same file named twice is taken once
    assert len(collect_photos([legs / "leg_a.jpg", str(legs / "leg_a.*")])) == 1
    with pytest.raises(FileNotFoundError, match="nope"):
        collect_photos([legs / "nope"])


def test_output_names_are_relative_and_unique():
    names = _output_names([Path("/c/p1/leg.jpg"), Path("/c/p1/leg.png"), Path("/c/p2/leg.jpg"), Path("/c/p2/a.jpg")])
    assert names == ["p1/leg.jpg", "p1/leg.png", "p2/leg", "p2/a"]
    assert _output_names([]) == []


def test_batch_outputs_failure_csv_and_resume(legs, tmp_path):
    out = tmp_path / "out"
    photos = collect_photos(legs)
    seen = []
    report = run_batch(photos, out, jobs=1, px_per_mm=PPM, progress=seen.append)
    assert report.counts == {"done": 2, "skipped": 0, "failed": 1}
    assert len(seen) == 3
    # per-photo outputs: the analyze contract
    for name in ("leg_a", "leg_b"):
        assert {p.name for p in (out / name).iterdir()} == OUTPUT_FILES
        d = _analysis(out, name)
        assert d["version"] == __version__ and d["px_per_mm"] == PPM and d["photo"]["name"] == name
    labels = np.asarray(Image.open(out / "leg_a" / "labels.png"))
    assert labels.shape == (240, 320)
    # the corrupt file is reported with a reason naming it, and nothing is written for it
    [bad] = report.failed
    assert bad.item.path.name == "corrupt.jpg" and "corrupt.jpg" in bad.error
    assert not (out / "corrupt").exists()

    # summary.csv: one row per photo, unit suffixes in the figure columns
    rows = _csv(out / "summary.csv")
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    assert {"total_length_mm", "total_coverage_pct", "total_area_mm2", "reticular_diameter_median_mm"} <= set(rows[0])
    figure_cols = [c for c in SUMMARY_COLUMNS if c.startswith(("red_", "blue_", "reticular_", "over_3mm_", "total_"))]
    assert all(c.endswith(("_mm", "_mm2", "_pct", "_px", "_px2", "_segments")) for c in figure_cols)
    by = {r["output"]: r for r in rows}
    assert by["corrupt"]["status"] == "failed" and by["corrupt"]["error"]
    a = json.loads((out / "leg_a" / "analysis.json").read_text())
    assert by["leg_a"]["status"] == "done"
    assert float(by["leg_a"]["total_length_mm"]) == pytest.approx(a["classes"]["total"]["length_mm"])
    assert float(by["leg_a"]["total_coverage_pct"]) == pytest.approx(a["classes"]["total"]["coverage_pct"])

    # re-run: done photos are skipped (files untouched), the failed one is tried again
    mtime = (out / "leg_a" / "analysis.json").stat().st_mtime_ns
    again = run_batch(photos, out, jobs=1, px_per_mm=PPM)
    assert again.counts == {"done": 0, "skipped": 2, "failed": 1}
    assert (out / "leg_a" / "analysis.json").stat().st_mtime_ns == mtime
    assert len(_csv(out / "summary.csv")) == 3

    # keyed on content: a changed photo is analysed again, under its new hash
    work = tmp_path / "work"
    shutil.copytree(legs, work, ignore=shutil.ignore_patterns("visit2", "corrupt.jpg"))
    out2 = tmp_path / "out2"
    assert run_batch(collect_photos(work), out2, jobs=1, px_per_mm=PPM).counts["done"] == 2
    Image.fromarray(np.asarray(Image.open(work / "leg_b.png"))[::-1].copy()).save(work / "leg_b.png")
    r = run_batch(collect_photos(work), out2, jobs=1, px_per_mm=PPM)
    assert r.counts == {"done": 1, "skipped": 1, "failed": 0}
    # ... and so is everything when the scale changes, or the version recorded differs
    assert run_batch(collect_photos(work), out2, jobs=1, px_per_mm=PPM * 1.1).counts["done"] == 2
    man = out2 / "manifest.jsonl"
    man.write_text(man.read_text().replace(f'"version": "{__version__}"', '"version": "0.0.old"'))
    assert run_batch(collect_photos(work), out2, jobs=1, px_per_mm=PPM * 1.1).counts["done"] == 2


def test_manifest_survives_a_torn_last_line(legs, tmp_path):
    out = tmp_path / "out"
    run_batch([legs / "leg_a.jpg"], out, jobs=1, px_per_mm=PPM)
    with open(out / "manifest.jsonl", "a") as fh:
        fh.write('{"output": "leg_a", "status": "do')  # a crash mid-write
    assert read_manifest(out)["leg_a"]["status"] == "done"
    assert run_batch([legs / "leg_a.jpg"], out, jobs=1, px_per_mm=PPM).counts["skipped"] == 1
    # outputs deleted by hand: done again
    shutil.rmtree(out / "leg_a")
    assert run_batch([legs / "leg_a.jpg"], out, jobs=1, px_per_mm=PPM).counts["done"] == 1


def test_cli_batch_in_worker_processes_matches_one_process(legs, tmp_path, capsys):
    """-j 2 (spawned, warmed-up workers) gives the same results as -j 1; exit codes 0 / 1 / 2."""
    good = tmp_path / "good"
    good.mkdir()
    for n in ("leg_a.jpg", "leg_b.png"):
        shutil.copy(legs / n, good / n)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["batch", str(good), "--out", str(one), "-j", "1", "--px-per-mm", "8", "--no-progress"]) == 0
    assert main(["batch", str(good / "*.*"), "--out", str(two), "-j", "2", "--px-per-mm", "8", "--no-progress"]) == 0
    assert "2 analysed, 0 already done, 0 failed" in capsys.readouterr().out
    for name in ("leg_a", "leg_b"):
        assert _analysis(one, name) == _analysis(two, name)
        assert (one / name / "labels.png").read_bytes() == (two / name / "labels.png").read_bytes()
    # resumed: nothing to do
    assert main(["batch", str(good), "--out", str(two), "-j", "2", "--no-progress", "--px-per-mm", "8"]) == 0
    assert "0 analysed, 2 already done" in capsys.readouterr().out
    # a corrupt photo among good ones: the rest is done, exit 1, the reason on stderr
    shutil.copy(legs / "corrupt.jpg", good / "corrupt.jpg")
    assert main(["batch", str(good), "--out", str(two), "-j", "2", "--no-progress", "--px-per-mm", "8"]) == 1
    captured = capsys.readouterr()
    assert "corrupt.jpg: FAILED" in captured.err and "1 failed" in captured.out
    # usage errors: nothing found, a missing folder, a bad -j, --out is a file
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["batch", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert main(["batch", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert main(["batch", str(good), "--out", str(tmp_path / "o"), "-j", "0"]) == 2
    assert main(["batch", str(good), "--out", str(good / "leg_a.jpg")]) == 2
    assert main(["batch", str(good), "--out", str(tmp_path / "o"), "--px-per-mm", "-3"]) == 2


def test_cli_batch_out_under_a_file_says_what_to_do(legs, tmp_path, capsys):
    """--out inside an existing file: a practitioner's message (was "[Errno 20] Not a directory")."""
    a_file = tmp_path / "results.csv"
    a_file.write_text("x")
    assert main(["batch", str(legs / "leg_a.jpg"), "--out", str(a_file / "out" / "today"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Errno" not in err and f"{a_file} is a file, not a folder" in err, err


def test_batch_on_dask_cluster_matches_local_run(legs, tmp_path):
    distributed = pytest.importorskip("distributed")
    photos = [legs / "leg_a.jpg", legs / "leg_b.png", legs / "visit2" / "leg_c.jpg", legs / "corrupt.jpg"]
    local = run_batch(photos, tmp_path / "local", jobs=1, px_per_mm=PPM)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = run_batch(photos, tmp_path / "dask", px_per_mm=PPM, scheduler=cluster.scheduler_address)
        # the command line, with --scheduler
        argv = ["batch", str(legs / "leg_a.jpg"), "--out", str(tmp_path / "cli"), "--px-per-mm", "8",
                "--scheduler", cluster.scheduler_address, "--no-progress"]
        assert main(argv) == 0
    assert _analysis(tmp_path / "cli", "leg_a") == _analysis(tmp_path / "local", "leg_a")
    assert remote.counts == local.counts == {"done": 3, "skipped": 0, "failed": 1}
    for name in ("leg_a", "leg_b", "visit2/leg_c"):
        assert _analysis(tmp_path / "dask", name) == _analysis(tmp_path / "local", name)
        assert (tmp_path / "dask" / name / "labels.png").read_bytes() == (tmp_path / "local" / name / "labels.png").read_bytes()
    drop = {"seconds"}
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(_csv(tmp_path / "dask" / "summary.csv")) == strip(_csv(tmp_path / "local" / "summary.csv"))


def test_reanalyze_store_records_the_new_version(legs, tmp_path, capsys):
    from veinscope.store import open_store

    data = tmp_path / "data"
    with open_store(data) as store:
        store.add_patient("P-1")
        r1 = store.import_photo("P-1", "left calf", "2026-03-02", legs / "leg_a.jpg", analyze=False)
        r2 = store.import_photo("P-1", "left calf", "2026-04-13", legs / "leg_b.png", analyze=False)
        old = {"version": "0.0.old", "px_per_mm": PPM, "parameters": {"scale_source": "manual"}, "classes": {}}
        store.save_analysis(r1.photo.id, old)
        # photo 2 was never analysed
        outcomes = reanalyze_store(store, jobs=1)
        assert [o.status for o in outcomes] == ["done", "done"]
        assert outcomes[0].previous_version == "0.0.old" and outcomes[0].px_per_mm == PPM  # manual scale kept
        assert outcomes[1].previous_version is None and outcomes[1].px_per_mm is None
        latest = store.get_analysis(r1.photo.id)
        assert latest["version"] == __version__ and latest["px_per_mm"] == PPM
        assert [a["version"] for a in store.list_analyses(r1.photo.id)] == ["0.0.old", __version__]
        # resumable: up to date photos are skipped
        assert [o.status for o in reanalyze_store(store, jobs=1)] == ["skipped", "skipped"]
        assert r2.photo.id
    assert main(["reanalyze", "--data-dir", str(data), "--no-progress", "-j", "1"]) == 0
    assert "0 photo(s) analysed again" in capsys.readouterr().out
    assert main(["reanalyze", "--data-dir", str(data), "--no-progress", "-j", "1", "--patient", "P-404"]) == 1


def _crash_on_boom(data, name, **kwargs):
    """Stand-in for analyse_bytes whose worker process dies on the photo named 'boom'."""
    import os

    if name == "boom":
        os._exit(3)
    return {"ok": True, "seconds": 0.0, "name": name}


def test_a_dying_worker_fails_its_photos_and_the_rest_go_on():
    from veinscope.batch import run_tasks

    names = ["boom"] + [f"n{i}" for i in range(11)]
    results = dict(run_tasks(((n, (b"", n), {}) for n in names), jobs=2, fn=_crash_on_boom))
    assert sorted(results) == sorted(names)  # every photo is reported once, nothing raised
    assert not results["boom"]["ok"] and "stopped unexpectedly" in results["boom"]["error"]
    assert results["n10"]["ok"]  # submitted after the crash: done by a fresh pool


def test_scheduler_without_the_dask_extra_is_a_usage_error(legs, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if veinscope[dask] were not installed
    argv = ["batch", str(legs / "leg_a.jpg"), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9", "--no-progress"]
    assert main(argv) == 2
    assert "veinscope[dask]" in capsys.readouterr().err


def test_batch_files_are_those_of_veinscope_analyze(legs, tmp_path):
    """The worker encodes the four files in memory; they are the files `veinscope analyze` writes."""
    import tifffile

    out = tmp_path / "batch"
    assert run_batch([legs / "leg_a.jpg"], out, jobs=1, px_per_mm=PPM).counts["done"] == 1
    assert main(["analyze", str(legs / "leg_a.jpg"), "--out", str(tmp_path / "one"), "--px-per-mm", "8"]) == 0
    for name in ("labels.png", "overlay.png"):
        assert np.array_equal(np.asarray(Image.open(out / "leg_a" / name)), np.asarray(Image.open(tmp_path / "one" / name)))
    assert np.array_equal(tifffile.imread(out / "leg_a" / "diameter_mm.tif"), tifffile.imread(tmp_path / "one" / "diameter_mm.tif"))
    assert _analysis(out, "leg_a") == _analysis(tmp_path, "one")
    assert not list(out.rglob("*.tmp"))  # every file renamed into place


def test_worker_makes_the_figures_once_per_photo(legs, monkeypatch):
    """analyse_bytes hands the analysis.json figures it made to the encoders (they are not made
    again for the JSON file and the overlay's legend); the files are those made without them."""
    from veinscope._cli_analyze import encode_analysis
    from veinscope.batch import analyse_bytes
    from veinscope.measure import Analysis

    made = []
    to_dict = Analysis.to_dict

    def counting(self):
        made.append(1)
        return to_dict(self)

    monkeypatch.setattr(Analysis, "to_dict", counting)
    res = analyse_bytes((legs / "leg_a.jpg").read_bytes(), "leg_a", px_per_mm=PPM)
    assert res["ok"] and len(made) == 1
    from veinscope.io import load_photo
    from veinscope.pipeline import analyze

    ph = load_photo(legs / "leg_a.jpg")
    again = encode_analysis(analyze(ph, px_per_mm=PPM), ph.rgb)  # figures made here
    assert set(again) == OUTPUT_FILES
    for name in ("labels.png", "diameter_mm.tif", "overlay.png"):
        assert res["files"][name] == again[name]
    strip = (lambda d: {**d, "parameters": {k: v for k, v in d["parameters"].items() if k != "seconds"}})
    assert strip(json.loads(res["files"]["analysis.json"])) == strip(json.loads(again["analysis.json"]))
    assert json.loads(res["files"]["analysis.json"])["parameters"]["seconds"] == res["analysis"]["parameters"]["seconds"]


def test_overlay_vessel_pixels_are_numpys_flatnonzero():
    """render_overlay finds the vessel pixels with OpenCV's scan: NumPy's indices, in its order."""
    from veinscope.report.overlay import _flat_nonzero

    rng = np.random.default_rng(5)
    for shape, frac in [((301, 407), 0.03), ((64, 1), 0.5), ((1, 70), 0.2), ((50, 60), 0.0), ((40, 30), 1.0)]:
        img = np.where(rng.random(shape) < frac, rng.integers(1, 5, shape), 0).astype(np.uint8)
        got = _flat_nonzero(img)
        np.testing.assert_array_equal(got, np.flatnonzero(img))
        assert got.dtype == np.intp
    strided = np.zeros((40, 80), np.uint8)
    strided[3, 5::7] = 2
    np.testing.assert_array_equal(_flat_nonzero(strided[:, ::2]), np.flatnonzero(strided[:, ::2]))
