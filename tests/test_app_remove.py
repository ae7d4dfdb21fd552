"""Session 39 (helper app39): removing a photo from a session, cheap refusals of photos of another
leg, and follow-ups compared with different photos of the first session.

Each test fails on main before session 39 (named in its docstring).
"""

from __future__ import annotations

import io

import pytest

pytest.importorskip("streamlit")

from tests.test_app import _leg_and_other_leg, _ok, _small_png, app, data_dir  # noqa: E402,F401  (fixtures)
from veinscope import app_support as sup  # noqa: E402


def _pair_dirs(cache):
    return sorted(d.name for d in cache.root.glob("cmp_*"))


def test_removing_a_photo_drops_what_was_derived_from_it_and_nothing_else(tmp_path):
    """Main has no way to take a photo out (AttributeError: remove_photo). The follow-up's photo of the
    other leg is refused, the right one compared; removing the wrong one leaves the comparison; removing
    the compared one drops the comparison (store row, pictures, masks) and Progress says not compared."""
    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-RM")
        store.add_patient("P-OTHER")
        base, other_leg, moved = _leg_and_other_leg()
        for code, day, name, data in (("P-RM", "2026-01-05", "before.jpg", base.jpeg),
                                      ("P-RM", "2026-03-02", "wrong_leg.jpg", other_leg.jpeg),
                                      ("P-RM", "2026-03-02", "right.jpg", moved),
                                      ("P-OTHER", "2026-01-05", "theirs.png", _small_png(5))):
            [out] = sup.import_uploads(store, cache, code, "calf", day, [(name, data)], px_per_mm=8.0)
            assert out.ok, out.message
        a, b = store.list_sessions("P-RM", "calf")
        view = sup.compare_sessions(store, cache, a.id, b.id)
        before, wrong, right = store.list_photos(code="P-RM")
        assert view.figures["photos"] == {"baseline": "before.jpg", "followup": "right.jpg",
                                          "baseline_id": before.id, "followup_id": right.id}
        cache.flush()
        assert len(_pair_dirs(cache)) == 2  # the refusal (wrong leg) and the comparison
        masks = {p.id: cache.rgb_key(__import__("veinscope").load_photo(p.path).rgb) for p in (before, wrong, right)}
        assert all((cache.root / f"masks_{k}.png").is_file() for k in masks.values())
        rows_before = sup.progress_rows(store, "P-RM", "calf", cache=cache)

        s = sup.remove_photo(store, cache, wrong.id, code="P-RM")
        assert (s.comparisons, s.photos_left, s.file_removed) == (0, 1, True)
        assert not wrong.path.exists() and not (cache.root / f"masks_{masks[wrong.id]}.png").exists()
        assert _pair_dirs(cache) == [f"cmp_{before.sha256[:20]}_{right.sha256[:20]}"]
        assert sup.progress_rows(store, "P-RM", "calf", cache=cache) == rows_before  # the comparison stays
        kept = sup.cached_comparison(store, cache, a.id, b.id).figures
        assert (kept["improvement_pct"], kept["photos"]) == (view.figures["improvement_pct"], view.figures["photos"])

        s = sup.remove_photo(store, cache, right.id)
        assert (s.comparisons, s.photos_left) == (1, 0)
        assert _pair_dirs(cache) == [] and store.list_comparisons("P-RM") == []
        assert (cache.root / f"masks_{masks[before.id]}.png").is_file()  # the baseline's overlay stays
        assert sup.cached_comparison(store, cache, a.id, b.id) is None
        rows = sup.progress_rows(store, "P-RM", "calf", cache=cache)
        assert not rows[1]["compared"] and rows[1]["photo_id"] is None
        with pytest.raises(sup.NotComparable, match="no photo yet"):
            sup.compare_sessions(store, cache, a.id, b.id)
        assert [p.original_name for p in store.list_photos(code="P-OTHER")] == ["theirs.png"]
        assert store.get_analysis(store.list_photos(code="P-OTHER")[0].id) is not None
        with pytest.raises(sup_store_error()):
            sup.remove_photo(store, cache, before.id, code="P-OTHER")  # another patient's photo: refused
        assert before.path.exists()
    finally:
        store.close()


