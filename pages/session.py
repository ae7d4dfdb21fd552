"""Session: add photos of a site on a date (upload or demo samples), then see the overlay and the figures."""

import datetime as dt

import streamlit as st

from pages import common
from veinscope import app_support as sup
from veinscope.store import StoreError

st.title("Session")
code = common.need_patient()
store = common.store()
cache = common.derived()
st.caption(f"Patient **{code}**")
removed, failed = st.session_state.pop("session_removed", None), st.session_state.pop("session_remove_error", None)
if removed:
    st.success(removed)
if failed:
    st.error(failed)

# ---------------------------------------------------------------- add photos
sites = [s.label for s in store.list_sites(code)]
if st.toggle("Add photos to a session", value=not sites, key="session_add_open"):
    NEW = "New site..."
    site_pick = st.selectbox("Treated site", [*sites, NEW], key="session_site_pick")
    site = st.text_input("New site name", key="session_new_site", placeholder="e.g. left calf, medial") \
        if site_pick == NEW else site_pick
    day = st.date_input("Session date", value=dt.date.today(), key="session_date", format="YYYY-MM-DD")
    px = st.number_input("Scale in px/mm (leave 0 when the calibration card is in the photo)", min_value=0.0,
                         max_value=200.0, value=0.0, step=0.5, key="session_px")
    files = st.file_uploader(
        f"Photos (JPEG or HEIC straight from the phone; PNG, TIFF, WebP also work; up to {sup.MAX_UPLOAD_MB} MB each)",
        type=list(sup.PHOTO_TYPES), accept_multiple_files=True, key="session_upload")
    demo = sup.demo_folder(common.APP_DIR)
    samples = sorted(p for p in demo.glob("*/session*.jpg") if "_" not in p.stem) if demo else []
    sample_pick = st.multiselect("...or use the demo samples", [f"{p.parent.name}/{p.name}" for p in samples],
                                 key="session_samples")
    if st.button("Import and analyse", key="session_import", type="primary"):
        sup.trace("import clicked")
        chosen = [(f.name, f.getvalue()) for f in files or []]
        chosen += [(name.replace("/", "_"), (demo / name).read_bytes()) for name in sample_pick]
        if not site or not site.strip():
            st.error("Give the treated site a name first.")
        elif not chosen:
            st.error("Choose at least one photo (or a demo sample).")
        else:
            bar = st.progress(0.0, text="Analysing photos...")
            outcomes = sup.import_uploads(
                store, cache, code, site, day, chosen, px_per_mm=px or None,
                progress=lambda i, r: bar.progress((i + 1) / len(chosen), text=f"{i + 1} of {len(chosen)} done"))
            bar.empty()
            sup.trace("import done")
            for r in outcomes:
                if r.ok and r.warnings:
                    st.warning("\n\n".join([f"{r.message}; check this photo:", *r.warnings]))
                else:
                    (st.success if r.ok else st.error)(r.message)
            st.session_state["site"] = site.strip()
            shown = [r.photo_id for r in outcomes if r.ok and r.photo_id is not None]
            if shown:  # show the photo just imported (its session and site) below
                st.session_state["session_focus"] = shown[-1]
                for k in ("session_view_site", "session_pick", "session_photo"):
                    st.session_state.pop(k, None)

# ---------------------------------------------------------------- view a session
site = common.site_choice(code, key="session_view_site")
if site is None:
    st.stop()
sessions = store.list_sessions(code, site)
if not sessions:
    st.info("No session for this site yet.")
    st.stop()
focus = sup.photo_record(store, st.session_state.get("session_focus"))
sess = st.selectbox("Session", sessions, format_func=common.session_label, key="session_pick",
                    index=next((i for i, s in enumerate(sessions) if focus and s.id == focus.session_id),
                               len(sessions) - 1))
photos = store.list_photos(session_id=sess.id)
if not photos:
    st.info("This session has no photos yet.")
    st.stop()
