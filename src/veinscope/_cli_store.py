"""``veinscope patient|import|photo|export|erase|db``: patient records from the command line.

Only argparse is imported at module level (``--help`` stays fast); the store is imported when
a command runs. Exit codes: 0 ok, 1 failure (nothing saved is lost), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

__all__ = ["STORE_COMMANDS", "add_store_parsers", "run_store"]

STORE_COMMANDS = ("patient", "import", "photo", "export", "erase", "db")


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date written YYYY-MM-DD, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _positive(text: str) -> float:
    value = _number(text)
    if not (0 < value < 1e4):
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels per millimetre, got {text!r}")
    return value


def add_store_parsers(sub) -> None:
    """Add the store subcommands to the main parser's subparsers."""
    where = argparse.ArgumentParser(add_help=False)
    g = where.add_argument_group("where the records are")
    g.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                   help="data folder (default: $VEINSCOPE_DATA_DIR or the user data folder)")
    g.add_argument("--database-url", default=None, metavar="URL",
                   help="database, e.g. postgresql://user@host/veinscope (default: $VEINSCOPE_DATABASE_URL, "
                        "else SQLite in the data folder)")

    p = sub.add_parser("patient", help="add or list patients", description="Add or list patients.")
    psub = p.add_subparsers(dest="patient_command", metavar="ACTION", required=True)
    pa = psub.add_parser("add", parents=[where], help="add a patient under a pseudonymous code")
    pa.add_argument("code", help="pseudonymous patient code, e.g. P-0042")
    pa.add_argument("--name", default=None, help="optional full name (kept only in the database)")
    pa.add_argument("--birth-date", type=_iso_date, default=None, metavar="YYYY-MM-DD", help="optional date of birth")
    pl = psub.add_parser("list", parents=[where], help="list patients")
    pl.add_argument("--search", default=None, metavar="TEXT", help="part of the code or name")
    pl.add_argument("--names", action="store_true", help="also show names and dates of birth")
    pd = psub.add_parser(
        "demo", parents=[where], help="load a folder of photos as the demo patient (idempotent)",
        description="Imports FOLDER/demo_patient/<site>/<photo> (or FOLDER/<site>/<photo>, or the photos in "
                    "FOLDER) for the demo patient, with scale and session dates from <photo>_truth.json "
                    "when present. Running it again changes nothing.",
    )
    pd.add_argument("folder", nargs="?", type=Path, default=Path("sample_images"), help="default: sample_images")
    pd.add_argument("--code", default="DEMO-0001", help="demo patient code (default DEMO-0001)")
    pd.add_argument("--no-analyze", action="store_true", help="store the photos without analysing them")

    i = sub.add_parser(
        "import", parents=[where], help="analyse photos and store them in a patient's session",
        description="Stores each photo byte-identical (once) in the session of SITE on DATE, with its analysis. "
                    "A photo already stored for the patient is skipped.",
    )
    i.add_argument("photos", nargs="+", metavar="PHOTO")
    i.add_argument("--patient", required=True, metavar="CODE")
    i.add_argument("--site", required=True, help='treated site, e.g. "left calf, medial"')
    i.add_argument("--date", required=True, type=_iso_date, metavar="YYYY-MM-DD", help="session date")
    i.add_argument("--px-per-mm", type=_positive, default=None, metavar="X", help="scale of the photos at the skin")
    i.add_argument("--sclerosant", default=None, help="e.g. polidocanol")
    i.add_argument("--concentration-pct", type=_number, default=None, metavar="PCT", help="e.g. 0.5")
    i.add_argument("--volume-ml", type=_number, default=None, metavar="ML", help="volume injected at this site")
    i.add_argument("--notes", default=None, help="free-text treatment notes")
    i.add_argument("--no-analyze", action="store_true", help="store the photos without analysing them")

    ph = sub.add_parser("photo", help="list a patient's photos, or remove one imported by mistake",
                        description="List a patient's photos (id, session date, site, file name), or take one "
                                    "out of its session: its record, file, analyses and the comparisons made with it.")
    phsub = ph.add_subparsers(dest="photo_command", required=True, metavar="{list,remove}")
    phl = phsub.add_parser("list", parents=[where], help="list a patient's photos with their ids")
    phl.add_argument("--patient", required=True, metavar="CODE")
    phr = phsub.add_parser(
        "remove", parents=[where], help="remove one photo (the other leg, blurred, another patient's)",
        description="Removes the photo's record, its file, its analyses and the saved comparisons of its session "
                    "that used it (they are made again with the session's other photos). The session, the other "
                    "photos and patients are left as they are. An audit entry without personal data remains.")
    phr.add_argument("photo_id", type=int, metavar="PHOTO_ID", help="the photo's id (`veinscope photo list`)")
    phr.add_argument("--patient", required=True, metavar="CODE", help="the patient the photo belongs to (checked)")
    phr.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    e = sub.add_parser(
        "export", parents=[where], help="write a patient's photos and results to a ZIP",
        description="Photos with GPS and other personal metadata removed, results.json and results.csv.",
    )
    e.add_argument("--patient", required=True, metavar="CODE")
    e.add_argument("--out", required=True, type=Path, metavar="FILE.zip")
    e.add_argument("--include-identity", action="store_true",
                   help="also include name, date of birth and the photos' original file names")

    r = sub.add_parser(
        "erase", parents=[where], help="erase a patient: all records and photo files",
        description="Deletes the patient, sites, sessions, photos (files too) and results. An audit entry "
                    "without personal data remains.",
    )
    r.add_argument("--patient", required=True, metavar="CODE")
    r.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    d = sub.add_parser("db", help="create, upgrade or check the database", description="Database maintenance.")
    dsub = d.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    dsub.add_parser("init", parents=[where], help="create the data folder and database (idempotent)")
    dsub.add_parser("upgrade", parents=[where], help="bring the database schema up to date (idempotent)")
    dc = dsub.add_parser("check", parents=[where], help="check that every photo row has its file and vice versa")
    dc.add_argument("--repair", action="store_true", help="remove leftovers of interrupted imports and orphan files")
    dc.add_argument("--quick", action="store_true", help="do not re-hash the photo files")