def sup_store_error():
    from veinscope.store import StoreError

    return StoreError


def test_remove_from_the_session_page_asks_for_confirmation(app, data_dir):
    """The Session page of main has no remove action (no widget 'session_remove')."""
    store = sup.open_app_store(data_dir)
    cache = sup.DerivedCache.for_store(store)
    try:
        if not store.has_patient("P-REMOVE"):
            store.add_patient("P-REMOVE")
        for i, name in enumerate(("wrong.png", "right.png")):
            sup.import_uploads(store, cache, "P-REMOVE", "calf", "2026-01-05", [(name, _small_png(40 + i))],
                               px_per_mm=8.0)
        cache.flush()
    finally:
        store.close()
    app.session_state["patient"] = "P-REMOVE"
    app.run()
    app.switch_page("pages/session.py")
    app.run()
    _ok(app)
    assert app.selectbox(key="session_photo").value.original_name == "wrong.png"
    assert app.button(key="session_remove").disabled  # nothing happens without the confirmation
    app.checkbox(key="session_remove_confirm").check()
    app.run()
    assert not app.button(key="session_remove").disabled
    app.button(key="session_remove").click()
    app.run()
    _ok(app)
    assert any("wrong.png removed from the session of 2026-01-05" in s.value and "1 photo left" in s.value
               for s in app.success), [s.value for s in app.success]
    assert app.selectbox(key="session_photo").value.original_name == "right.png"
    assert not app.checkbox(key="session_remove_confirm").value  # not left ticked for the next photo
    store = sup.open_app_store(data_dir)
    try:
        assert [p.original_name for p in store.list_photos(code="P-REMOVE")] == ["right.png"]
        assert store.has_patient(sup.DEMO_CODE)
    finally:
        store.close()


def _photo(store, code, day, name, seed):
    from PIL import Image
    import numpy as np

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(90, 200, (240, 320, 3), dtype=np.uint8)).save(buf, "PNG")
    r = store.import_photo(code, "calf", day, buf.getvalue(), original_name=name, analyze=False)
    return r.photo


