"""Domain errors with messages a practitioner understands."""

from __future__ import annotations

__all__ = ["VeinScopeError", "PhotoError", "CalibrationError", "RegistrationError"]


class VeinScopeError(Exception):
    """Base class of the errors VeinScope raises on purpose (never a bug)."""


class PhotoError(VeinScopeError):
    """The photo cannot be read or is unusable for measurement."""


class CalibrationError(VeinScopeError):
    """The scale or colour calibration cannot be established."""


class RegistrationError(VeinScopeError):
    """Two photos cannot be aligned (different site, too little overlap)."""
