"""The patient report: a PDF a practitioner can hand to or send the patient (fpdf2, offline).

Pseudonym only (the name is never printed), site, session dates, before/after pairs, the
progress chart, the figures in plain language, and the note that VeinScope measures and
documents, it does not diagnose.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Sequence

__all__ = ["BeforeAfter", "DISCLAIMER", "IMPROVEMENT_NOTE", "patient_report"]

DISCLAIMER = ("VeinScope measures and documents; it does not diagnose. The figures describe what is visible in the "
              "photographs and are meant to support, not replace, the judgement of your practitioner.")

#: What the improvement counts, and why it differs from the change between two sessions' lengths
#: (the PDF's table and the app's Progress page show both, side by side).
IMPROVEMENT_NOTE = ("Improvement: share of the first session's vessel length no longer visible, counted only on the "
                    "skin both photos show and only on the veins seen at the first session, so it is not the change "
                    "between two vessel lengths of the table (those count each whole photo).")

#: The caption under the PDF's "Figures by session" table.
_FIGURES_NOTE = ("Vessel length: total centreline length of the visible veins in the whole photo (thread veins, "
                "reticular veins and veins over 3 mm). Coverage: vessel area as a share of the skin in the photo. "
                + IMPROVEMENT_NOTE + " '-': not measured (millimetres need the calibration card on the skin or a scale; an "
                "improvement also needs at least 5 mm of vessel found at the first session).")


@dataclass(frozen=True)
class BeforeAfter:
    """One before/after pair: the side-by-side picture (PNG bytes) and its plain-language figures."""

    baseline_date: str
    followup_date: str
    side_by_side_png: bytes = field(repr=False)
    lines: Sequence[str] = ()
    change_map_png: bytes | None = field(default=None, repr=False)


_REPLACE = {"–": "-", "—": "-", "’": "'", "“": '"', "”": '"', "≤": "<=", "≥": ">=", "…": "..."}


def _latin1(text: str) -> str:
    """The core PDF fonts are Latin-1: keep the text readable whatever characters it holds."""
    for a, b in _REPLACE.items():
        text = text.replace(a, b)
    return text.encode("latin-1", "replace").decode("latin-1")


def _jpeg(png: bytes, *, max_side_px: int = 2000) -> io.BytesIO:
    """A photo-like picture as JPEG for the PDF (smaller and much faster to embed than PNG)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("RGB")
        if max(im.size) > max_side_px:
            im.thumbnail((max_side_px, max_side_px))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=88)
    buf.seek(0)
    return buf


def _fmt(v, nd=1, unit=""):
    return "-" if not isinstance(v, (int, float)) else f"{v:.{nd}f}{unit}"


def _photo_label(row: dict[str, Any]) -> str:
    """'photo 2 (512 mm)': the first-session photo a row was compared with, by its number (never a file name)."""
    n = row.get("baseline_photo_number")
    if n is None:
        return "-"
    ln = row.get("baseline_length_mm")
    return f"photo {n}" + (f" ({ln:.0f} mm)" if isinstance(ln, (int, float)) else "")


def _mixed_baselines(rows: Sequence[dict[str, Any]]) -> str | None:
    """The sentence saying which first-session photo each follow-up was compared with, when they differ."""
    used = {r.get("baseline_photo_number") for r in rows if r.get("baseline_photo_number") is not None}
    if len(used) < 2:
        return None
    parts = [f"{r['session_date']} with its {_photo_label(r)}" for r in rows[1:] if r.get("baseline_photo_number") is not None]
    return (f"The first session ({rows[0]['session_date']}) has several photos, and the later sessions were compared "
            f"with different ones: " + "; ".join(parts) + ". Each improvement is measured against the photo named "
            "(numbered in the order they were added to the session; a removed photo keeps its number, so the "
            f"others keep theirs); the first session's row shows its {_photo_label(rows[0])}. "
            "Vessel lengths in mm are of the whole photo.")


