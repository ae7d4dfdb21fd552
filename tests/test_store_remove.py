"""Taking one photo out of a session (``Store.remove_photo``, ``veinscope photo remove``), SQLite and PostgreSQL.

Every test here fails on main before session 39 (there was no way to remove a photo).
"""

from __future__ import annotations

import json

import pytest

from tests.store_fixtures import (  # noqa: F401  (fixtures)
    fake_analyze,
    make_photo,
    pg_admin_url,
    pg_url,
    store,
    target,
)
from veinscope.cli import main
from veinscope.store import StoreError

CODE = "P-0042"
NAME = "Jane Testperson"


def _course(store):
    """Patient CODE: baseline session with photos 0 (wrong leg) and 1, follow-up with 2; another patient."""
    store.add_patient(CODE)
    store.add_patient("P-0007")
    imp = lambda code, day, seed, name: store.import_photo(code, "left calf", day, make_photo(seed), original_name=name,
                                                           analyze=fake_analyze).photo
    wrong = imp(CODE, "2026-01-05", 1, f"{NAME} wrong leg.png")
    right = imp(CODE, "2026-01-05", 2, "right.png")
    follow = imp(CODE, "2026-02-16", 3, "follow.png")
    theirs = imp("P-0007", "2026-01-05", 4, "theirs.png")
    return wrong, right, follow, theirs


def test_remove_photo_takes_its_rows_file_and_comparisons_and_nothing_else(target, store):
    wrong, right, follow, theirs = _course(store)
    sa, sb = wrong.session_id, follow.session_id
    # one comparison made with the wrong photo (ids recorded), one with the right one, one recorded by name only
    store.save_comparison(sa, sb, {"improvement_pct": 5.0, "photos": {"baseline": wrong.original_name,
                                                                      "followup": "follow.png",
                                                                      "baseline_id": wrong.id, "followup_id": follow.id}})
    keep_id = store.save_comparison(sa, sb, {"improvement_pct": 40.0, "photos": {"baseline": "right.png",
                                                                                 "followup": "follow.png",
                                                                                 "baseline_id": right.id,
                                                                                 "followup_id": follow.id}})
    store.save_comparison(sa, sb, {"improvement_pct": 6.0, "photos": {"baseline": wrong.original_name,
                                                                      "followup": "follow.png"}})
    before_theirs = store.list_comparisons("P-0007")
    s = store.remove_photo(wrong.id, code=CODE)
    assert (s.photo_id, s.session_id, s.analyses, s.comparisons, s.photos_left, s.file_removed) == \
        (wrong.id, sa, 1, 2, 1, True)
    assert not wrong.path.exists()
    assert [p.id for p in store.list_photos(code=CODE)] == [right.id, follow.id]
    assert [c["id"] for c in store.list_comparisons(CODE)] == [keep_id]
    assert store.get_comparison(sa, sb)["improvement_pct"] == 40.0
    for p, seed in ((right, 2), (follow, 3), (theirs, 4)):  # the others untouched: bytes and analyses
        assert p.path.read_bytes() == make_photo(seed)
        assert store.get_analysis(p.id) is not None
    assert store.list_comparisons("P-0007") == before_theirs
    assert [x.id for x in store.list_sessions(CODE)] == [sa, sb]  # the session stays (date, notes)
    assert store.check().ok
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM analysis").scalar() == 3
    entry = next(a for a in store.audit_log() if a.action == "photo.remove")
    assert entry.entity_id == wrong.id and entry.details == {"session_id": sa, "analyses": 1, "comparisons": 2}
    text = json.dumps([{k: v for k, v in a.__dict__.items() if k != "at"} for a in store.audit_log()], default=str)
    assert NAME not in text and ".png" not in text
    if target.kind == "sqlite":  # secure_delete + checkpoint: the file name is gone from the database files
        for f in target.data_dir.glob("veinscope.sqlite3*"):
            assert NAME.encode() not in f.read_bytes(), f.name


def test_removing_the_followup_photo_drops_its_comparisons_and_a_re_import_works(store):
    wrong, right, follow, _ = _course(store)
    store.save_comparison(right.session_id, follow.session_id, {"improvement_pct": 40.0})  # photos not recorded
    s = store.remove_photo(follow.id)
    assert (s.comparisons, s.photos_left, s.file_removed) == (1, 0, True)
    assert store.list_comparisons(CODE) == []
    assert store.list_photos(session_id=follow.session_id) == []
    again = store.import_photo(CODE, "left calf", "2026-02-16", make_photo(3), analyze=fake_analyze)
    assert again.status == "imported" and again.photo.path.read_bytes() == make_photo(3)


