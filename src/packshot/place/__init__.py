"""Pixel-true mode: the real product cut out of its photo, a scene generated around it.

from packshot.place import PlaceRequest, place

result = place(PlaceRequest("teapot.jpg", ["on a marble kitchen counter"]), "out/")

Importing this package is light (no torch, no ONNX Runtime); they load with `place` itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from packshot.place.compose import GUARANTEE_BAND_PX, Composition, core, load_compositions
from packshot.place.records import PlacedShot, PlaceRequest, PlaceResult, default_inpaint_model

if TYPE_CHECKING:
    from packshot.place.run import place

__all__ = [
    "GUARANTEE_BAND_PX",
    "Composition",
    "PlaceRequest",
    "PlaceResult",
    "PlacedShot",
    "core",
    "default_inpaint_model",
    "load_compositions",
    "place",
]

# Placing loads torch, diffusers and ONNX Runtime: its names are resolved on first use, so that
# the compositions and the records (what the API reads) stay light.
_LAZY = ("place",)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("packshot.place.run"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
