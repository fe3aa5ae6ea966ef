"""Shooting product photos: `shoot(ShootRequest(model_dir, ["{product} on a table"]), out_dir)`.

Importing this package is light (no torch); torch and diffusers load with `shoot` itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from packshot.shoot.plan import PlannedShot
from packshot.shoot.presets import ShotPreset, get_preset, load_presets
from packshot.shoot.request import ShootRequest
from packshot.shoot.sizes import ASPECTS, size_for

if TYPE_CHECKING:
    from packshot.shoot.run import ShootPlan, ShootResult, Shot, plan_shoot, shoot

__all__ = [
    "ASPECTS",
    "PlannedShot",
    "Shot",
    "ShootPlan",
    "ShootRequest",
    "ShootResult",
    "ShotPreset",
    "get_preset",
    "load_presets",
    "plan_shoot",
    "shoot",
    "size_for",
]

# The shoot itself loads torch and diffusers: its names are resolved on first use, so that the
# planner, the presets, the sizes and the request (what the API reads) stay light.
_LAZY = ("ShootPlan", "ShootResult", "Shot", "plan_shoot", "shoot")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("packshot.shoot.run"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