def _open(args, *, upgrade: bool = True):
    from veinscope.store import open_store

    return open_store(args.database_url, data_dir=args.data_dir, upgrade=upgrade)


def _missing_store(args) -> str | None:
    """The message when a command that reads records points at a SQLite database that does not
    exist (a mistyped --data-dir or URL would otherwise create an empty store and report on it)."""
    from sqlalchemy.engine import make_url

    from veinscope.store._config import resolve_location

    url, _ = resolve_location(args.database_url, data_dir=args.data_dir)
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    path = Path(u.database).expanduser()
    if path.is_file():
        return None
    return (f"there is no VeinScope database at {path}. Check --data-dir / --database-url (or "
            "$VEINSCOPE_DATA_DIR, $VEINSCOPE_DATABASE_URL); `veinscope db init` creates a new, empty one.")


def run_store(args: argparse.Namespace) -> int:
    from veinscope.errors import VeinScopeError

    try:
        return _dispatch(args)
    except VeinScopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a data folder or an export path that cannot be created or written
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: could not create or write{where} ({exc.strerror or exc}). Check the path: every folder "
              "in it must exist or be creatable, and be writable.", file=sys.stderr)
        return 1


def _dispatch(args) -> int:
    cmd = args.command
    if cmd in ("export", "erase", "photo") or (cmd == "db" and args.db_command == "check"):
        missing = _missing_store(args)
        if missing is not None:
            print(f"error: {missing}", file=sys.stderr)
            return 1
    if cmd == "db":
        return _db(args)
    if cmd == "patient":
        return _patient(args)
    if cmd == "import":
        return _import(args)
    if cmd == "photo":
        return _photo(args)
    if cmd == "export":
        with _open(args) as store:
            s = store.export_patient(args.patient, args.out, include_identity=args.include_identity)
        print(f"exported {s.photos} photos, {s.analyses} analyses, {s.comparisons} comparisons to {s.path}")
        return 0
    if cmd == "erase":
        return _erase(args)
    raise AssertionError(cmd)


