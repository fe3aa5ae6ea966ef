"""The training data, encoded once: VAE latents (and their flips) of each image at its aspect
bucket, loss-weight masks at the latents' shape, where each crop was cut from, prompts.

After `encode_examples` the loop needs neither the VAE nor (unless the text encoder is trained)
the text encoders, so the caller frees them before the first step.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from packshot.errors import PhotoSetError
from packshot.models.families import CropGeometry, ModelFamily
from packshot.models.sizes import Size
from packshot.progress import ProgressCallback, ProgressEvent, no_progress
from packshot.train.samples import render_seeded

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in an image's pixels


@dataclass(frozen=True)
class TrainingExample:
    """One training image: a crop at its aspect bucket, its caption, and the product mask if
    there is one."""

    image: Path
    caption: str
    mask: Path | None = None
    is_class_image: bool = False  # a prior-preservation image (weight prior_loss_weight, no mask)
    size: Size | None = None  # (width, height) it trains at, its bucket; None: the resolution²
    # Where the crop was cut from (the training set's manifest): the upright photo's (width,
    # height) and the crop's [x0, y0, x1, y1] in its pixels; None: the image file is all there is.
    photo_size: Size | None = None
    crop_box: Box | None = None


@dataclass
class EncodedSet:
    """Cached inputs of every example, each at its own size (its aspect bucket). Row i of the
    per-row lists is example i; row i + n is its horizontal flip."""

    latents: list[torch.Tensor]  # V rows, V = n or 2n: (C, h, w) as the family's denoiser takes
    loss_weights: list[torch.Tensor]  # V rows: (1, h, w), 1 on the product, background_weight off
    crops: list[CropGeometry]  # V rows: where each was cut from (SDXL's size conditioning)
    sample_weights: torch.Tensor  # (n,): 1 for product photos, prior_loss_weight for class images
    prompt_embeds: torch.Tensor | None  # (n, 77, D); None when the text encoder is trained
    pooled_prompt_embeds: torch.Tensor | None  # (n, P), families with a pooled embedding (SDXL)
    input_ids: list[torch.Tensor]  # per text encoder, (n, 77): kept for text-encoder training
    num_examples: int
    has_flips: bool
    captions: list[str]

    def size_of(self, index: int) -> Size:
        """The (width, height) example `index` trains at."""
        height, width = self.crops[index].target_size
        return width, height

    @property
    def buckets(self) -> dict[Size, list[int]]:
        """The examples of each bucket, (width, height) → indices in order, buckets by size."""
        groups: dict[Size, list[int]] = {}
        for index in range(self.num_examples):
            groups.setdefault(self.size_of(index), []).append(index)
        return dict(sorted(groups.items()))


def epoch_batches(
    buckets: Mapping[Size, Sequence[int]], batch_size: int, seed: int
) -> list[torch.Tensor]:
    """One epoch's batches of example indices, each from one bucket, drawn from `seed` alone
    (the run's seed plus the epoch): any step's batch is known without saved state, so a
    resumed run draws what the uninterrupted one did.

    Each bucket's examples in a random order, cut into batches of `batch_size`, the last one
    filled from the start of that order again (a bucket smaller than a batch repeats its
    examples, each with its own noise and flip); then the batches of all buckets in a random
    order. One bucket: one permutation's batches, in order.
    """
    generator = torch.Generator().manual_seed(seed)
    batches: list[torch.Tensor] = []
    for members in buckets.values():
        order = torch.tensor(list(members))[torch.randperm(len(members), generator=generator)]
        order = order.repeat(batch_size // len(members) + 2)
        count = math.ceil(len(members) / batch_size)
        batches += [order[j * batch_size : (j + 1) * batch_size] for j in range(count)]
    if len(buckets) > 1:
        batches = [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def fit_box(image_size: Size, size: Size) -> Box:
    """The largest box of `size`'s aspect in the middle of an image of `image_size`."""
    width, height = image_size
    if width * size[1] > height * size[0]:  # wider than the target: cut the sides
        crop_w = round(height * size[0] / size[1])
        left = (width - crop_w) // 2
        return left, 0, left + crop_w, height
    crop_h = round(width * size[1] / size[0])
    top = (height - crop_h) // 2
    return 0, top, width, top + crop_h


def load_image(path: Path, size: Size) -> tuple[torch.Tensor, tuple[Size, Box] | None]:
    """An RGB image as a (3, H, W) tensor in [-1, 1] at `size` (width, height); and, when the
    file has another size, (its size, the middle box `fit_box` cut from it and resized)."""
    with Image.open(path) as img:
        rgb = ImageOps.exif_transpose(img).convert("RGB")
    cut = None
    if rgb.size != size:
        cut = (rgb.size, fit_box(rgb.size, size))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS, box=cut[1])
    array = np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous(), cut


