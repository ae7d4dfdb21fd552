"""VeinScope: find, classify and measure leg veins in colour photos.

The public API is re-exported here and loaded lazily, so that ``veinscope --help`` and
``import veinscope`` stay fast; Numba kernels compile (or load from cache) on first use.
Call :func:`warmup` once in a long-running process.
"""

from __future__ import annotations

import importlib
from typing import Any

from veinscope._version import __version__
from veinscope.errors import CalibrationError, PhotoError, RegistrationError, VeinScopeError

__all__ = [
    "__version__",
    "Analysis",
    "Calibration",
    "CalibrationError",
    "Comparison",
    "Registration",
    "detect_card",
    "generate_series",
    "open_store",
    "Photo",
    "PhotoError",
    "RegistrationError",
    "VeinScopeError",
    "analyze",
    "generate_photo",
    "load_photo",
    "vesselmap",
    "vesselness",
    "warmup",
]

# Functions whose module has the same name (``veinscope.compare.compare``,
# ``veinscope.register.register``) are reached through their module: importing the submodule
# would shadow a package-level function of that name.
_LAZY = {
    "Analysis": "veinscope.measure",
    "Calibration": "veinscope.calibrate",
    "Comparison": "veinscope.compare",
    "Registration": "veinscope.register",
    "detect_card": "veinscope.calibrate",
    "generate_series": "veinscope.synth",
    "open_store": "veinscope.store",
    "Photo": "veinscope.io",
    "analyze": "veinscope.pipeline",
    "generate_photo": "veinscope.synth",
    "load_photo": "veinscope.io",
    "vesselmap": "veinscope.vesselmap",
    "vesselness": "veinscope.vesselness",
    "warmup": "veinscope.pipeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'veinscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
