"""The patient report's PDF and progress chart as a practitioner reads them (found by hand, session 31)."""

from __future__ import annotations

import numpy as np
import pytest

from veinscope.report.charts import CLASS_STYLE, progress_figure
from veinscope.report.pdf import patient_report

CLASSES = tuple(CLASS_STYLE)


def _row(day, lengths, improvement=None):
    r = {"session_date": day, "total_length_mm": float(sum(lengths)), "total_coverage_pct": 2.0,
         "improvement_pct": improvement, "staining_mm2": None if improvement is None else 0.0,
         "matting_mm2": None if improvement is None else 0.0}
    for c, v in zip(CLASSES, lengths):
        r[f"{c}_length_mm"] = v
        r[f"{c}_improvement_pct"] = improvement
    return r


def _pdf_text(pdfium, data: bytes) -> str:
    """The text of every page of a PDF, whitespace collapsed."""
    doc = pdfium.PdfDocument(data)
    try:
        return " ".join(" ".join(doc[i].get_textpage().get_text_range().split()) for i in range(len(doc)))
    finally:
        doc.close()


def test_pdf_vessel_length_caption_names_every_class_in_the_total():
    """The table's 'Vessel length' is the total of all four classes, over 3 mm included: its caption says so."""
    pdfium = pytest.importorskip("pypdfium2")
    rows = [_row("2026-01-05", [90.0, 62.0, 111.0, 139.0], 0.0), _row("2026-02-05", [50.0, 40.0, 80.0, 100.0], 30.0)]
    text = _pdf_text(pdfium, patient_report(patient_code="P-1", site="left calf", rows=rows))
    assert "402" in text  # the total, over 3 mm included
    caption = text[text.index("Vessel length:"):]
    caption = caption[: caption.index("Coverage:")]
    assert "over 3 mm" in caption, caption


def test_pdf_says_the_improvement_is_not_the_change_of_the_whole_photo_lengths():
    """543 -> 210 mm of whole-photo length reads as 61 % beside an improvement of 71 % that counts only the
    skin both photos show and the first session's veins: the caption says what each figure counts."""
    pdfium = pytest.importorskip("pypdfium2")
    rows = [_row("2026-01-05", [140.0, 130.0, 180.0, 93.0], 0.0), _row("2026-04-12", [60.0, 50.0, 70.0, 30.0], 71.0)]
    text = _pdf_text(pdfium, patient_report(patient_code="P-1", site="left calf", rows=rows))
    assert "543" in text and "210" in text and "71" in text
    lengths = text[text.index("Vessel length:"):text.index("Coverage:")]
    assert "whole photo" in lengths, lengths
    improvement = text[text.index("Improvement:"):]
    improvement = improvement[: improvement.index("'-'")]
    assert "both photos show" in improvement, improvement
    assert "first session" in improvement and "not the change" in improvement, improvement


