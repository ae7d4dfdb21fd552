"""Render the public API's docstrings (units and shapes included) into docs/reference.md.

Run:  .venv/bin/python docs/build_reference.py [--out docs/reference.md]

Every name in each public module's ``__all__`` is listed with its signature and its numpydoc
docstring as written in the source (the source stays the single place to edit); classes also
list their public methods and properties. Nothing is imported that the library does not
import itself (no Streamlit).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from pathlib import Path

HERE = Path(__file__).resolve().parent

MODULES = [
    ("veinscope", "The package: the main entry points, re-exported."),
    ("veinscope.io", "Photo in: EXIF-rotated RGB."),
    ("veinscope.pipeline", "The engine end to end."),
    ("veinscope.measure", "Results of one photo."),
    ("veinscope.intake", "Scale, colour and quality of one photo before the engine."),
    ("veinscope.calibrate", "The calibration card, px/mm."),
    ("veinscope.colour", "Colour normalisation."),
    ("veinscope.quality", "Photo-quality checks."),
    ("veinscope.card", "The card's layout."),
    ("veinscope.chromophores", "Optical density and chromophore maps."),
    ("veinscope.vesselness", "Multi-scale line filter."),
    ("veinscope.segment", "Skin and vessel masks."),
    ("veinscope.extend", "Following a vessel past the end of its centreline."),
    ("veinscope.diameter", "Sub-pixel vessel diameters."),
    ("veinscope.vesselmap", "Generic vessel map of any image."),
    ("veinscope.register", "Aligning a follow-up photo to its baseline."),
    ("veinscope.compare", "Changes between two sessions."),
    ("veinscope.report.overlay", "The overlay picture."),
    ("veinscope.report.change_map", "The change map and side-by-side pictures."),
    ("veinscope.report.charts", "Progress charts."),
    ("veinscope.report.pdf", "The PDF report."),
    ("veinscope.batch", "Many photos: parallel, resumable, on a Dask cluster."),
    ("veinscope.store", "Patient records: database and photo store."),
    ("veinscope.synth", "Synthetic photos with exact truth."),
    ("veinscope.errors", "Domain errors."),
]


def _signature(obj) -> str:
    """The signature, with defaults whose repr carries a memory address (functions, sentinel
    objects) shown by name, so the reference is the same on every build."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    params = []
    for p in sig.parameters.values():
        d = p.default
        if d is not inspect.Parameter.empty and " at 0x" in repr(d):
            d = _Named(getattr(d, "__name__", "(not given)"))
            p = p.replace(default=d)
        params.append(p)
    return str(sig.replace(parameters=params))


def _stable_repr(obj) -> str:
    """repr, with the members of sets in sorted order (set order changes with hash seeds)."""
    if isinstance(obj, (set, frozenset)):
        inner = ", ".join(sorted(repr(v) for v in obj))
        return f"{type(obj).__name__}({{{inner}}})" if obj else f"{type(obj).__name__}()"
    return repr(obj)


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _doc(obj) -> str:
    doc = inspect.getdoc(obj) or "(no docstring)"
    return "```text\n" + doc + "\n```\n"


def _members(cls) -> list[tuple[str, object]]:
    out = []
    for name, member in vars(cls).items():
        if name.startswith("_") or name in ("to_dict",) and not inspect.getdoc(member):
            continue
        if isinstance(member, property) or inspect.isfunction(member) or isinstance(member, (classmethod, staticmethod)):
            out.append((name, member))
    return out


def render() -> str:
    lines = ["# VeinScope API reference", "",
             "Generated from the docstrings by `docs/build_reference.py`; units are in the names "
             "(`*_px`, `*_mm`, `*_mm2`, `*_pct`, `*_frac`) and shapes in the docstrings.", ""]
    lines += ["## Contents", ""] + [f"- [`{m}`](#{m.replace('.', '')}): {what}" for m, what in MODULES] + [""]
    for modname, what in MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError as exc:  # an optional extra missing: say so, go on
            lines += [f"## {modname}", "", f"(not importable here: {exc})", ""]
            continue
        lines += [f"## {modname}", "", what, ""]
        if modname != "veinscope" and mod.__doc__:
            lines += [_doc(mod)]
        for name in getattr(mod, "__all__", []):
            if modname == "veinscope" and name == "__version__":
                continue
            obj = getattr(mod, name)
            if modname == "veinscope" and getattr(obj, "__module__", "") not in ("veinscope", None):
                lines += [f"- `veinscope.{name}`: see `{getattr(obj, '__module__', '')}.{name}`"]
                continue
            if inspect.isclass(obj):
                lines += [f"### class `{modname}.{name}{_signature(obj)}`", "", _doc(obj)]
                for mname, member in _members(obj):
                    target = member.fget if isinstance(member, property) else getattr(obj, mname)
                    kind = "property" if isinstance(member, property) else "method"
                    sig = "" if kind == "property" else _signature(target)
                    lines += [f"#### {kind} `{name}.{mname}{sig}`", "", _doc(target)]
            elif callable(obj):
                lines += [f"### `{modname}.{name}{_signature(obj)}`", "", _doc(obj)]
            else:
                lines += [f"### `{modname}.{name}`", "", f"Constant: `{_stable_repr(obj)}`"[:400], ""]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE / "reference.md")
    args = ap.parse_args()
    text = render()
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