rec = st.selectbox("Photo", photos, format_func=lambda p: p.original_name or f"photo {p.id}", key="session_photo",
                   index=next((i for i, p in enumerate(photos) if focus and p.id == focus.id), 0))

sup.trace("view start")
with st.spinner("Preparing the overlay..."):
    view = common.photo_view(rec.id, rec.sha256)
sup.trace("view ready")

level, lines = sup.calibration_status(view.figures)
show = {"ok": st.success, "warning": st.warning, "error": st.error}[level]
show("\n\n".join(lines))

left, right = st.columns([3, 1])
with right:
    st.markdown("**Show**")
    classes = tuple(c for c in sup.CLASSES
                    if st.checkbox(sup.CLASS_INFO[c][0], value=True, key=f"session_show_{c}"))
    zoom = st.slider("Zoom", 1.0, 8.0, 1.0, 0.5, key="session_zoom")
    cx = st.slider("Zoom centre, left to right (%)", 0, 100, 50, key="session_cx", disabled=zoom == 1.0)
    cy = st.slider("Zoom centre, top to bottom (%)", 0, 100, 50, key="session_cy", disabled=zoom == 1.0)
with left:
    sup.trace("overlay start")
    img = common.overlay(rec.id, rec.sha256, classes, float(zoom), cx / 100, cy / 100)
    st.image(img, caption=f"{view.name}: vessels coloured by class (white line: skin found)",
             width="stretch")
    sup.trace("overlay shown")

st.subheader("Figures")
st.dataframe(sup.class_table(view.figures), hide_index=True, width="stretch", key="session_table", placeholder="-")
st.caption("Coverage: vessel area as a share of the skin in the photo. Length: along the vessel's centre line. "
           "Diameter: visible width (mean and the widest 10 %). Count: separate vessel segments. "
           "Millimetre figures need the calibration card or a scale.")


def _remove(photo_id: int, name: str, session_id: int, day: str) -> None:
    """The remove button's callback: it runs before the page is drawn again, so the photo choice can be set."""
    try:
        done = sup.remove_photo(store, cache, photo_id, code=code)
    except StoreError as exc:
        st.session_state["session_remove_error"] = f"Nothing was removed: {exc}"
        return
    common.photo_view.clear()
    common.overlay.clear()
    for k in ("session_focus", "export_pdf"):
        st.session_state.pop(k, None)
    st.session_state["session_remove_confirm"] = False  # not left ticked for the next photo
    left = store.list_photos(session_id=session_id)
    if left:  # set, not dropped: the browser would go on showing the removed photo's name
        st.session_state["session_photo"] = left[0]
    else:
        st.session_state.pop("session_photo", None)
    st.session_state["session_removed"] = (
        f"{name} removed from the session of {day}, with its figures"
        + (f" and {done.comparisons} comparison{'s' if done.comparisons != 1 else ''} made with it" if done.comparisons else "")
        + f". {done.photos_left} photo{'s' if done.photos_left != 1 else ''} left in this session.")


with st.expander("Remove this photo from the session (the other leg, blurred, another patient's)"):
    st.markdown(f"Removes **{view.name}** of {sess.session_date.isoformat()} for good: the photo, its figures, its "
                "overlay and the comparisons made with it (they are made again with this session's other photos). "
                "The session, its other photos and its notes stay.")
    sure = st.checkbox(f"Yes, remove {view.name}", key="session_remove_confirm")
    st.button("Remove photo", key="session_remove", disabled=not sure, on_click=_remove,
              args=(rec.id, view.name, sess.id, sess.session_date.isoformat()))

with st.expander("Session notes (treatment given)"):
    notes = st.text_area("Notes", value=sess.notes or "", key="session_notes")
    if st.button("Save notes", key="session_notes_save"):
        store.add_session(code, site, sess.session_date, notes=notes)
        st.success("Notes saved.")
