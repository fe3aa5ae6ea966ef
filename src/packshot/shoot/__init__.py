"""Shooting product photos: `shoot(ShootRequest(model_dir, ["{product} on a table"]), out_dir)`.

Importing this package is light (no torch); torch and diffusers load with `shoot` itself.
"""

from __future__ import annotations

from packshot.shoot.plan import PlannedShot
from packshot.shoot.presets import ShotPreset, get_preset, load_presets
from packshot.shoot.run import (
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
