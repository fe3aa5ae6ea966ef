"""Resizing a shot to a marketplace's size: high-quality Lanczos on any machine, or a diffusion
upscaler (diffusers' Stable Diffusion x4 upscaler) on a GPU worker.

Why the x4 upscaler and not a GAN (Real-ESRGAN through spandrel): spandrel needs torchvision,
which does not import beside the CPU torch packshot installs, and the x4 upscaler is a diffusers
pipeline packshot already loads the same way as its other models (`from_pretrained` of a Hub id
or a folder). A diffusion upscaler redraws detail, and can redraw a label's text: so its output
is compared with the Lanczos enlargement of the same shot (DINO similarity, the judge's
backbone) and kept only when it stays faithful; otherwise the Lanczos image is delivered and the
report says why. Pixel-true shots are never redrawn: they always take Lanczos.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from packshot.config import default_cache_dir
from packshot.errors import UsageError
from packshot.judge.config import JudgeConfig

LANCZOS = "lanczos"
X4 = 4  # the x4 upscaler's factor
FAITHFUL_DINO = 0.85  # the upscaled shot's DINO similarity to its Lanczos twin to be kept


@dataclass(frozen=True)
class Resized:
    """A shot at its delivery size, and how it got there."""

    image: Image.Image
    method: str  # "lanczos", or the upscaler's model reference
    note: str | None = None  # why the upscaler's image was not kept, when it wasn't


def lanczos(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` at `size` with Lanczos (reduced in steps on the way down, as Pillow advises)."""
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


# An upscaler: (image, factor hint) -> an image about `X4` times larger.
Upscaler = Callable[[Image.Image], Image.Image]
# A judge of fidelity: (candidate, reference) -> similarity in [-1, 1].
Similarity = Callable[[Image.Image, Image.Image], float]


def resize(
    image: Image.Image,
    size: tuple[int, int],
    *,
    upscaler: Upscaler | None = None,
    upscaler_name: str = LANCZOS,
    similarity: Similarity | None = None,
) -> Resized:
    """`image` at `size`. Enlarging with an `upscaler`: its x4 output brought to `size` with
    Lanczos, kept when `similarity` to the Lanczos enlargement is at least FAITHFUL_DINO."""
    plain = lanczos(image, size)
    if upscaler is None or size[0] <= image.width:
        return Resized(plain, LANCZOS)
    # The x4 pipeline enlarges 4 times: feed it the image at a quarter of the target.
    small = lanczos(image, (max(1, round(size[0] / X4)), max(1, round(size[1] / X4))))
    upscaled = lanczos(upscaler(small), size)
    if similarity is not None:
        score = similarity(upscaled, plain)
        if score < FAITHFUL_DINO:
            return Resized(
                plain,
                LANCZOS,
                f"the {upscaler_name} upscaler changed the product (DINO {score:.2f} against "
                f"the Lanczos enlargement, below {FAITHFUL_DINO}): Lanczos was delivered",
            )
    return Resized(upscaled, upscaler_name)


def diffusion_upscaler(
    model: str, *, device: str | None = None, cache_dir: Path | None = None
) -> Upscaler:
    """An `Upscaler` running diffusers' StableDiffusionUpscalePipeline from `model`: a Hub id
    (stabilityai/stable-diffusion-x4-upscaler), a folder, or the tiny stand-in `tiny-upscaler`."""
    # The model stack, only for a delivery that asks for this upscaler.
    import torch
    from diffusers import StableDiffusionUpscalePipeline

    from packshot.models.device import pick_device
    from packshot.models.standins import TINY_UPSCALER, stand_in_folder

    cache = cache_dir or default_cache_dir()
    folder: str | Path = stand_in_folder(model, cache) if model == TINY_UPSCALER else model
    chosen = pick_device(device)
    try:
        pipe = StableDiffusionUpscalePipeline.from_pretrained(folder).to(chosen)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"Can't load the upscaler {model} ({error}). Pass --upscaler lanczos, a folder "
            "holding diffusers' x4 upscaler, or its Hub id "
            "stabilityai/stable-diffusion-x4-upscaler."
        ) from error
    pipe.set_progress_bar_config(disable=True)
    steps = 2 if model == TINY_UPSCALER else 20

    def run(image: Image.Image) -> Image.Image:
        result = pipe(
            prompt="",
            image=image.convert("RGB"),
            num_inference_steps=steps,
            guidance_scale=0.0,  # no prompt to follow: keep to the image
            noise_level=20,  # the pipeline's default; little noise keeps the product as it is
            generator=torch.Generator("cpu").manual_seed(0),
        )
        return result.images[0]

    return run


def dino_similarity(
    model: str, *, device: str | None = None, cache_dir: Path | None = None
) -> Similarity:
    """The judge's DINO cosine similarity of two images (the tiny stand-in judge for the tiny
    upscaler, DINO ViT-S/16 otherwise)."""
    import torch

    from packshot.judge.models import Embedders
    from packshot.models.standins import TINY_UPSCALER

    config = JudgeConfig.for_models(None, None, stand_in=model == TINY_UPSCALER, device=device)
    embedders = Embedders(config, cache_dir=cache_dir)

    calls = itertools.count()  # the embedders cache by key: each pair gets keys of its own

    def similarity(candidate: Image.Image, reference: Image.Image) -> float:
        n = next(calls)
        rows = embedders.dino(
            [((f"upscaled-{n}", 0, 0), candidate), ((f"plain-{n}", 0, 0), reference)]
        )
        return float(torch.nn.functional.cosine_similarity(rows[0:1], rows[1:2]).item())

    return similarity