def test_follow_ups_compared_with_different_baseline_photos_each_show_their_own(tmp_path):
    """Follow-up 1 was compared with the first session's photo A; A was then found wrong and the right
    photo B imported, and follow-up 2 compared with B. On main every row read A's lengths (the first
    comparison's) and nothing said which photo each improvement is against (no 'baseline_photo_id')."""
    from veinscope.report.pdf import patient_report

    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-MIX")
        pa = _photo(store, "P-MIX", "2026-01-05", "first.jpg", 1)
        pb = _photo(store, "P-MIX", "2026-01-05", "second.jpg", 2)
        f1 = _photo(store, "P-MIX", "2026-02-16", "f1.jpg", 3)
        f2 = _photo(store, "P-MIX", "2026-03-30", "f2.jpg", 4)
        for ph, length in ((pa, 500.0), (pb, 420.0), (f1, 300.0), (f2, 200.0)):
            store.save_analysis(ph.id, {"px_per_mm": 10.0, "classes": {"total": {"length_mm": length}}})
        s0, s1, s2 = store.list_sessions("P-MIX", "calf")
        for s, base, fol, imp in ((s1, pa, f1, 40.0), (s2, pb, f2, 52.0)):
            store.save_comparison(s0.id, s.id, {"improvement_pct": imp, "photos": {
                "baseline": base.original_name, "followup": fol.original_name,
                "baseline_id": base.id, "followup_id": fol.id}})
        rows = sup.progress_rows(store, "P-MIX", "calf", cache=cache)
        assert [r["baseline_photo_id"] for r in rows] == [pa.id, pa.id, pb.id]
        assert [r["baseline_length_mm"] for r in rows] == [500.0, 500.0, 420.0]
        assert [r["baseline_photo_number"] for r in rows] == [1, 1, 2]
        assert [r["total_length_mm"] for r in rows] == [500.0, 300.0, 200.0]
        assert sup.mixed_baselines(rows)
        table = sup.progress_table(rows)
        assert [t["compared with (first-session photo)"] for t in table] == [
            "first.jpg (photo 1, 500 mm of vessels)", "first.jpg (photo 1, 500 mm of vessels)",
            "second.jpg (photo 2, 420 mm of vessels)"]
        note = sup.baseline_photos_note(rows)
        assert "2026-03-30 with second.jpg" in note and "2026-02-16 with first.jpg" in note
        csv_text = sup.progress_csv("P-MIX", "calf", rows).decode()
        assert "baseline_photo_id" in csv_text.splitlines()[0] and "first.jpg" not in csv_text  # no file names
        # one baseline photo for all: no extra column, no note
        one = [dict(r, baseline_photo_id=pa.id, baseline_photo_number=1) for r in rows]
        assert not sup.mixed_baselines(one) and sup.baseline_photos_note(one) is None
        assert "compared with (first-session photo)" not in sup.progress_table(one)[0]
        pdf = patient_report(patient_code="P-MIX", site="calf", rows=rows)
        text = _pdf_text(pdf)
        assert "Compared with" in text and "photo 2 (420 mm)" in text and "with its photo 1 (500 mm)" in text
        assert "first.jpg" not in text and "second.jpg" not in text  # no file names in the patient's report
        assert "Compared with" not in _pdf_text(patient_report(patient_code="P-MIX", site="calf", rows=one))
    finally:
        store.close()



def test_photo_numbers_in_the_report_stay_when_a_photo_is_removed(tmp_path):
    """Session 40 (maint40): the first session's photos are numbered in the order they were added and
    a removed photo keeps its number. On main (3f85c50) they were renumbered among the photos left:
    after the wrong photo 1 was removed, the PDF's "photo 2" and "photo 3" became "photo 1" and
    "photo 2", so a report made before named other photos than one made after."""
    from veinscope.report.pdf import patient_report

    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-NUM")
        wrong = _photo(store, "P-NUM", "2026-01-05", "wrong.jpg", 5)
        pa = _photo(store, "P-NUM", "2026-01-05", "first.jpg", 1)
        pb = _photo(store, "P-NUM", "2026-01-05", "second.jpg", 2)
        f1 = _photo(store, "P-NUM", "2026-02-16", "f1.jpg", 3)
        f2 = _photo(store, "P-NUM", "2026-03-30", "f2.jpg", 4)
        for ph, length in ((wrong, 10.0), (pa, 500.0), (pb, 420.0), (f1, 300.0), (f2, 200.0)):
            store.save_analysis(ph.id, {"px_per_mm": 10.0, "classes": {"total": {"length_mm": length}}})
        s0, s1, s2 = store.list_sessions("P-NUM", "calf")
        for s, base, fol, imp in ((s1, pa, f1, 40.0), (s2, pb, f2, 52.0)):
            store.save_comparison(s0.id, s.id, {"improvement_pct": imp, "photos": {
                "baseline": base.original_name, "followup": fol.original_name,
                "baseline_id": base.id, "followup_id": fol.id}})
        texts, labels = [], []
        for remove in (None, wrong):
            if remove is not None:
                assert store.remove_photo(remove.id).comparisons == 0  # neither comparison used it
            rows = sup.progress_rows(store, "P-NUM", "calf", cache=cache)
            assert [r["baseline_photo_number"] for r in rows] == [2, 2, 3]
            labels.append([t["compared with (first-session photo)"] for t in sup.progress_table(rows)])
            texts.append(_pdf_text(patient_report(patient_code="P-NUM", site="calf", rows=rows)))
        assert labels[0] == labels[1] == ["first.jpg (photo 2, 500 mm of vessels)", "first.jpg (photo 2, 500 mm of vessels)",
                                          "second.jpg (photo 3, 420 mm of vessels)"]
        for text in texts:
            assert "2026-03-30 with its photo 3 (420 mm)" in text and "2026-02-16 with its photo 2 (500 mm)" in text
            assert "a removed photo keeps its number" in text
        assert store.photo_numbers(s0.id) == {pa.id: 2, pb.id: 3}
        late = _photo(store, "P-NUM", "2026-01-05", "late.jpg", 6)  # added after the removal: the next number
        assert store.photo_numbers(s0.id) == {pa.id: 2, pb.id: 3, late.id: 4}
        assert store.photo_numbers(s1.id) == {f1.id: 1}
    finally:
        store.close()

