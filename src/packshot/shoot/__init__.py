"""Shooting product photos: `shoot(ShootRequest(model_dir, ["{product} on a table"]), out_dir)`.

Importing this package is light (no torch); torch and diffusers load with `shoot` itself.
"""

from __future__ import annotations

from packshot.shoot.metadata import Recipe, parse_parameters, read_parameters
from packshot.shoot.presets import ShotPreset, get_preset, load_presets
from packshot.shoot.run import (
    PlannedShot,
    ShootPlan,
    ShootRequest,
    ShootResult,
    Shot,
    plan_shoot,
    shoot,
)
from packshot.shoot.sizes import ASPECTS, size_for

__all__ = [
    "ASPECTS",
    "PlannedShot",
    "Recipe",
    "Shot",
    "ShootPlan",
    "ShootRequest",
    "ShootResult",
    "ShotPreset",
    "get_preset",
    "load_presets",
    "parse_parameters",
    "plan_shoot",
    "read_parameters",
    "shoot",
    "size_for",
]
