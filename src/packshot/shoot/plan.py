"""The shot planner for shoots and placements: descriptions x shot presets x count, each shot
with its prompt, size, seed and file name; the limits a request is checked against; and the one
place a first seed is drawn when none is given.

Light (no torch): the API's request bodies import the limits from here.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packshot.errors import UsageError
from packshot.models.families import ModelFamily
from packshot.shoot.presets import ShotPreset, get_preset, load_presets
from packshot.shoot.prompts import ProductWords, compose_prompt

MAX_SEED = 2**32 - 1  # A1111's seed range
# A drawn first seed stays this far below MAX_SEED, so that seed + i never wraps around for
# any count the limits allow; the studio takes first seeds up to the same bound.
SEED_HEADROOM = 10_000
MAX_FIRST_SEED = MAX_SEED - SEED_HEADROOM
DEFAULT_COUNT = 4  # shots per description and preset, without a preset's own count
DEFAULT_ASPECT = "1:1"
LIMITS = {  # name: (lowest, highest) a merchant may ask for, checked in this order
    "count": (1, 100),
    "num_inference_steps": (1, 150),
    "guidance_scale": (0.0, 30.0),
    "lora_scale": (0.0, 2.0),  # above 2 a LoRA overwhelms the base model: images fall apart
    "batch_size": (1, 64),
    "seed": (0, MAX_SEED),
}
# One studio job asks for less than the CLI allows (at most 20 x 10 x 16 shots, and --best K
# renders 2K per group), so that one request can't hold the GPU for a day.
JOB_MAX_DESCRIPTIONS = 20
JOB_MAX_PRESETS = 10
JOB_MAX_COUNT = 16
JOB_MAX_BEST = 8
CANDIDATES_PER_KEPT = 2  # with --best K: render 2K candidates per description and preset


def draw_seed() -> int:
    """A random first seed, for a request given none (every caller draws it here)."""
    return secrets.randbelow(MAX_FIRST_SEED)


def check_limits(request: Any) -> None:
    """Refuse the first number of `request` outside `LIMITS`, naming it and its value.

    Fields the request doesn't have, or leaves None, are skipped.
    """
    for name, (low, high) in LIMITS.items():
        value = getattr(request, name, None)
        if value is not None and not low <= value <= high:
            raise UsageError(f"`{name}` must be between {low} and {high}, but is {value}.")


@dataclass(frozen=True)
class PlannedShot:
    """One image to make: its words, preset, size, seed and file name."""

    index: int
    description: str
    preset: str | None
    prompt: str
    negative_prompt: str
    seed: int
    aspect: str
    width: int
    height: int
    stem: str  # the file name without suffix: `003-studio-seed42`


def presets_named(
    names: list[str], presets_file: Path | str | None = None
) -> list[ShotPreset | None]:
    """The shot presets `names` asks for (the merchant's file merged on top); [None] for none."""
    known = load_presets(presets_file)
    return [get_preset(known, name) for name in names] or [None]


def images_planned(
    descriptions: int, presets: list[ShotPreset | None], count: int | None, best: int | None = None
) -> int:
    """How many images a request renders, as `plan_shots` plans them (with `best` K, the 2K
    candidates of each group), without composing a prompt."""
    if best is not None:
        count = best * CANDIDATES_PER_KEPT
    return descriptions * sum(count or (p.count if p else DEFAULT_COUNT) for p in presets)


def preset_label(preset: ShotPreset | None) -> str:
    """A shoot's name for a shot in its file name: the preset's, else `shot`."""
    return preset.name if preset else "shot"


def plan_shots(
    descriptions: list[str],
    presets: list[ShotPreset | None],
    product: ProductWords,
    *,
    first_seed: int,
    count: int | None,
    aspect: str | None,
    negative_prompt: str | None,
    size: Callable[[str], tuple[int, int]],
    label: Callable[[ShotPreset | None], str] = preset_label,
    family: ModelFamily | None = None,
) -> tuple[list[PlannedShot], list[str]]:
    """Every shot, description x preset x count, and the warnings composing their prompts.

    `count` and `aspect` override each preset's (None: the preset's, else the defaults);
    `size(aspect)` is the (width, height) of a shot; `label(preset)` names its file. Shot i of
    a group gets seed `first_seed + i` (wrapping past `MAX_SEED`). A `family` whose pipeline
    takes no negative prompt (FLUX.2 [klein]) gets none, and a warning if one was asked for.
    """
    shots: list[PlannedShot] = []
    warnings: list[str] = []
    negatives = family is None or family.negative_prompts
    if family is not None and not negatives and negative_prompt and negative_prompt.strip():
        warnings.append(
            f'{family.label} models take no negative prompt: "{negative_prompt.strip()}" is '
            "ignored. Say what you want in the description instead."
        )
    for description in descriptions:
        for preset in presets:
            composed = compose_prompt(
                description,
                product,
                preset_prompt=preset.prompt if preset else None,
                preset_negative_prompt=preset.negative_prompt if preset else None,
                negative_prompt=negative_prompt,
            )
            for warning in composed.warnings:
                if warning not in warnings:
                    warnings.append(warning)
            group_count = count or (preset.count if preset else DEFAULT_COUNT)
            group_aspect = aspect or (preset.aspect if preset else DEFAULT_ASPECT)
            width, height = size(group_aspect)
            name = label(preset)
            for number in range(group_count):
                seed = (first_seed + number) % (MAX_SEED + 1)
                index = len(shots)
                shots.append(
                    PlannedShot(
                        index=index,
                        description=description,
                        preset=preset.name if preset else None,
                        prompt=composed.prompt,
                        negative_prompt=composed.negative_prompt if negatives else "",
                        seed=seed,
                        aspect=group_aspect,
                        width=width,
                        height=height,
                        stem=f"{index:03d}-{name}-seed{seed}",
                    )
                )
    return shots, warnings
