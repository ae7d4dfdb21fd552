"""Patients: list, search, add, open."""

import streamlit as st

from pages import common
from veinscope import app_support as sup
from veinscope.store import PatientExistsError, StoreError

st.title("Patients")
store = common.store()

search = st.text_input("Search by code or name", key="patients_search", placeholder="e.g. DEMO or P-0042")
patients = store.list_patients(search.strip() or None)

if patients:
    st.dataframe(
        [{"code": p.code, "name": p.name or "", "sites": p.sites, "sessions": p.sessions, "photos": p.photos}
         for p in patients],
        hide_index=True, width="stretch", key="patients_table",
    )
    codes = [p.code for p in patients]
    current = common.patient()
    choice = st.selectbox("Patient to open", codes, index=codes.index(current) if current in codes else 0,
                          key="patients_pick")
    if st.button("Open patient", key="patients_open", type="primary"):
        st.session_state["patient"] = choice
        st.session_state.pop("site", None)
        st.switch_page("pages/session.py")
else:
    st.info("No patient matches this search." if search else "No patients yet: add one below.")

st.subheader("Add a patient")
with st.form("patients_add", clear_on_submit=True):
    new_code = st.text_input("Pseudonymous code (required)", key="patients_new_code",
                             help="A code that does not identify the person, e.g. P-0042.")
    new_name = st.text_input("Name (optional, stays on this computer)", key="patients_new_name")
    submitted = st.form_submit_button("Add patient")
if submitted:
    try:
        rec = store.add_patient(new_code, name=new_name.strip() or None)
    except PatientExistsError:
        st.error(f"A patient with code {new_code.strip()!r} already exists: open it above.")
    except (ValueError, TypeError, StoreError) as exc:
        st.error(f"The patient was not added: {exc}")
    else:
        st.session_state["patient"] = rec.code
        st.success(f"Patient {rec.code} added and opened. Add the first session's photos on the Session page.")

if patients:
    with st.expander("Erase a patient (records, photos and pictures made from them)"):
        target = st.selectbox("Patient to erase", [p.code for p in patients], key="patients_erase_pick")
        confirm = st.text_input("Type the patient's code to confirm", key="patients_erase_confirm")
        if st.button("Erase for good", key="patients_erase", disabled=confirm.strip() != target):
            try:
                summary = sup.erase_patient(store, common.derived(), target)
            except StoreError as exc:
                st.error(f"Nothing was erased: {exc}")
            else:
                common.photo_view.clear()
                common.overlay.clear()
                if common.patient() == target:
                    st.session_state.pop("patient", None)
                st.success(f"{target} erased: {summary.sessions} sessions, {summary.photos} photos and their results.")
