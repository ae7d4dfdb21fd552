"""Progress: improvement, vessel length, staining and matting over all sessions of a site."""

import json

import streamlit as st

from pages import common
from veinscope import app_support as sup

st.title("Progress")
code = common.need_patient()
store = common.store()
cache = common.derived()
site = common.site_choice(code, key="progress_site")
if site is None:
    st.stop()

rows = sup.progress_rows(store, code, site, cache=cache)
missing = sup.missing_comparisons(rows)
if missing:
    st.info(f"{len(missing)} later session(s) not compared with the first yet: their improvement, staining and "
            "matting are not in the chart.")
    if st.button("Compare them now", key="progress_compare", type="primary"):
        bar = st.progress(0.0, text="Comparing sessions...")
        for i, (a, b) in enumerate(missing):
            try:
                sup.compare_sessions(store, cache, a, b)
            except sup.NotComparable as exc:
                st.warning(str(exc))
            bar.progress((i + 1) / len(missing), text=f"{i + 1} of {len(missing)} compared")
        bar.empty()
        rows = sup.progress_rows(store, code, site, cache=cache)

for r in rows:
    if r.get("refused"):
        st.warning(f"{r['session_date']} cannot be compared with the first session: {r['refused']}")
empty = sup.sessions_without_photos(rows)
if empty:
    st.info(f"No photo in the session{'s' if len(empty) > 1 else ''} of {', '.join(empty)} (removed): add one on the "
            "**Session** page to compare " + ("them." if len(empty) > 1 else "it."))
note = sup.baseline_photos_note(rows)
if note:
    st.info(note)
if len(rows) < 2:
    st.info("One session so far: the chart starts with the second session.")
else:
    st.image(common.chart_png(json.dumps(rows), f"{code} - {site}"), width="stretch")
st.dataframe(sup.progress_table(rows), hide_index=True, width="stretch", key="progress_table", placeholder="-")  # not yet compared: "-", as in the PDF
st.caption(sup.IMPROVEMENT_NOTE + " Grades: 0 under 25 %, 1 25-50 %, 2 50-75 %, 3 over 75 % clearance.")
