"""The training data, encoded once: VAE latents (and their flips), loss-weight masks, prompts.

After `encode_examples` the loop needs neither the VAE nor (unless the text encoder is trained)
the text encoders, so the caller frees them before the first step.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from packshot.errors import PhotoSetError
from packshot.models.families import ModelFamily
from packshot.progress import ProgressCallback, ProgressEvent, no_progress
from packshot.train.samples import render_seeded


@dataclass(frozen=True)
class TrainingExample:
    """One training image: a square crop, its caption, and the product mask if there is one."""

    image: Path
    caption: str
    mask: Path | None = None
    is_class_image: bool = False  # a prior-preservation image (weight prior_loss_weight, no mask)


@dataclass
class EncodedSet:
    """Cached inputs of every example. Row i is example i; row i + n is its horizontal flip."""

    latents: torch.Tensor  # (V, C, h, w), V = n or 2n, as the family's denoiser takes them
    loss_weights: torch.Tensor  # (V, 1, h, w): 1 on the product, background_weight elsewhere
    sample_weights: torch.Tensor  # (n,): 1 for product photos, prior_loss_weight for class images
    prompt_embeds: torch.Tensor | None  # (n, 77, D); None when the text encoder is trained
    pooled_prompt_embeds: torch.Tensor | None  # (n, P), families with a pooled embedding (SDXL)
    input_ids: list[torch.Tensor]  # per text encoder, (n, 77): kept for text-encoder training
    num_examples: int
    has_flips: bool
    captions: list[str]


def load_image(path: Path, resolution: int) -> torch.Tensor:
    """An RGB image as a (3, R, R) tensor in [-1, 1], centre-cropped and resized if needed."""
    with Image.open(path) as img:
        rgb = ImageOps.exif_transpose(img).convert("RGB")
    if rgb.size != (resolution, resolution):
        rgb = ImageOps.fit(rgb, (resolution, resolution), Image.Resampling.LANCZOS)
    array = np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0  # (R, R, 3)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_mask(path: Path | None, resolution: int) -> torch.Tensor:
    """A product mask as (1, R, R) in [0, 1]; all ones (no masking) when there is none."""
    if path is None:
        return torch.ones(1, resolution, resolution)
    with Image.open(path) as img:
        gray = img.convert("L")
    if gray.size != (resolution, resolution):
        gray = ImageOps.fit(gray, (resolution, resolution), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)[None]


def mask_to_loss_weights(
    mask: torch.Tensor, latent_size: int, background_weight: float
) -> torch.Tensor:
    """(B, 1, R, R) masks → (B, 1, h, w) loss weights: 1 on the product, `background_weight` off.

    Area averaging keeps partial coverage at the product's edge (a latent pixel half on the
    product gets a weight halfway between).
    """
    small = F.interpolate(mask, size=(latent_size, latent_size), mode="area")
    return background_weight + (1.0 - background_weight) * small


@torch.no_grad()
def encode_examples(
    examples: Sequence[TrainingExample],
    *,
    vae: torch.nn.Module,
    tokenizers: Sequence[Any],
    text_encoders: Sequence[torch.nn.Module],
    resolution: int,
    random_flip: bool,
    background_weight: float,
    prior_loss_weight: float,
    family: ModelFamily,
    encode_text: bool = True,
    batch_size: int = 4,
    progress: ProgressCallback = no_progress,
) -> EncodedSet:
    """Run the VAE (and the text encoders) once over every example; return what the loop needs."""
    if not examples:
        raise PhotoSetError("No training images to learn from.")
    n = len(examples)
    device = next(vae.parameters()).device

    # 1. Latents of every image and, with flips on, of its mirror image (the VAE is not
    #    equivariant to flips, so flipping latents would not be the same thing), encoded as
    #    the family trains on them.
    variants = [False, True] if random_flip else [False]
    latents, weights = [], []
    total = n * len(variants)
    for flip in variants:
        for start in range(0, n, batch_size):
            chunk = examples[start : start + batch_size]
            pixels = torch.stack([load_image(e.image, resolution) for e in chunk])
            masks = torch.stack(
                [
                    torch.ones(1, resolution, resolution)
                    if e.is_class_image
                    else load_mask(e.mask, resolution)
                    for e in chunk
                ]
            )
            if flip:
                pixels, masks = pixels.flip(-1), masks.flip(-1)
            pixels = pixels.to(device, dtype=next(vae.parameters()).dtype)
            latent = family.encode_images(vae, pixels)  # SD: (b, 4, R/8, R/8)
            latents.append(latent.float().cpu())
            weight = mask_to_loss_weights(masks, latent.shape[-1], background_weight)
            # class images are learned everywhere: weight 1 whatever background_weight is
            for j, example in enumerate(chunk):
                if example.is_class_image:
                    weight[j] = 1.0
            weights.append(weight)
            done = sum(t.shape[0] for t in latents)
            progress(ProgressEvent("cache", done, total, "encoding images"))

    # 2. Token ids, and unless the text encoder is trained, their embeddings.
    captions = [e.caption for e in examples]
    input_ids = family.tokenize(tokenizers, captions)
    prompt_embeds = pooled = None
    if encode_text:
        embeds, pooled_parts = [], []
        for start in range(0, n, batch_size):
            ids = [t[start : start + batch_size] for t in input_ids]
            e, p = family.encode_prompt(text_encoders, ids)
            embeds.append(e.float().cpu())
            if p is not None:
                pooled_parts.append(p.float().cpu())
        prompt_embeds = torch.cat(embeds)
        pooled = torch.cat(pooled_parts) if pooled_parts else None

    sample_weights = torch.tensor(
        [prior_loss_weight if e.is_class_image else 1.0 for e in examples], dtype=torch.float32
    )
    return EncodedSet(
        latents=torch.cat(latents),
        loss_weights=torch.cat(weights),
        sample_weights=sample_weights,
        prompt_embeds=prompt_embeds,
        pooled_prompt_embeds=pooled,
        input_ids=input_ids,
        num_examples=n,
        has_flips=random_flip,
        captions=captions,
    )


# -- prior preservation: class images made by the base model itself ----------------------------


def class_images_key(model_id: str, prompt: str, resolution: int, steps: int) -> str:
    """The cache key of a class-image set: same model, prompt, size and steps → same images."""
    blob = json.dumps([model_id, prompt, resolution, steps]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def ensure_class_images(
    folder: Path,
    *,
    count: int,
    make_pipeline: Callable[[], Any],
    prompt: str,
    resolution: int,
    num_inference_steps: int,
    progress: ProgressCallback = no_progress,
) -> list[Path]:
    """`count` class images in `folder`, generating only the missing ones (seed = index).

    Each image is written to a temporary name and renamed, so an interrupted run leaves no
    broken image in the shared cache, and products of the same class reuse the set.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:04d}.png" for i in range(count)]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        pipe = make_pipeline()
        for done, i in enumerate(missing, start=1):
            render_seeded(
                pipe,
                prompt,
                seed=i,
                resolution=resolution,
                num_inference_steps=num_inference_steps,
                path=paths[i],
            )
            progress(ProgressEvent("class-images", done, len(missing), "generating class images"))
        del pipe
    return paths
