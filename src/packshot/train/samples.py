"""Sample shots during training: the same prompt and fixed seeds at every N steps.

Seeing the product appear over the steps is how a merchant (and an engineer) tells a run that
learns from one that overfits; fixed seeds make the images comparable from step to step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from packshot.models.sizes import Size


def sample_path(samples_dir: Path, step: int, seed: int, size: Size | None = None) -> Path:
    """`step-000012-seed0.png` at the run's square; `step-000012-seed0-576x448.png` at a bucket's
    other size."""
    suffix = "" if size is None else f"-{size[0]}x{size[1]}"
    return samples_dir / f"step-{step:06d}-seed{seed}{suffix}.png"


@torch.no_grad()
def render_seeded(
    pipeline: Any, prompt: str, *, seed: int, size: Size, num_inference_steps: int, path: Path
) -> Path:
    """One image of `size` (width, height) from `pipeline` with `seed`, written to `path`
    atomically."""
    # A CPU generator: the same seed gives the same starting noise on every device.
    generator = torch.Generator("cpu").manual_seed(seed)
    image = pipeline(
        prompt=prompt,  # by name: FLUX.2 [klein]'s first argument is its reference images
        width=size[0],
        height=size[1],
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
    other_sizes: Sequence[Size] = (),
) -> list[Path]:
    """One image per seed from `pipeline` (which holds the LoRA being trained) at the square of
    `resolution`, and one per seed at each of `other_sizes` (the buckets a run trained on
    besides the square), saved as PNGs."""
    samples_dir.mkdir(parents=True, exist_ok=True)
    sizes: list[Size | None] = [None, *other_sizes]
    return [
        render_seeded(
            pipeline,
            prompt,
            seed=seed,
            size=size or (resolution, resolution),
            num_inference_steps=num_inference_steps,
            path=sample_path(samples_dir, step, seed, size),
        )
        for seed in seeds
        for size in sizes
    ]
