"""Shared Streamlit glue of the VeinScope app: cached resources and the sidebar choices.

Kept thin: every function is one library call wrapped in a Streamlit cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from veinscope import app_support as sup

APP_DIR = Path(__file__).resolve().parents[1]


@st.cache_resource(show_spinner=False)
def store():
    return sup.open_app_store()


@st.cache_resource(show_spinner=False)
def derived():
    return sup.DerivedCache.for_store(store())


@st.cache_resource(show_spinner="First start: preparing the analysis engine (about 10 s)...")
def warmed_up() -> float:
    import veinscope

    return veinscope.warmup(full_size=True)


@st.cache_resource(show_spinner="First start: loading the demo patient (about a minute, once)...")
def demo_loaded() -> int:
    folder = sup.demo_folder(APP_DIR)
    if folder is None:
        return 0
    return len(sup.load_demo(store(), folder, derived()))


@st.cache_resource(show_spinner=False, max_entries=6)
def photo_view(photo_id: int, sha256: str):
    """Photo, masks and figures of a stored photo (``sha256``: the photo's bytes, the cache key)."""
    return sup.photo_view(store(), derived(), photo_id)


@st.cache_data(show_spinner=False, max_entries=32)
def overlay(photo_id: int, sha256: str, classes: tuple[str, ...], zoom: float, cx: float, cy: float) -> bytes:
    """The overlay as display-sized JPEG bytes (Streamlit sends them to the browser unchanged)."""
    return sup.overlay_jpeg(photo_view(photo_id, sha256), classes=classes, zoom=zoom, centre_frac=(cx, cy))


@st.cache_data(show_spinner=False, max_entries=16)
def chart_png(rows_json: str, title: str) -> bytes:
    return sup.progress_chart_png(json.loads(rows_json), title=title)


def patient() -> str | None:
    """The open patient's code (chosen on the Patients page or in the sidebar)."""
    return st.session_state.get("patient")


def need_patient() -> str:
    code = patient()
    if code is None:
        st.info("Open a patient first on the **Patients** page.")
        st.page_link("pages/patients.py", label="Go to Patients", icon=":material/group:")
        st.stop()
    return code


def site_choice(code: str, *, key: str) -> str | None:
    """Select box of the patient's sites (remembered across pages)."""
    sites = [s.label for s in store().list_sites(code)]
    if not sites:
        st.info("This patient has no sessions yet: add photos on the **Session** page.")
        return None
    current = st.session_state.get("site")
    idx = sites.index(current) if current in sites else 0
    site = st.selectbox("Treated site", sites, index=idx, key=key)
    st.session_state["site"] = site
    return site


def session_label(s) -> str:
    return f"{s.session_date.isoformat()} ({s.photos} photo{'s' if s.photos != 1 else ''})"