def patient_report(
    *,
    patient_code: str,
    site: str,
    rows: Sequence[dict[str, Any]],
    pairs: Sequence[BeforeAfter] = (),
    chart_png: bytes | None = None,
    made_on: date | None = None,
    version: str | None = None,
) -> bytes:
    """Build the patient PDF and return its bytes.

    Parameters
    ----------
    patient_code : str
        The pseudonymous code (the only identity printed).
    site : str
        Treated site label.
    rows : sequence of dict
        Progress rows, oldest first (see :func:`veinscope.app_support.progress_rows`).
    pairs : sequence of BeforeAfter
        Before/after pictures, e.g. the first session against the latest.
    chart_png : bytes, optional
        The progress chart (see :func:`veinscope.report.charts.progress_figure`).
    """
    from fpdf import FPDF

    if not rows:
        raise ValueError("rows must hold at least one session, got none")
    if version is None:
        from veinscope._version import __version__ as version
    made_on = made_on or date.today()

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_title(_latin1(f"VeinScope report {patient_code}"))
    pdf.set_creator(f"VeinScope {version}")

    def footer_note():
        pdf.set_font("Helvetica", "I", 8)
        pdf.set_text_color(90, 90, 90)
        pdf.multi_cell(0, 4, _latin1(DISCLAIMER))
        pdf.set_text_color(0, 0, 0)

    w = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, "Thread vein treatment: progress report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    dates = [r["session_date"] for r in rows]
    for label, value in (("Patient", patient_code), ("Treated site", site),
                         ("Sessions", f"{len(rows)}: " + ", ".join(dates)),
                         ("Report made", made_on.isoformat() + f" with VeinScope {version}")):
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(32, 7, _latin1(label + ":"))
        pdf.set_font("Helvetica", "", 11)
        pdf.multi_cell(0, 7, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    # --- in plain words ---
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, "In plain words", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    last = rows[-1]
    first = rows[0]
    sentences = []
    if len(rows) == 1:
        sentences.append(f"This is the first recorded session ({first['session_date']}): it is the starting point "
                         "against which later sessions are measured.")
    elif isinstance(last.get("improvement_pct"), (int, float)):
        sentences.append(f"Since the first session on {first['session_date']}, {last['improvement_pct']:.0f} % of the "
                         f"vessel length seen then is no longer visible (session of {last['session_date']}).")
        if isinstance(last.get("grade"), int):
            grade_text = {0: "under 25 %", 1: "25 to 50 %", 2: "50 to 75 %", 3: "over 75 %"}[last["grade"]]
            sentences.append(f"On the usual four-step scale this is {grade_text} clearance. Most courses of 2 to 6 "
                             "sessions reach 50 to 80 %; complete clearance is rare.")
    elif last.get("refused"):
        sentences.append(f"The latest session ({last['session_date']}) cannot be compared with the first: "
                         f"{last['refused']}")
    else:
        sentences.append(f"The latest session ({last['session_date']}) has not been compared with the first yet.")
    st_ = last.get("staining_mm2")
    mt = last.get("matting_mm2")
    if isinstance(st_, (int, float)) and len(rows) > 1:
        sentences.append("No brownish staining was measured." if st_ <= 0 else
                         f"Brownish staining along treated veins covers about {st_:.0f} mm². Staining is common and "
                         "usually fades over 6 to 12 months; sun exposure can make it darker.")
    if isinstance(mt, (int, float)) and len(rows) > 1:
        sentences.append("No matting (new very fine red vessels) was measured." if mt <= 0 else
                         f"A blush of new very fine red vessels (matting) covers about {mt:.0f} mm². It usually "
                         "clears within 3 to 12 months.")
    if len(rows) > 1 and isinstance(last.get("improvement_pct"), (int, float)) and not isinstance(st_, (int, float)):
        # compared without a scale: the side effects have no area, and nothing above would mention them
        sentences.append("These photos carry no scale (no calibration card on the skin), so lengths and areas are "
                         "not given in millimetres; any staining or matting found is described with the before and "
                         "after photos below.")
    mixed = _mixed_baselines(rows)
    if mixed:
        sentences.append(mixed)
    for s in sentences:
        pdf.multi_cell(0, 6, _latin1(s), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
    pdf.ln(2)

    # --- figures table ---
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, "Figures by session", new_x="LMARGIN", new_y="NEXT")
    head = ["Session", "Vessel length (mm)", "Coverage of skin (%)", "Improvement (%)", "Staining (mm²)", "Matting (mm²)"]
    cw = [28, 32, 34, 30, 30, w - 154]
    if mixed:  # each follow-up against the first-session photo it was compared with (shorter heads: 7 columns)
        head = ["Session", "Length (mm)", "Coverage (%)", "Improvement (%)", "Staining (mm²)", "Matting (mm²)",
                "Compared with"]
        cw = [24, 23, 24, 28, 27, 25, w - 151]
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_fill_color(230, 236, 245)
    for h, c in zip(head, cw):
        pdf.cell(c, 7, h, border=1, fill=True, align="C")
    pdf.ln()
    pdf.set_font("Helvetica", "", 9)
    for r in rows:
        vals = [r["session_date"], _fmt(r.get("total_length_mm"), 0), _fmt(r.get("total_coverage_pct"), 2),
                _fmt(r.get("improvement_pct"), 0), _fmt(r.get("staining_mm2"), 0), _fmt(r.get("matting_mm2"), 0)]
        if mixed:
            vals.append(_photo_label(r))
        for v, c in zip(vals, cw):
            pdf.cell(c, 6, v, border=1, align="C")
        pdf.ln()
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(0, 4, _latin1(_FIGURES_NOTE), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    footer_note()

    # --- progress chart ---
    if chart_png:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 8, "Progress over the sessions", new_x="LMARGIN", new_y="NEXT")
        pdf.image(io.BytesIO(chart_png), w=w)
        pdf.ln(2)
        footer_note()

    # --- before / after ---
    for pair in pairs:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 8, _latin1(f"Before ({pair.baseline_date}) and after ({pair.followup_date})"),
                 new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(0, 5, "Left: the first session. Right: the later photo, aligned and with its light matched to the "
                             "first, so the same place is at the same position.", new_x="LMARGIN", new_y="NEXT")
        pdf.image(_jpeg(pair.side_by_side_png), w=w)
        pdf.ln(2)
        pdf.set_font("Helvetica", "", 11)
        for line in pair.lines:
            pdf.multi_cell(0, 6, _latin1(line), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        if pair.change_map_png:
            pdf.add_page()
            pdf.set_font("Helvetica", "B", 13)
            pdf.cell(0, 8, "What changed", new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 9)
            pdf.multi_cell(0, 5, _latin1(
                "The first photo in grey. Green: veins no longer visible. Orange-red: veins still visible. Brown with a "
                "yellow outline: staining (S1, S2...). Magenta: matting (M1...). Blue: veins not seen at the first "
                "session. Hatched: not shown in both photos, so not compared."), new_x="LMARGIN", new_y="NEXT")
            pdf.image(_jpeg(pair.change_map_png), w=w * 0.85, x=pdf.l_margin + w * 0.075)
            pdf.ln(2)
        footer_note()
    return bytes(pdf.output())
