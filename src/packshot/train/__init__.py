"""Training a product model: DreamBooth-LoRA on SD 1.5 and SDXL (`train(config, photos, out)`).

Importing this package is light; torch, diffusers and peft load with `train` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packshot.train.config import PRESET_NAMES, TrainConfig, load_presets

if TYPE_CHECKING:
    from packshot.train.loop import train

__all__ = [
    "PRESET_NAMES",
    "TrainConfig",
    "load_presets",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in ("train", "oom_advice"):
        from packshot.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