def _pdf_text(pdf: bytes) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        return " ".join(" ".join(doc[i].get_textpage().get_text_range().split()) for i in range(len(doc)))
    finally:
        doc.close()


def test_photos_of_another_leg_are_refused_without_the_full_comparison(tmp_path, monkeypatch):
    """Main ran the whole comparison (both analyses, then the alignment) for every pair before it was
    refused: 2 x 3 photos with some of the other leg waited minutes. The quick same-site check refuses
    the wrong pairs without calling compare(); the right pair is compared as before."""
    import veinscope.compare

    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        store.add_patient("P-QUICK")
        from veinscope.synth import generate_photo

        base, other_leg, moved = _leg_and_other_leg()
        third_leg = generate_photo(seed=79, size=(960, 720), card=False)
        for day, name, data in (("2026-01-05", "wrong_leg.jpg", other_leg.jpeg), ("2026-01-05", "before.jpg", base.jpeg),
                                ("2026-03-02", "wrong_leg2.jpg", third_leg.jpeg), ("2026-03-02", "after.jpg", moved)):
            [out] = sup.import_uploads(store, cache, "P-QUICK", "calf", day, [(name, data)], px_per_mm=8.0)
            assert out.ok, out.message
        cache.forget()
        calls = []
        real = veinscope.compare.compare
        monkeypatch.setattr(veinscope.compare, "compare", lambda *a, **k: calls.append(1) or real(*a, **k))
        a, b = store.list_sessions("P-QUICK", "calf")
        view = sup.compare_sessions(store, cache, a.id, b.id)
        assert view.figures["photos"]["baseline"] == "before.jpg" and view.figures["photos"]["followup"] == "after.jpg"
        n_pairs = len(store.list_photos(session_id=a.id)) * len(store.list_photos(session_id=b.id))
        assert len(calls) == 1, (len(calls), n_pairs)  # only the right pair reached the full comparison
        note = sup.compare_wait_note(store, a.id, b.id)  # the prompt says how long, and that pairs are tried
        assert "about 10-30 s" in note and "hold 2 and 2 photos" in note and "set aside after a few seconds" in note
        reasons = [(d / "refused.txt").read_text() for d in cache.root.glob("cmp_*") if (d / "refused.txt").is_file()]
        assert len(reasons) == n_pairs - 1 and all("same area" in r or "overlap" in r for r in reasons), reasons
    finally:
        store.close()