def _db(args) -> int:
    if args.db_command in ("init", "upgrade"):
        from veinscope.store import open_store
        from veinscope.store._config import make_engine, redact_url, resolve_location
        from veinscope.store._migrate import upgrade

        url, base = resolve_location(args.database_url, data_dir=args.data_dir)
        if args.db_command == "init":
            base.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif url.startswith("sqlite") and not base.is_dir():
            print(f"error: there is no data folder {base}; run `veinscope db init` first", file=sys.stderr)
            return 1
        engine = make_engine(url)
        try:
            before, after = upgrade(engine)
        finally:
            engine.dispose()
        with open_store(args.database_url, data_dir=args.data_dir, upgrade=False) as store:
            if before == after:
                print(f"database {redact_url(url)} is up to date (schema {after})")
            else:
                print(f"database {redact_url(url)}: schema {before or 'empty'} -> {after}")
            print(f"photos in {store.files.root}")
        return 0
    with _open(args) as store:
        report = store.check(repair=args.repair, verify_hashes=not args.quick)
    for line in report.lines():
        print(line)
    if report.ok:
        print("store is consistent")
        return 0
    if args.repair and not (report.missing or report.corrupt) and report.repaired:
        print("store repaired")
        return 0
    if args.repair and report.missing and not report.corrupt:
        print("store repaired (rows of lost photos removed; see the audit log)")
        return 0
    if not args.repair:
        print("run `veinscope db check --repair` to fix what can be fixed")
    return 1


def _patient(args) -> int:
    with _open(args) as store:
        if args.patient_command == "add":
            p = store.add_patient(args.code, name=args.name, birth_date=args.birth_date)
            print(f"added patient {p.code}")
            return 0
        if args.patient_command == "list":
            patients = store.list_patients(args.search)
            for p in patients:
                extra = ""
                if args.names:
                    extra = f"  {p.name or ''}  {p.birth_date.isoformat() if p.birth_date else ''}".rstrip()
                print(f"{p.code}\t{p.sites} sites\t{p.sessions} sessions\t{p.photos} photos{extra}")
            if not patients:
                print("no patients" + (" match" if args.search else " yet"), file=sys.stderr)
            return 0
        analyze, cache = _analyzer(store, not args.no_analyze)
        try:
            results = store.load_demo_patient(args.folder, code=args.code, analyze=analyze)
        finally:
            if cache is not None:
                cache.flush()
    return _print_results(results)


def _analyzer(store, analyze: bool):
    """``(analyze, cache)`` for an import: :func:`veinscope.analyze` that also keeps the photo's class
    and skin masks in ``<data dir>/derived`` as the app's import does (the app's overlays and its quick
    same-site check before a comparison read them; without them that check aligned a photo imported
    here on another skin mask than the comparison's), and the cache to flush when the import is done.
    ``(False, None)`` without analysis."""
    if not analyze:
        return False, None
    from veinscope.app_support import DerivedCache

    cache = DerivedCache.for_store(store)
    return cache.analyzer(), cache


def _print_results(results) -> int:
    for r in results:
        print(f"{r.status}: {r.message}")
    n = {k: sum(r.status == k for r in results) for k in ("imported", "duplicate", "failed")}
    print(f"{n['imported']} imported, {n['duplicate']} already stored, {n['failed']} failed")
    return 1 if n["failed"] else 0


