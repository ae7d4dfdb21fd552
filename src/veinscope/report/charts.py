"""Progress charts of a treated site over its sessions (matplotlib, Agg: no display, no browser).

Figures are returned, never shown; :func:`figure_png` turns one into PNG bytes offline.
The rows are those of :func:`veinscope.app_support.progress_rows`.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any, Sequence

from matplotlib.figure import Figure  # drawn with FigureCanvasAgg: no pyplot, no display, no global backend

__all__ = ["CLASS_STYLE", "figure_png", "progress_figure"]

#: Colour and plain name of each class in charts (the overlay's colours).
CLASS_STYLE = {
    "red_telangiectasia": ("#ff00a0", "red thread veins (< 1 mm)"),
    "blue_telangiectasia": ("#00a8e0", "blue thread veins (< 1 mm)"),
    "reticular": ("#2fb52f", "reticular veins (1-3 mm)"),
    "over_3mm": ("#ff9600", "over 3 mm"),
}


_NO_SCALE_TEXT = ("no scale in these photos: visible lengths need the calibration card on the skin\n"
                  "(or a scale entered at import); improvement percentages above do not need one")


def _dates(rows: Sequence[dict[str, Any]]) -> list[date]:
    return [date.fromisoformat(r["session_date"]) for r in rows]


def _series(rows, key):
    xs, ys = [], []
    for d, r in zip(_dates(rows), rows):
        v = r.get(key)
        if isinstance(v, (int, float)):
            xs.append(d)
            ys.append(float(v))
    return xs, ys


def _say_no_side_effects(ax, rows) -> None:
    """All side-effect areas measured are 0: say so, on a 0-1 mm² axis.

    matplotlib spread all-zero data over 0-0.05 mm², a fine scale that read as something measured
    (the demo patient's site b, helper qa38's walk of session 38).
    """
    areas = [v for r in rows[1:] if r.get("compared") for v in (r.get("staining_mm2"), r.get("matting_mm2"))
             if isinstance(v, (int, float))]
    if areas and not any(areas):
        ax.set_ylim(0.0, 1.0)
        ax.text(0.5, 0.5, "no staining or matting found at the sessions compared", transform=ax.transAxes,
                ha="center", va="center", fontsize=9, color="0.35")


def progress_figure(rows: Sequence[dict[str, Any]], *, title: str = "", width_in: float = 9.0) -> Figure:
    """Three panels over the session dates: improvement vs the first session (overall and per
    class, %), visible vessel length per class (mm), staining and matting area (mm²).

    Parameters
    ----------
    rows : sequence of dict
        Progress rows, oldest first (``session_date`` ISO, ``improvement_pct``,
        ``<class>_improvement_pct``, ``<class>_length_mm``, ``staining_mm2``, ``matting_mm2``).
    title : str
        Shown above the panels (e.g. the site).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not rows:
        raise ValueError("rows must hold at least one session, got none")
    fig = Figure(figsize=(width_in, 9.0), dpi=100, layout="constrained")
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    if title:
        fig.suptitle(title, fontsize=13)
    xs, ys = _series(rows, "improvement_pct")
    ax1.plot(xs, ys, "-o", color="black", lw=2.5, label="all vessels")
    for cls, (colour, name) in CLASS_STYLE.items():
        x, y = _series(rows, f"{cls}_improvement_pct")
        if len(y) > 1:
            ax1.plot(x, y, "--o", color=colour, lw=1.5, ms=4, label=name)
    for level in (25, 50, 75):
        ax1.axhline(level, color="0.8", lw=0.8, zorder=0)
    ax1.set_ylabel("vessel length gone\nsince first session (%)")
    ax1.set_ylim(min([-10.0, *[v for v in ys if v < 0]]) - 5, 105)
    ax1.legend(fontsize=8, loc="upper left")
    ax1.set_title("Improvement: share of the first session's vessel length no longer visible, on the skin both "
                  "photos show", fontsize=10)
    # A session compared but with no percentage (compare's "Not enough vessels to measure": under
    # min_baseline_mm of vessel found at the first session) is not one waiting to be compared.
    missing = [r["session_date"] for r in rows[1:] if r.get("improvement_pct") is None and not r.get("compared")]
    too_few = [r["session_date"] for r in rows[1:] if r.get("improvement_pct") is None and r.get("compared")]
    notes = ([f"not compared yet: {', '.join(missing)}"] if missing else []) + (
        [f"too few vessels at the first session to measure: {', '.join(too_few)}"] if too_few else [])
    if notes:
        ax1.text(0.99, 0.02, "\n".join(notes), transform=ax1.transAxes, ha="right",
                 va="bottom", fontsize=8, color="0.4")

    for cls, (colour, name) in CLASS_STYLE.items():
        x, y = _series(rows, f"{cls}_length_mm")
        if y and max(y) > 0:
            ax2.plot(x, y, "-o", color=colour, lw=1.8, ms=4, label=name)
    ax2.set_ylabel("visible length (mm)")
    ax2.set_title("Visible vessel length in each session's whole photo", fontsize=10)
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=8, loc="best")  # lengths rise or fall: a fixed corner can hide the last session
    else:  # an empty panel read as "no vessels"; without a scale there are no millimetres to draw
        no_scale = [r["session_date"] for r in rows if not isinstance(r.get("total_length_mm"), (int, float))]
        ax2.text(0.5, 0.5, _NO_SCALE_TEXT if no_scale else "no visible vessels measured", transform=ax2.transAxes,
                 ha="center", va="center", fontsize=9, color="0.35", wrap=True)
    ax2.set_ylim(bottom=0)

    xs, ys = _series(rows, "staining_mm2")
    ax3.plot(xs, ys, "-s", color="#8b5a2b", lw=2, label="staining (brown marks)")
    xs, ys = _series(rows, "matting_mm2")
    ax3.plot(xs, ys, "-^", color="#d000d0", lw=2, label="matting (new fine red vessels)")
    ax3.set_ylabel("area (mm²)")
    ax3.set_ylim(bottom=0)
    # compared, but no area without a scale: said on the panel (an empty panel read as "no side effects")
    unsized = [r["session_date"] for r in rows[1:] if r.get("compared") and r.get("improvement_pct") is not None
               and not isinstance(r.get("staining_mm2"), (int, float))]
    if unsized:
        ax3.text(0.99, 0.95, f"no scale, so no area for {', '.join(unsized)} (patches found are marked on its change map)",
                 transform=ax3.transAxes, ha="right", va="top", fontsize=8, color="0.35")
    _say_no_side_effects(ax3, rows)
    ax3.legend(fontsize=8, loc="upper left")
    ax3.set_title("Side effects compared with the first session", fontsize=10)
    ax3.set_xlabel("session date")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    ax3.set_xticks(_dates(rows))
    ax3.set_xticklabels([d.strftime("%d %b %Y") for d in _dates(rows)], rotation=0, fontsize=8)
    return fig


def figure_png(fig: Figure, *, dpi: int = 120) -> bytes:
    """PNG bytes of a figure (offline, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
