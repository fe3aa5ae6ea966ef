"""A shoot as a merchant asks for it: `ShootRequest`, plain values that a job can store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from packshot.errors import UsageError
from packshot.models.families import (
    INSTANT_MODEL,
    ModelFamily,
    reference_families,
    stand_in_aliases,
)
from packshot.shoot.sheet import GPU_PRICE_PER_HOUR, STUDIO_PRICE_PER_PHOTO


def check_takes_references(family: ModelFamily, model: str) -> None:
    """Refuse `model` when its family takes no reference images (instant shots, reference
    photos), naming the families that do. Torch-free: the API checks a stand-in with it."""
    if family.reference_images:
        return
    offline = [alias for alias, f in stand_in_aliases().items() if f.reference_images]
    raise UsageError(
        f"`{model}` is a {family.label} model, which takes no reference images; instant shots "
        f"need a model that does: {', '.join(reference_families())} (e.g. {INSTANT_MODEL}"
        + (f", or {offline[0]} offline)." if offline else ").")
    )


@dataclass
class ShootRequest:
    """One shoot, as a merchant asks for it (the `packshot shoot` flags, in diffusers' names).

    `None` means "the preset's value, else packshot's default".
    """

    model_dir: Path | str | None  # a folder written by `packshot train`
    descriptions: list[str] = field(default_factory=list)  # "{product} on a marble table"
    prompts_file: Path | str | None = None  # more descriptions, one per line
    presets: list[str] = field(default_factory=list)  # shot preset names; none: words as given
    presets_file: Path | str | None = None  # the merchant's own presets, merged on top
    count: int | None = None  # shots per description and preset (preset's, else 4)
    aspect: str | None = None  # "1:1", "4:5", "3:4", "16:9", "9:16" (preset's, else 1:1)
    size: tuple[int, int] | str | None = None  # (width, height) or "768x512": overrides aspect
    seed: int | None = None  # first seed; a shot's seed is seed + its number (0..count-1)
    num_inference_steps: int | None = None  # 25; 4 with fast
    guidance_scale: float | None = None  # 7.0; 1.0 with an LCM-LoRA, 0.0 with a turbo model
    negative_prompt: str | None = None  # added to the preset's negative prompt
    lora_scale: float = 1.0  # how strongly the product's LoRA applies
    scheduler: str | None = None  # dpmpp_2m_karras (DPM++ 2M Karras); see render.SCHEDULERS
    fast: bool = False  # few-step previews: LCM-LoRA, or a turbo base model
    fast_lora: str | None = None  # LCM-LoRA: Hub id, folder or file (default: the family's)
    base: str | None = None  # shoot with this base model alone, without the product's LoRA
    # photos of the product the model sees while it draws, for a family that takes them
    # (FLUX.2 [klein]; `packshot instant` picks them): files; none: from the words alone
    references: list[str] = field(default_factory=list)
    product: str | None = None  # what {product} becomes without a model folder ("teapot")
    batch_size: int | None = None  # images per pipeline call (default: sized to the device)
    device: str | None = None  # "cuda", "mps", "cpu" (default: the best one here)
    precision: str | None = None  # "fp32", "fp16", "bf16" (default: the device's best)
    compile: bool = False  # the fast pipeline: merged LoRA, fused attention, torch.compile
    fp8: bool = False  # fp8 weights and activations where the GPU has them (torchao)
    gpu_price_per_hour: float = GPU_PRICE_PER_HOUR  # GBP, for the cost per image
    studio_price_per_photo: float = STUDIO_PRICE_PER_PHOTO  # GBP, what it is set against