def _import(args) -> int:
    with _open(args) as store:
        store.get_patient(args.patient)  # unknown patient: stop before any work
        if any(v is not None for v in (args.sclerosant, args.concentration_pct, args.volume_ml, args.notes)):
            store.add_session(args.patient, args.site, args.date, sclerosant=args.sclerosant,
                              concentration_pct=args.concentration_pct, volume_ml=args.volume_ml, notes=args.notes)

        def progress(i, r):
            print(f"[{i + 1}/{len(args.photos)}] {r.status}: {r.message}", flush=True)

        analyze, cache = _analyzer(store, not args.no_analyze)
        try:
            results = store.import_photos(args.patient, args.site, args.date, args.photos, px_per_mm=args.px_per_mm,
                                          analyze=analyze, progress=progress)
        finally:
            if cache is not None:
                cache.flush()  # the masks are written in the background
    n = {k: sum(r.status == k for r in results) for k in ("imported", "duplicate", "failed")}
    print(f"{n['imported']} imported, {n['duplicate']} already stored, {n['failed']} failed")
    return 1 if n["failed"] else 0


def _ask(prompt: str) -> str | None:
    """The answer typed at a confirmation prompt; None when the input ends (Ctrl-D) or is interrupted
    (Ctrl-C): read as "no", not a traceback."""
    try:
        return input(prompt)
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)  # the prompt's line ended
        return None


def _photo(args) -> int:
    with _open(args) as store:
        store.get_patient(args.patient)  # unknown patient: a message, not an empty list
        if args.photo_command == "list":
            sessions = {s.id: s for s in store.list_sessions(args.patient)}
            photos = store.list_photos(code=args.patient)
            for p in photos:
                s = sessions.get(p.session_id)
                print(f"{p.id}\t{s.session_date.isoformat() if s else '?'}\t{s.site_label if s else '?'}\t{p.original_name or ''}")
            if not photos:
                print("no photos yet", file=sys.stderr)
            return 0
        rec = next((p for p in store.list_photos(code=args.patient) if p.id == args.photo_id), None)
        if rec is None:
            print(f"error: there is no photo with id {args.photo_id} for patient {args.patient}", file=sys.stderr)
            return 1
        if not args.yes:
            if not sys.stdin.isatty():
                print("error: remove deletes the photo, its file and its results; add --yes to confirm", file=sys.stderr)
                return 2
            answer = _ask(f"Remove photo {rec.id} ({rec.original_name or 'no name'}) for good? Type its id to confirm: ")
            if answer is None or answer.strip() != str(rec.id):
                print("not removed", file=sys.stderr)
                return 1
        derived = Path(store.data_dir) / "derived"
        if derived.is_dir():  # the app's class masks and comparison pictures of the photo go too
            from veinscope.app_support import DerivedCache, remove_photo

            s = remove_photo(store, DerivedCache(derived), rec.id, code=args.patient)
        else:
            s = store.remove_photo(rec.id, code=args.patient)
    print(f"removed photo {s.photo_id} ({'file removed' if s.file_removed else 'file kept: another import holds it'}), "
          f"{s.analyses} analyses, {s.comparisons} comparisons; {s.photos_left} photos left in its session")
    return 0


def _erase(args) -> int:
    with _open(args) as store:
        p = store.get_patient(args.patient)
        if not args.yes:
            if not sys.stdin.isatty():
                print("error: erase deletes all records and photos of the patient; add --yes to confirm",
                      file=sys.stderr)
                return 2
            answer = _ask(f"Erase patient {p.code}: {p.sessions} sessions, {p.photos} photos, for good? "
                          "Type the patient code to confirm: ")
            if answer is None or answer.strip() != p.code:
                print("not erased", file=sys.stderr)
                return 1
        derived = Path(store.data_dir) / "derived" if getattr(store, "data_dir", None) else None
        if derived is not None and derived.is_dir():
            # the app's class masks and comparison pictures show the photos: they go too
            from veinscope.app_support import DerivedCache, erase_patient

            s = erase_patient(store, DerivedCache(derived), args.patient)
        else:
            s = store.erase_patient(args.patient)
    print(f"erased patient {args.patient}: {s.sites} sites, {s.sessions} sessions, {s.photos} photos "
          f"({s.files_removed} files removed), {s.analyses} analyses, {s.comparisons} comparisons")
    return 0