def test_the_quick_check_aligns_photos_imported_with_the_cli_on_their_analysis_skin(tmp_path, monkeypatch):
    """Session 40 (maint40): ``veinscope import`` kept no class or skin masks, so the quick same-site
    check aligned a CLI-imported baseline on register's own skin mask (``baseline_skin=None``; main
    3f85c50), where the comparison aligns on the analysis' skin. The CLI now keeps the masks as the
    app's import does, and the quick check gets the baseline's analysis skin."""
    import numpy as np

    import veinscope.register
    from veinscope import analyze, load_photo
    from veinscope.cli import main

    base, other_leg, moved = _leg_and_other_leg()
    files = {}
    for name, data in (("before.jpg", base.jpeg), ("wrong_leg.jpg", other_leg.jpeg), ("after.jpg", moved)):
        files[name] = tmp_path / name
        files[name].write_bytes(data)
    where = ["--database-url", f"sqlite:///{tmp_path / 'data' / 'veinscope.sqlite3'}", "--data-dir", str(tmp_path / "data")]
    assert main(["db", "init", *where]) == 0
    assert main(["patient", "add", "P-CLI", *where]) == 0
    for day, names in (("2026-01-05", ["before.jpg"]), ("2026-03-02", ["wrong_leg.jpg", "after.jpg"])):
        assert main(["import", "--patient", "P-CLI", "--site", "calf", "--date", day, "--px-per-mm", "8",
                     *(str(files[n]) for n in names), *where]) == 0
    store = sup.open_app_store(tmp_path / "data")
    try:
        cache = sup.DerivedCache.for_store(store)
        seen = []
        real = veinscope.register.register
        monkeypatch.setattr(veinscope.register, "register", lambda *a, **k: seen.append(k) or real(*a, **k))
        a, b = store.list_sessions("P-CLI", "calf")
        [pa] = store.list_photos(session_id=a.id)
        wrong, right = sorted(store.list_photos(session_id=b.id), key=lambda p: p.id)
        why = sup._quick_refusal(store, cache, pa, wrong)
        assert why is not None and ("same area" in why or "overlap" in why), why
        assert sup._quick_refusal(store, cache, pa, right) is None
        skin = analyze(load_photo(files["before.jpg"].read_bytes()), px_per_mm=8.0).skin
        assert seen and all(k["baseline_skin"] is not None and np.array_equal(k["baseline_skin"], skin) for k in seen)
    finally:
        store.close()

def test_a_session_left_without_photos_is_not_offered_for_comparison(tmp_path):
    """Review rev39: once every photo of a session is removed, main listed its pair as not compared
    yet (``missing_comparisons``), so Progress and Export offered "Compare them now" for ever, each
    try ending in "One of the sessions has no photo yet". Now the pair is not listed and the
    session is named as having no photo."""
    store = sup.open_app_store(tmp_path / "data")
    try:
        store.add_patient("P-EMPTY")
        base, f1, f2 = (_photo(store, "P-EMPTY", day, f"{i}.png", i)
                        for i, day in enumerate(("2026-01-05", "2026-02-16", "2026-03-30")))
        s0, s1, s2 = store.list_sessions("P-EMPTY", "calf")
        store.remove_photo(f1.id)
        rows = sup.progress_rows(store, "P-EMPTY", "calf")
        assert sup.missing_comparisons(rows) == [(s0.id, s2.id)]
        assert sup.sessions_without_photos(rows) == ["2026-02-16"]
        store.remove_photo(base.id)  # the first session empty: nothing can be compared with it
        rows = sup.progress_rows(store, "P-EMPTY", "calf")
        assert sup.missing_comparisons(rows) == []
        assert sup.sessions_without_photos(rows) == ["2026-01-05", "2026-02-16"]
    finally:
        store.close()


def test_progress_names_a_session_without_photos(app, data_dir):
    """Review rev39: main's Progress page offered to compare a session whose photos were all removed."""
    store = sup.open_app_store(data_dir)
    try:
        if not store.has_patient("P-NOPHOTO"):
            store.add_patient("P-NOPHOTO")
            _photo(store, "P-NOPHOTO", "2026-01-05", "a.png", 11)
            gone = _photo(store, "P-NOPHOTO", "2026-02-16", "b.png", 12)
            store.remove_photo(gone.id)
    finally:
        store.close()
    app.session_state["patient"] = "P-NOPHOTO"
    app.run()
    app.switch_page("pages/progress.py")
    app.run()
    _ok(app)
    assert not any(b.key == "progress_compare" for b in app.button)
    assert any("No photo in the session of 2026-02-16 (removed)" in i.value for i in app.info), [i.value for i in app.info]
