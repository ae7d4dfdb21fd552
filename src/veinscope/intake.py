"""Intake: a loaded photo -> scale, colour normalisation, card region and quality warnings.

Data flow: :func:`veinscope.load_photo` -> :func:`prepare` -> :class:`Intake` ->
:func:`veinscope.analyze` (which calls :func:`prepare` itself).

* Scale: entered by hand (``px_per_mm``) wins; otherwise the card (:func:`veinscope.calibrate.detect_card`);
  otherwise none. When both a scale by hand and a card are there and they disagree by more
  than 2 %, a warning says so.
* Colour: corrected from the card's neutral patches when the card is found; the skin fallback
  (less reliable) only when ``skin_fallback=True``.
* The card's region (with a margin) is excluded from the skin.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from veinscope.errors import CalibrationError
from veinscope.io import Photo, load_photo

__all__ = ["Intake", "prepare", "PIPELINE_HANDLED_CODES"]

log = logging.getLogger(__name__)

#: Quality codes that :func:`veinscope.analyze` words itself (not repeated from the intake).
PIPELINE_HANDLED_CODES = frozenset({"no_scale", "low_scale", "no_skin"})


@dataclass(frozen=True)
class Intake:
    """A photo ready for analysis.

    Attributes
    ----------
    photo : Photo
        As loaded (uncorrected colours).
    rgb : ndarray (M, N, 3) uint8
        Colour-normalised when a correction was applied, else ``photo.rgb``.
    px_per_mm : float or None
    scale_source : str
        ``"card"``, ``"manual"``, ``"ruler"`` or ``"none"``.
    calibration : Calibration or None
    card : Calibration or None
        The card found in the photo (also when the scale was entered by hand).
    colour : ColourCorrection or None
        The correction computed (``colour_applied`` tells whether ``rgb`` carries it).
    colour_applied : bool
    card_mask : ndarray (M, N) bool
        The card and a margin around it (never skin).
    skin : ndarray (M, N) bool
        Skin mask used by the quality checks (card excluded).
    issues : tuple of QualityWarning
    """

    photo: Photo
    rgb: np.ndarray
    px_per_mm: float | None
    scale_source: str
    calibration: Any
    card: Any
    colour: Any
    colour_applied: bool
    card_mask: np.ndarray
    skin: np.ndarray
    issues: tuple = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every loading remark and quality message, in plain language."""
        return tuple(self.photo.warnings) + tuple(i.message for i in self.issues)

    def pipeline_warnings(self) -> tuple[str, ...]:
        """The quality messages that :func:`veinscope.analyze` does not word itself."""
        return tuple(i.message for i in self.issues if i.code not in PIPELINE_HANDLED_CODES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "px_per_mm": None if self.px_per_mm is None else round(float(self.px_per_mm), 5),
            "scale_source": self.scale_source,
            "card": None if self.card is None else self.card.to_dict(),
            "colour": None if self.colour is None else self.colour.to_dict(),
            "colour_applied": self.colour_applied,
            "card_area_px": int(np.count_nonzero(self.card_mask)),
            "taken_at": None if self.photo.taken_at is None else self.photo.taken_at.isoformat(),
            "photo_info": dict(self.photo.info),
            "issues": [i.to_dict() for i in self.issues],
        }


def prepare(
    photo,
    *,
    px_per_mm: float | None = None,
    calibration=None,
    find_card: bool = True,
    correct_colour: bool = True,
    skin_fallback: bool = False,
) -> Intake:
    """Scale, colour and quality of one photo.

    Parameters
    ----------
    photo : path, bytes, ndarray or Photo
        Anything :func:`veinscope.load_photo` accepts.
    px_per_mm : float, optional
        Scale entered by hand (wins over the card).
    calibration : Calibration, optional
        A scale measured otherwise (e.g. :func:`veinscope.calibrate.scale_from_points`);
        wins over the card, not over ``px_per_mm``.
    find_card : bool
        Look for the calibration card.
    correct_colour : bool
        Apply the card's colour correction to ``rgb``.
    skin_fallback : bool
        Without a card, normalise colours from the skin (less reliable).

    Returns
    -------
    Intake
    """
    from veinscope.calibrate import detect_card, manual_calibration
    from veinscope.colour import correction_from_card, correction_from_skin
    from veinscope.quality import QualityWarning, assess_quality
    from veinscope.segment import skin_mask

    photo = load_photo(photo)
    rgb = photo.rgb
    extra: list[QualityWarning] = []
    card = None
    if find_card:
        try:
            card = detect_card(rgb)
        except CalibrationError as exc:
            log.info("no card: %s", exc)
        except Exception:  # noqa: BLE001 - the card is optional: an unexpected failure must not stop the analysis
            log.warning("card detection failed unexpectedly; going on without the card", exc_info=True)
            extra.append(QualityWarning(
                "card", "The calibration card could not be measured in this photo; it was ignored. Retake the photo "
                "with the whole card flat and in focus, or enter the scale by hand.",
            ))
    if px_per_mm is not None:
        if isinstance(px_per_mm, bool) or not (isinstance(px_per_mm, (int, float, np.number)) and math.isfinite(px_per_mm) and px_per_mm > 0):
            raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
        cal = manual_calibration(float(px_per_mm))
    elif calibration is not None:
        cal = calibration
    else:
        cal = card
    if card is not None and cal is not card:
        diff = 100.0 * (cal.px_per_mm / card.px_per_mm - 1.0)
        if abs(diff) > 2.0:
            extra.append(QualityWarning(
                "scale_mismatch",
                f"The scale entered ({cal.px_per_mm:.2f} px/mm) differs by {diff:+.1f} % from the card in the photo "
                f"({card.px_per_mm:.2f} px/mm). The entered scale is used; check it.",
                diff, 2.0,
            ))
    card_mask = card.card_mask(rgb.shape[:2]) if card is not None else np.zeros(rgb.shape[:2], bool)
    skin = skin_mask(rgb, exclude=card_mask)
    colour = None
    if card is not None:
        try:
            colour = correction_from_card(rgb, card)
        except CalibrationError as exc:
            extra.append(QualityWarning("colour", str(exc)))
    elif skin_fallback and skin.mean() >= 0.02:
        try:
            colour = correction_from_skin(rgb, skin)
        except CalibrationError as exc:
            extra.append(QualityWarning("colour", str(exc)))
    applied = bool(colour is not None and (correct_colour if colour.source == "card" else skin_fallback))
    out_rgb = colour.apply(rgb) if applied else rgb
    issues = assess_quality(rgb, skin=skin, calibration=cal, card_mask=card_mask, colour=colour) + tuple(extra)
    return Intake(
        photo=photo,
        rgb=out_rgb,
        px_per_mm=None if cal is None else float(cal.px_per_mm),
        scale_source="none" if cal is None else cal.source,
        calibration=cal,
        card=card,
        colour=colour,
        colour_applied=applied,
        card_mask=card_mask,
        skin=skin,
        issues=issues,
        params={"find_card": find_card, "correct_colour": correct_colour, "skin_fallback": skin_fallback},
    )
