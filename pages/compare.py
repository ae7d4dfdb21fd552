"""Compare: two sessions of a site, aligned before/after, change map, improvement and side effects."""

import streamlit as st

from pages import common
from veinscope import app_support as sup

st.title("Compare two sessions")
code = common.need_patient()
store = common.store()
cache = common.derived()
site = common.site_choice(code, key="compare_site")
if site is None:
    st.stop()
sessions = store.list_sessions(code, site)
if len(sessions) < 2:
    st.info("This site has one session so far: a comparison needs a later session of the same site.")
    st.stop()

c1, c2 = st.columns(2)
before = c1.selectbox("Before (baseline)", sessions, index=0, format_func=common.session_label, key="compare_a")
after = c2.selectbox("After (follow-up)", sessions, index=len(sessions) - 1, format_func=common.session_label,
                     key="compare_b")
if before.id == after.id:
    st.warning("Choose two different sessions.")
    st.stop()

view = sup.cached_comparison(store, cache, before.id, after.id) if before.session_date <= after.session_date \
    else sup.cached_comparison(store, cache, after.id, before.id)
if view is None:
    prompt = st.empty()  # cleared once compared: "not compared yet" is not left above the figures
    with prompt.container():
        st.info("These sessions have not been compared yet. " + sup.compare_wait_note(store, before.id, after.id))
        run = st.button("Compare these sessions", key="compare_run", type="primary")
    if run:
        prompt.empty()
        with st.status("Comparing: aligning the photos, matching the light, measuring...", expanded=False) as status:
            try:
                view = sup.compare_sessions(store, cache, before.id, after.id)
            except sup.NotComparable as exc:
                status.update(label="These photos cannot be compared", state="error")
                st.error(str(exc))
                st.stop()
            status.update(label="Comparison done", state="complete")
if view is None:
    st.stop()

fig = view.figures
m1, m2, m3, m4 = st.columns(4)
imp = fig.get("improvement_pct")
m1.metric("Improvement", "-" if imp is None else f"{imp:.0f} %",
          help="Share of the baseline vessel length no longer visible in the follow-up.")
m2.metric("Grade", "-" if fig.get("grade") is None else f"{fig['grade']} of 3",
          help="Quartiles of clearance: 0 under 25 %, 1 25-50 %, 2 50-75 %, 3 over 75 %.")
m2.caption(fig.get("grade_text") or "")
for col, kind, what, help_ in ((m3, "staining", "Staining", "Brownish marks along treated vessels (haemosiderin), compared with the first photo."),
                               (m4, "matting", "Matting", "A blush of new, very fine red vessels near treated sites.")):
    value, caption = sup.side_effect_metric(fig, kind)
    col.metric(what, value, help=help_)
    col.caption(caption)
level, text = sup.registration_status(fig)
(st.success if level == "ok" else st.warning)(text)
notes = fig.get("warnings") or []
if notes:
    with st.expander(f"Notes on these photos ({len(notes)}): read before trusting the figures", expanded=level != "ok"):
        for w in notes:
            st.markdown(f"- {w}")

tab1, tab2, tab3, tab4 = st.tabs(["Side by side", "Swipe", "Change map", "Figures"])
with tab1:
    st.image(view.side_by_side_png, caption=sup.side_by_side_caption(fig), width="stretch")
with tab2:
    split = st.slider("Drag: before on the left, after on the right", 0, 100, 50, key="compare_swipe")
    st.image(sup.swipe_image(view.before, view.after, split / 100), width="stretch")
with tab3:
    st.image(view.change_map_png, width="stretch",
             caption="Green: cleared vessels. Orange-red: still visible. Brown with yellow outline: staining (S1...). "
                     "Magenta: matting (M1...). Blue: vessels not seen before. Hatched: not in both photos.")
with tab4:
    for line in sup.comparison_summary(fig):
        st.markdown(f"- {line}")
    st.dataframe(sup.comparison_class_table(fig), hide_index=True, width="stretch", key="compare_table", placeholder="-")