def test_remove_photo_refusals_change_nothing(store):
    wrong, right, follow, theirs = _course(store)
    with pytest.raises(StoreError, match="no photo with id 999"):
        store.remove_photo(999)
    with pytest.raises(StoreError, match="not a photo of patient 'P-0042'"):
        store.remove_photo(theirs.id, code=CODE)
    with pytest.raises(TypeError, match="photo_id"):
        store.remove_photo("1")
    assert len(store.list_photos()) == 4 and all(p.path.exists() for p in (wrong, right, follow, theirs))
    assert not any(a.action == "photo.remove" for a in store.audit_log())



def test_remove_photo_takes_a_numpy_integer_id_and_refuses_bool_and_float(store):
    # session 40 (maint40): an id read from an array (np.int64) is an integer and was refused
    # (main 3f85c50: TypeError "photo_id must be an int, got int64"); True, 2.0 and NaN are not ids
    np = pytest.importorskip("numpy")
    wrong, right, follow, theirs = _course(store)
    s = store.remove_photo(np.int64(wrong.id), code=CODE)
    assert s.photo_id == wrong.id and type(s.photo_id) is int
    assert not wrong.path.exists() and {p.id for p in store.list_photos()} == {right.id, follow.id, theirs.id}
    for bad in (True, False, np.bool_(True), float(right.id), np.float64(right.id), float("nan"), None):
        with pytest.raises(TypeError, match=r"photo_id must be an integer \(a photo's id\), got "):
            store.remove_photo(bad)
    assert len(store.list_photos()) == 3
    store.remove_photo(np.int32(follow.id))
    assert {p.id for p in store.list_photos()} == {right.id, theirs.id}


def test_photo_numbers_keep_a_removed_photos_place(store):
    # session 40 (maint40): a session's photos numbered in the order they were added; a removed
    # photo keeps its number, and a photo added after it takes the next one, also when SQLite
    # gives it the removed photo's id (the newest row deleted, its rowid reused)
    wrong, right, follow, theirs = _course(store)
    s0 = right.session_id
    assert store.photo_numbers(s0) == {wrong.id: 1, right.id: 2}
    store.remove_photo(wrong.id)
    assert store.photo_numbers(s0) == {right.id: 2}
    third = store.import_photo(CODE, "left calf", "2026-01-05", make_photo(5), original_name="third.png",
                               analyze=fake_analyze).photo
    assert store.photo_numbers(s0) == {right.id: 2, third.id: 3}
    store.remove_photo(third.id)  # the newest photo of the store
    fourth = store.import_photo(CODE, "left calf", "2026-01-05", make_photo(6), original_name="fourth.png",
                                analyze=fake_analyze).photo
    assert fourth.id == third.id or store.dialect != "sqlite"  # SQLite reused the id
    assert store.photo_numbers(s0) == {right.id: 2, fourth.id: 4}
    assert store.photo_numbers(follow.session_id) == {follow.id: 1}
    assert store.photo_numbers(theirs.session_id) == {theirs.id: 1}
    with pytest.raises(StoreError, match="no session with id 999"):
        store.photo_numbers(999)

def test_photo_numbers_after_the_newest_photos_were_removed_and_one_added(store):
    # review rev40: SQLite gives a new photo the id of the newest photos deleted. Photos 1, 2, 3;
    # 3 then 2 removed; the photo added next gets photo 2's id on SQLite and must be photo 4, not
    # photo 3 (the removed photo 3's number: a report that named "photo 3" would name another
    # photo). Main 04b9fcb on SQLite: {a: 1, d: 3}.
    store.add_patient(CODE)
    imp = lambda seed: store.import_photo(CODE, "left calf", "2026-01-05", make_photo(seed), original_name=f"{seed}.png",
                                          analyze=fake_analyze).photo
    a, b, c = imp(1), imp(2), imp(3)
    assert store.photo_numbers(a.session_id) == {a.id: 1, b.id: 2, c.id: 3}
    store.remove_photo(c.id)
    store.remove_photo(b.id)
    d = imp(4)
    assert d.id == b.id or store.dialect != "sqlite"  # SQLite reused photo 2's id
    assert store.photo_numbers(a.session_id) == {a.id: 1, d.id: 4}
    store.remove_photo(d.id)  # the same id removed twice
    e = imp(5)
    assert store.photo_numbers(a.session_id) == {a.id: 1, e.id: 5}


def test_photo_numbers_of_a_new_patient_ignore_an_erased_patients_removals(store):
    # review rev40: erasing the newest patient lets SQLite give the next patient, site and session
    # the same ids; the erased patient's "photo.remove" entries (kept in the audit log) then
    # matched the new session, whose first photo became "photo 2" (main 04b9fcb on SQLite: {id: 2})
    store.add_patient("P-OLD")
    old = [store.import_photo("P-OLD", "left calf", "2026-01-05", make_photo(seed), original_name=f"{seed}.png",
                              analyze=fake_analyze).photo for seed in (1, 2)]
    store.remove_photo(old[0].id)
    store.erase_patient("P-OLD")
    store.add_patient("P-NEW")
    new = store.import_photo("P-NEW", "left calf", "2026-01-05", make_photo(3), original_name="3.png",
                             analyze=fake_analyze).photo
    assert new.session_id == old[1].session_id or store.dialect != "sqlite"  # the session id reused
    assert store.photo_numbers(new.session_id) == {new.id: 1}


