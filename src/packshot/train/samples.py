"""Sample shots during training: the same prompt and fixed seeds at every N steps.

Seeing the product appear over the steps is how a merchant (and an engineer) tells a run that
learns from one that overfits; fixed seeds make the images comparable from step to step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def sample_path(samples_dir: Path, step: int, seed: int) -> Path:
    return samples_dir / f"step-{step:06d}-seed{seed}.png"


@torch.no_grad()
def render_seeded(
    pipeline: Any, prompt: str, *, seed: int, resolution: int, num_inference_steps: int, path: Path
) -> Path:
    """One square image from `pipeline` with `seed`, written to `path` atomically."""
    # A CPU generator: the same seed gives the same starting noise on every device.
    generator = torch.Generator("cpu").manual_seed(seed)
    image = pipeline(
        prompt=prompt,  # by name: FLUX.2 [klein]'s first argument is its reference images
        height=resolution,
        width=resolution,
        num_inference_steps=num_inference_steps,
        generator=generator,
    ).images[0]
    tmp = path.with_suffix(".tmp.png")  # renamed when complete: never a half-written PNG
    image.save(tmp)
    tmp.replace(path)
    return path


@torch.no_grad()
def render_samples(
    pipeline: Any,
    *,
    prompt: str,
    seeds: Sequence[int],
    resolution: int,
    num_inference_steps: int,
    samples_dir: Path,
    step: int,
) -> list[Path]:
    """One image per seed from `pipeline` (which holds the LoRA being trained), saved as PNGs."""
    samples_dir.mkdir(parents=True, exist_ok=True)
    return [
        render_seeded(
            pipeline,
            prompt,
            seed=seed,
            resolution=resolution,
            num_inference_steps=num_inference_steps,
            path=sample_path(samples_dir, step, seed),
        )
        for seed in seeds
    ]
