"""Pixel-true mode: the real product cut out of its photo, a scene generated around it.

from packshot.place import PlaceRequest, place

result = place(PlaceRequest("teapot.jpg", ["on a marble kitchen counter"]), "out/")

Importing this package is light (no torch, no ONNX Runtime); they load with `place` itself.
"""

from __future__ import annotations

from packshot.place.compose import GUARANTEE_BAND_PX, Composition, core, load_compositions
from packshot.place.run import PlacedShot, PlaceRequest, PlaceResult, place

__all__ = [
    "GUARANTEE_BAND_PX",
    "Composition",
    "PlaceRequest",
    "PlaceResult",
    "PlacedShot",
    "core",
    "load_compositions",
    "place",
]
