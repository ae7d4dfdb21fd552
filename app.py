"""VeinScope: the practitioner's app (Streamlit). Start it with `make app` or `streamlit run app.py`.

This file is the frame around the pages: it prepares the engine and the store (once per
server), loads the demo patient (idempotently) and shows the open patient in the sidebar.
All measuring, storing and drawing is done by the library (veinscope.app_support and below).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `pages.common` for AppTest and `streamlit run`

from pages import common  # noqa: E402
from veinscope.app_support import trace  # noqa: E402

trace("run start")

st.set_page_config(page_title="VeinScope", page_icon=":material/vital_signs:", layout="wide")

common.warmed_up()
common.demo_loaded()

pages = [
    st.Page("pages/patients.py", title="Patients", icon=":material/group:", default=True),
    st.Page("pages/session.py", title="Session", icon=":material/photo_camera:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/progress.py", title="Progress", icon=":material/monitoring:"),
    st.Page("pages/export.py", title="Export", icon=":material/download:"),
]
page = st.navigation(pages)

with st.sidebar:
    code = common.patient()
    if code:
        st.markdown(f"**Open patient:** `{code}`")
    else:
        st.caption("No patient open")
    st.caption("VeinScope measures and documents; it does not diagnose. Patient data stays on this computer.")

page.run()
trace("run end")