def load_mask(path: Path | None, size: Size) -> torch.Tensor:
    """A product mask as (1, H, W) in [0, 1] at `size`, cut as `load_image` cuts its image; all
    ones (no masking) when there is none."""
    width, height = size
    if path is None:
        return torch.ones(1, height, width)
    with Image.open(path) as img:
        gray = img.convert("L")
    if gray.size != size:
        gray = gray.resize(size, Image.Resampling.BILINEAR, box=fit_box(gray.size, size))
    return torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)[None]


def mask_to_loss_weights(
    mask: torch.Tensor, latent_size: tuple[int, int], background_weight: float
) -> torch.Tensor:
    """(B, 1, H, W) masks → (B, 1, h, w) loss weights at the latents' (h, w): 1 on the product,
    `background_weight` off it.

    Area averaging keeps partial coverage at the product's edge (a latent pixel half on the
    product gets a weight halfway between).
    """
    small = F.interpolate(mask, size=latent_size, mode="area")
    return background_weight + (1.0 - background_weight) * small


def crop_geometry(
    size: Size, photo_size: Size | None, crop_box: Sequence[int] | None, flip: bool
) -> CropGeometry:
    """SDXL's conditioning of an image cut from `crop_box` of a `photo_size` photo and resized
    to `size`: the photo's size, the crop's top-left corner in the photo resized as the crop
    was (mirrored with the image when `flip`: diffusers' SDXL script measures it from the
    flipped photo's left), the bucket. Without a crop box: nothing was cut away."""
    width, height = size
    if photo_size is None or crop_box is None:
        return CropGeometry.uncropped(width, height)
    photo_w, photo_h = photo_size
    x0, y0, x1, y1 = crop_box
    if flip:
        x0, x1 = photo_w - x1, photo_w - x0
    top, left = max(0, y0) * height / (y1 - y0), max(0, x0) * width / (x1 - x0)
    return CropGeometry((photo_h, photo_w), (round(top), round(left)), (height, width))


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
    """Run the VAE (and the text encoders) once over every example, each at its own size (an
    example without one: `resolution`²); return what the loop needs."""
    if not examples:
        raise PhotoSetError("No training images to learn from.")
    n = len(examples)
    device = next(vae.parameters()).device
    sizes = [e.size or (resolution, resolution) for e in examples]

    # 1. Latents of every image and, with flips on, of its mirror image (the VAE is not
    #    equivariant to flips, so flipping latents would not be the same thing), encoded as
    #    the family trains on them, a bucket's images together.
    variants = [False, True] if random_flip else [False]
    latents: list[torch.Tensor | None] = [None] * (n * len(variants))
    weights: list[torch.Tensor | None] = [None] * (n * len(variants))
    crops: list[CropGeometry | None] = [None] * (n * len(variants))
    groups: dict[Size, list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(size, []).append(index)
    total, done = n * len(variants), 0
    for v, flip in enumerate(variants):
        for size, members in groups.items():
            width, height = size
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                pixels, masks = [], []
                for i in chunk:
                    example = examples[i]
                    image, cut = load_image(example.image, size)
                    pixels.append(image)
                    masks.append(
                        torch.ones(1, height, width)
                        if example.is_class_image
                        else load_mask(example.mask, size)
                    )
                    photo_size, crop_box = example.photo_size, example.crop_box
                    if cut is not None:  # the file itself was cut to fit its bucket
                        photo_size, crop_box = cut
                    crops[v * n + i] = crop_geometry(size, photo_size, crop_box, flip)
                batch, mask = torch.stack(pixels), torch.stack(masks)
                if flip:
                    batch, mask = batch.flip(-1), mask.flip(-1)
                batch = batch.to(device, dtype=next(vae.parameters()).dtype)
                latent = family.encode_images(vae, batch).float().cpu()  # SD: (b, 4, H/8, W/8)
                weight = mask_to_loss_weights(mask, tuple(latent.shape[-2:]), background_weight)
                for j, i in enumerate(chunk):
                    # class images are learned everywhere: weight 1 whatever background_weight is
                    if examples[i].is_class_image:
                        weight[j] = 1.0
                    latents[v * n + i], weights[v * n + i] = latent[j], weight[j]
                done += len(chunk)
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
        latents=[t for t in latents if t is not None],
        loss_weights=[t for t in weights if t is not None],
        crops=[c for c in crops if c is not None],
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
                size=(resolution, resolution),
                num_inference_steps=num_inference_steps,
                path=paths[i],
            )
            progress(ProgressEvent("class-images", done, len(missing), "generating class images"))
        del pipe
    return paths