def test_photo_numbers_keep_the_place_of_a_photo_whose_file_was_lost(store):
    # review rev40: check(repair=True) deletes the row of a photo whose file is gone ("photo.remove_missing");
    # the others kept by its session keep their numbers (main 04b9fcb: {right: 1})
    wrong, right, follow, theirs = _course(store)
    wrong.path.unlink()
    assert store.check(repair=True).repaired["rows without file removed"] == 1
    assert store.photo_numbers(right.session_id) == {right.id: 2}
    assert store.photo_numbers(follow.session_id) == {follow.id: 1}


def test_file_of_a_photo_being_imported_again_is_kept(store, monkeypatch):
    wrong, *_ = _course(store)
    monkeypatch.setattr(store.files, "in_flight", lambda grace_s: {wrong.sha256})
    assert store.remove_photo(wrong.id).file_removed is False
    assert wrong.path.exists()  # `db check --repair` removes it once no import holds it


def test_comparison_uses_photo_rules(store):
    uses = store.comparison_uses_photo
    assert uses({"photos": {"baseline_id": 3, "baseline": "a.jpg"}}, "baseline", 3, "b.jpg")
    assert not uses({"photos": {"baseline_id": 4, "baseline": "a.jpg"}}, "baseline", 3, "a.jpg")
    assert uses({"photos": {"followup": "a.jpg"}}, "followup", 3, "a.jpg")
    assert not uses({"photos": {"followup": "a.jpg"}}, "followup", 3, "b.jpg")
    assert uses({"improvement_pct": 3.0}, "followup", 3, "b.jpg")
    with pytest.raises(ValueError, match="role"):
        uses({}, "before", 3, None)


def test_cli_photo_list_and_remove(target, capsys):
    where = target.cli_args()
    assert main(["patient", "add", CODE, *where]) == 0
    store = target.open()
    wrong, right, *_ = (store.import_photo(CODE, "left calf", "2026-01-05", make_photo(i), original_name=f"p{i}.png",
                                           analyze=fake_analyze).photo for i in (1, 2))
    store.close()
    capsys.readouterr()
    assert main(["photo", "list", "--patient", CODE, *where]) == 0
    out = capsys.readouterr().out
    assert f"{wrong.id}\t2026-01-05\tleft calf\tp1.png" in out and f"{right.id}\t" in out
    assert main(["photo", "remove", "--patient", CODE, str(wrong.id), *where]) == 2  # needs --yes without a terminal
    assert "add --yes" in capsys.readouterr().err
    assert main(["photo", "remove", "--patient", CODE, str(wrong.id), "--yes", *where]) == 0
    assert f"removed photo {wrong.id}" in capsys.readouterr().out
    assert main(["photo", "remove", "--patient", CODE, "999", "--yes", *where]) == 1
    assert "no photo with id 999" in capsys.readouterr().err
    store = target.open()
    assert [p.id for p in store.list_photos(code=CODE)] == [right.id]
    store.close()


@pytest.mark.parametrize("key", [EOFError, KeyboardInterrupt])
def test_cli_confirmation_ended_with_ctrl_d_or_ctrl_c_removes_nothing(target, capsys, monkeypatch, key):
    """At the confirmation prompt on a terminal, Ctrl-D (EOFError) or Ctrl-C (KeyboardInterrupt) is a
    "no": exit 1, nothing removed or erased, no traceback (review rev39; on main both raise out of
    ``veinscope photo remove`` and ``veinscope erase``)."""
    import builtins
    import io
    import sys

    class Tty(io.StringIO):
        def isatty(self):
            return True

    def ended(prompt=""):
        raise key

    where = target.cli_args()
    assert main(["patient", "add", CODE, *where]) == 0
    store = target.open()
    ph = store.import_photo(CODE, "left calf", "2026-01-05", make_photo(1), original_name="p1.png", analyze=fake_analyze).photo
    store.close()
    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr(builtins, "input", ended)
    capsys.readouterr()
    assert main(["photo", "remove", "--patient", CODE, str(ph.id), *where]) == 1
    assert "not removed" in capsys.readouterr().err
    assert main(["erase", "--patient", CODE, *where]) == 1
    assert "not erased" in capsys.readouterr().err
    store = target.open()
    assert [p.id for p in store.list_photos(code=CODE)] == [ph.id] and ph.path.exists()
    store.close()
