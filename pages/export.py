"""Export: the progress chart (PNG), the figures (CSV) and the patient report (PDF)."""

import json

import streamlit as st

from pages import common
from veinscope import app_support as sup

st.title("Export")
code = common.need_patient()
store = common.store()
cache = common.derived()
site = common.site_choice(code, key="export_site")
if site is None:
    st.stop()

rows = sup.progress_rows(store, code, site, cache=cache)
stem = f"veinscope_{code}_{site}".replace(" ", "_").replace("/", "_").replace(",", "")
st.caption("Files are made on this computer; nothing is sent anywhere.")

c1, c2, c3 = st.columns(3)
with c1:
    st.markdown("**Progress chart** (PNG)")
    if len(rows) > 1:
        st.download_button("Download chart (PNG)", common.chart_png(json.dumps(rows), f"{code} - {site}"),
                           file_name=f"{stem}_progress.png", mime="image/png", key="export_png")
    else:
        st.caption("Needs two sessions.")
with c2:
    st.markdown("**Figures** (CSV)")
    st.download_button("Download figures (CSV)", sup.progress_csv(code, site, rows), file_name=f"{stem}_figures.csv",
                       mime="text/csv", key="export_csv")
with c3:
    st.markdown("**Patient report** (PDF)")
    if st.button("Make the patient report", key="export_make_pdf"):
        with st.spinner("Making the report..."):
            st.session_state["export_pdf"] = (code, site, sup.site_report_pdf(store, cache, code, site))
    made = st.session_state.get("export_pdf")
    if made and made[:2] == (code, site):
        st.download_button("Download patient report (PDF)", made[2], file_name=f"{stem}_report.pdf",
                           mime="application/pdf", key="export_pdf_download", type="primary")
if sup.missing_comparisons(rows):
    st.info("Some sessions are not compared yet: compare them on the **Progress** page to include them in the "
            "chart and the report.")