def test_progress_chart_legend_leaves_the_lengths_visible():
    """A length that grows to the last session must not sit under the legend of the length panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rows = [_row("2026-01-05", [55.0, 64.0, 63.0, 131.0], 0.0), _row("2026-02-05", [257.0, 127.0, 128.0, 0.0])]
    fig = progress_figure(rows, title="P-1 - thigh")
    FigureCanvasAgg(fig).draw()
    ax2 = fig.axes[1]
    box = ax2.get_legend().get_window_extent()
    hidden = []
    for line in ax2.get_lines():
        xy = ax2.transData.transform(np.column_stack(line.get_data(orig=False)).astype(float))
        hidden += [tuple(p) for p in xy if box.contains(*p)]
    assert not hidden, f"data points under the legend: {hidden}"


def test_progress_chart_titles_say_what_the_improvement_and_the_lengths_count():
    """The chart puts the improvement above the whole-photo lengths: each panel says what it counts."""
    rows = [_row("2026-01-05", [140.0, 130.0, 180.0, 93.0], 0.0), _row("2026-04-12", [60.0, 50.0, 70.0, 30.0], 71.0)]
    fig = progress_figure(rows, title="P-1 - calf")
    titles = [ax.get_title() for ax in fig.axes]
    assert "both photos show" in titles[0] and "whole photo" in titles[1], titles


def test_progress_chart_without_a_scale_says_why_panels_have_no_millimetres():
    """Real legs without the card (session 32's walk): the length panel was empty, and the side-effect panel
    showed 0 mm² at the first session and nothing at the follow-up, which had a staining and a matting
    patch: it read as "no side effects". Each panel now says that without a scale there is no area."""
    def no_scale(day, improvement):
        r = _row(day, [0.0, 0.0, 0.0, 0.0], improvement)
        r.update({f"{c}_length_mm": None for c in CLASSES})
        r.update(total_length_mm=None, compared=improvement is not None,
                 staining_mm2=0.0 if improvement == 0.0 else None, matting_mm2=0.0 if improvement == 0.0 else None)
        return r

    rows = [no_scale("2026-12-07", 0.0), no_scale("2027-01-20", 10.0)]
    fig = progress_figure(rows, title="QA - left calf")
    texts = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    assert any("no scale" in t and "calibration card" in t for t in texts[1]), texts[1]
    assert any("no scale" in t and "2027-01-20" in t for t in texts[2]), texts[2]
    # with a scale nothing of the sort is written
    scaled = [dict(_row("2026-01-05", [55.0, 64.0, 63.0, 131.0], 0.0), compared=True),
              dict(_row("2026-02-05", [50.0, 60.0, 60.0, 100.0], 20.0), compared=True)]
    fig = progress_figure(scaled)
    assert not any("no scale" in t.get_text() for ax in fig.axes for t in ax.texts)


def test_pdf_without_a_scale_points_to_the_side_effects_found():
    """Compared without a scale, page 1 said nothing of the staining and matting patches found (their
    areas are '-', explained as 'not measured'); it now says why and where they are described."""
    pdfium = pytest.importorskip("pypdfium2")
    rows = [_row("2026-12-07", [0.0, 0.0, 0.0, 0.0], 0.0), _row("2027-01-20", [0.0, 0.0, 0.0, 0.0], 10.0)]
    for r in rows:
        r["total_length_mm"] = None
    rows[1].update(staining_mm2=None, matting_mm2=None)
    text = _pdf_text(pdfium, patient_report(patient_code="P-1", site="left calf", rows=rows))
    assert "no scale" in text and "described with the before and after photos" in text
    assert "need the calibration card" in text
    scaled = [_row("2026-01-05", [90.0, 62.0, 111.0, 139.0], 0.0), _row("2026-02-05", [50.0, 40.0, 80.0, 100.0], 30.0)]
    assert "no scale" not in _pdf_text(pdfium, patient_report(patient_code="P-1", site="left calf", rows=scaled))


def test_progress_chart_tells_too_few_vessels_from_not_compared_yet():
    """Session 33: compare gives no improvement percentage from under 5 mm of baseline vessel (dark skin, helper
    dark33). The chart called such a compared session "not compared yet", which sends the practitioner to
    compare it again; it now says there were too few vessels to measure, and keeps "not compared yet" for the
    sessions still waiting."""
    rows = [dict(_row("2026-12-07", [2.0, 1.0, 0.0, 0.0], 0.0), compared=True),
            dict(_row("2027-01-20", [1.0, 1.0, 0.0, 0.0], None), compared=True),
            dict(_row("2027-03-02", [1.0, 0.5, 0.0, 0.0], None), compared=False)]
    fig = progress_figure(rows, title="QA - left calf")
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "too few vessels at the first session to measure: 2027-01-20" in text, text
    assert "not compared yet: 2027-03-02" in text, text
    assert "not compared yet: 2027-01-20" not in text, text


def test_pdf_caption_says_an_improvement_needs_enough_vessels():
    """The PDF's '-' was explained only by a missing scale; since session 33 it is also an improvement measured
    on too little vessel (compare's min_baseline_mm)."""
    from veinscope.compare import compare
    import inspect

    from veinscope.report import pdf

    floor = inspect.signature(compare).parameters["min_baseline_mm"].default
    assert f"at least {floor:g} mm of vessel" in pdf._FIGURES_NOTE


def test_progress_chart_says_when_no_side_effect_was_found():
    """All staining and matting 0 mm² (the demo patient's site b): the panel's axis ran 0-0.05 mm², a fine
    scale that read as something measured (helper qa38, session 38). It now says none was found, on 0-1 mm²."""
    rows = [dict(_row("2026-01-05", [55.0, 64.0, 63.0, 131.0], 0.0), compared=True),
            dict(_row("2026-02-04", [50.0, 60.0, 60.0, 100.0]), compared=False),
            dict(_row("2026-03-08", [20.0, 30.0, 10.0, 50.0], 86.0), compared=True)]
    fig = progress_figure(rows)
    side = fig.axes[2]
    assert any("no staining or matting found" in t.get_text() for t in side.texts), [t.get_text() for t in side.texts]
    assert side.get_ylim()[1] >= 1.0
    rows[2]["matting_mm2"] = 10.4  # something found: no such note, the axis fits the data
    side = progress_figure(rows).axes[2]
    assert not any("no staining or matting" in t.get_text() for t in side.texts)
