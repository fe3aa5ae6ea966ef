"""Rendering: a pipeline with its scheduler and LoRAs set for a shoot (and the recipe its shots
share), the prompts its text encoder cuts, seeded batches and the timed pipeline call.

Every image has its own `torch.Generator` seeded with its own seed, on the CPU: its starting
noise is the same whatever the batch size or the device, and the call is exactly the one a
plain diffusers user would write (`pipe(prompt, generator=[...], ...)`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import DiffusionPipeline
from huggingface_hub import hf_hub_download
from PIL import Image

from packshot.artifacts.product_model import ProductModel
from packshot.artifacts.shots import RecipeSettings, lora_hash
from packshot.errors import ModelLoadError, UsageError
from packshot.models import speed
from packshot.models.families import ModelFamily
from packshot.models.hub import offline_requested
from packshot.shoot.plan import PlannedShot
from packshot.shoot.prompts import check_token_limit


@dataclass(frozen=True)
class SchedulerSpec:
    """A sampler by packshot's name, its AUTOMATIC1111 name and the diffusers class behind it."""

    name: str  # packshot's name: "dpmpp_2m_karras"
    a1111: str  # the name in A1111 metadata: "DPM++ 2M Karras"
    class_name: str | None  # None: keep the model's own scheduler
    options: dict[str, Any] = field(default_factory=dict)


# A1111 sampler -> diffusers scheduler, as in diffusers' docs ("Schedulers" overview table).
SCHEDULERS: dict[str, SchedulerSpec] = {
    spec.name: spec
    for spec in (
        SchedulerSpec(
            "dpmpp_2m_karras",
            "DPM++ 2M Karras",
            "DPMSolverMultistepScheduler",
            {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
        ),
        SchedulerSpec(
            "dpmpp_2m",
            "DPM++ 2M",
            "DPMSolverMultistepScheduler",
            {"algorithm_type": "dpmsolver++", "solver_order": 2},
        ),
        SchedulerSpec(
            "dpmpp_2m_sde_karras",
            "DPM++ 2M SDE Karras",
            "DPMSolverMultistepScheduler",
            {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
        ),
        SchedulerSpec("euler", "Euler", "EulerDiscreteScheduler"),
        SchedulerSpec("euler_a", "Euler a", "EulerAncestralDiscreteScheduler"),
        SchedulerSpec("ddim", "DDIM", "DDIMScheduler"),
        SchedulerSpec("unipc", "UniPC", "UniPCMultistepScheduler"),
        SchedulerSpec("lcm", "LCM", "LCMScheduler"),
        SchedulerSpec("model", "Model default", None),  # whatever the model folder ships
    )
}
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 7.0  # SD 1.5's and A1111's default CFG scale

# --fast: a few steps with an LCM-LoRA (Luo et al. 2023; its model card: 4-8 steps, guidance
# 1-2) or a turbo model (SD-Turbo model card: 1-4 steps, no guidance).
FAST_STEPS = 4
LCM_GUIDANCE = 1.0
TURBO_GUIDANCE = 0.0
LCM_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
PRODUCT_ADAPTER = "product"
FAST_ADAPTER = "lcm"


def get_scheduler(name: str) -> SchedulerSpec:
    """The scheduler called `name` (packshot's name or A1111's, any case); UsageError if unknown."""
    wanted = name.strip().lower()
    for spec in SCHEDULERS.values():
        if wanted in (spec.name, spec.a1111.lower()):
            return spec
    known = ", ".join(f"{s.name} ({s.a1111})" for s in SCHEDULERS.values())
    raise UsageError(f"Unknown scheduler `{name}`. Choose one of: {known}.")


def scheduler_label(spec: SchedulerSpec, pipe: DiffusionPipeline) -> str:
    """The A1111 sampler name to record; the class name for the model's own scheduler."""
    return spec.a1111 if spec.class_name else type(pipe.scheduler).__name__


@dataclass(frozen=True)
class LoraWeights:
    """A LoRA to load as a named adapter, at a scale, and the name recipes give it."""

    adapter_name: str
    path: Path  # a .safetensors file in diffusers/peft or kohya format
    scale: float
    name: str  # in the recipe's `Lora hashes`: the product model's folder, the file's stem


def product_lora(model: ProductModel, scale: float) -> LoraWeights:
    """The product's LoRA as the product adapter, named after its model folder."""
    return LoraWeights(PRODUCT_ADAPTER, model.lora_path, scale, model.model_dir.resolve().name)


def prompt_warnings(
    pipe: DiffusionPipeline, family: ModelFamily, shots: Sequence[PlannedShot]
) -> list[str]:
    """What the text encoder will cut from the shots' prompts and negative prompts, once each."""
    tokenizer = family.prompt_tokenizer(pipe)
    limit = family.prompt_token_limit(tokenizer)
    notes: list[str] = []
    for prompt in dict.fromkeys(s.prompt for s in shots):
        cut = check_token_limit(prompt, tokenizer, limit, what=f'prompt "{prompt[:40]}…"')
        if cut:
            notes.append(cut)
    for negative in dict.fromkeys(s.negative_prompt for s in shots if s.negative_prompt):
        cut = check_token_limit(negative, tokenizer, limit, what="negative prompt")
        if cut:
            notes.append(cut)
    return notes


def is_turbo(model_ref: str) -> bool:
    """Whether `model_ref` names a turbo (adversarially distilled) model: SD-Turbo, SDXL-Turbo."""
    return "turbo" in Path(model_ref.rstrip("/")).name.lower()


def find_fast_lora(ref: str | None, family: ModelFamily, stand_in: bool) -> Path:
    """The LCM-LoRA file for --fast: `ref` (a file, a folder or a Hub id), else the family's.

    Offline, a Hub id must already be in the Hugging Face cache; the error says how to get it.
    """

    # 1. A file or a folder given by the merchant.
    if ref is not None and Path(ref).expanduser().exists():
        path = Path(ref).expanduser()
        if path.is_file():
            return path
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise UsageError(f"The fast LoRA folder {path} holds no .safetensors file.")
        return path / LCM_WEIGHT_NAME if (path / LCM_WEIGHT_NAME).is_file() else files[0]

    # 2. The Hub id: given, or the LCM-LoRA of the family.
    if ref is None:
        if stand_in or family.fast_lora is None:
            raise UsageError(
                "--fast has no LCM-LoRA for this model (the tiny stand-ins and "
                f"{family.name} models have none). Pass an LCM-LoRA folder with --fast-lora, "
                "or shoot without --fast."
            )
        ref = family.fast_lora
    offline = offline_requested()
    try:
        return Path(hf_hub_download(ref, LCM_WEIGHT_NAME, local_files_only=offline))
    except Exception as error:  # offline, unreachable, not found: all end the same way
        where = "Hub downloads are switched off (HF_HUB_OFFLINE)" if offline else str(error)
        raise UsageError(
            f"--fast needs the LCM-LoRA `{ref}`, and it isn't available here: it's not in the "
            f"Hugging Face cache and {where}. On a machine with internet run "
            f"`hf download {ref}` (then copy the cache), pass a downloaded LCM-LoRA folder with "
            "--fast-lora, shoot with a turbo model (--base stabilityai/sd-turbo), or drop --fast."
        ) from None


@contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """Keep diffusers' and peft's loader notes ("No LoRA keys associated to …") quiet."""
    logging = diffusers.utils.logging
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            # peft's note on a second adapter (the LCM-LoRA beside the product's): intended.
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            yield
    finally:
        logging.set_verbosity(level)


@contextmanager
def configured(
    pipe: DiffusionPipeline,
    scheduler: SchedulerSpec,
    loras: list[LoraWeights],
    *,
    model: str,
    num_inference_steps: int,
    guidance_scale: float,
) -> Iterator[RecipeSettings]:
    """`pipe` with `scheduler` and `loras` set for the duration, put back as it was after; yields
    the recipe every shot it makes shares (`model`: the pipeline's reference, as given).

    The runtime caches pipelines between shoots, so nothing set here may outlive the shoot,
    except on a fast pipeline (`packshot.models.speed`), which keeps its LoRAs merged for the
    next shoot of the same product and swaps them when another product's come.
    """
    original_scheduler = pipe.scheduler
    try:
        # 1. The scheduler, built from the model's own config (its betas and timestep range).
        if scheduler.class_name is not None:
            cls = getattr(diffusers, scheduler.class_name)
            pipe.scheduler = cls.from_config(pipe.scheduler.config, **scheduler.options)

        # 2. The LoRAs, as named adapters at their scales; a fast pipeline merges them into its
        #    weights and keeps them there for the next shoot of the same product.
        hashes = [lora_hash(lora.path) for lora in loras]  # each LoRA file read once
        if speed.is_fast(pipe):
            key = tuple(
                (lora.adapter_name, digest, lora.scale)
                for lora, digest in zip(loras, hashes, strict=True)
            )
            speed.use_loras(pipe, key, lambda: _load_loras(pipe, loras))
        else:
            _load_loras(pipe, loras)
        product = [lora.scale for lora in loras if lora.adapter_name == PRODUCT_ADAPTER]
        yield RecipeSettings(
            num_inference_steps=num_inference_steps,
            sampler=scheduler_label(scheduler, pipe),
            guidance_scale=guidance_scale,
            model=model,
            lora_hashes={lora.name: digest for lora, digest in zip(loras, hashes, strict=True)},
            lora_scale=product[0] if product else None,
        )
    finally:
        # 3. Undo: the LoRA layers out (a fast pipeline keeps them merged), the model's
        #    scheduler back.
        if loras and not speed.is_fast(pipe):
            pipe.unload_lora_weights()
        pipe.scheduler = original_scheduler


def _load_loras(pipe: DiffusionPipeline, loras: list[LoraWeights]) -> None:
    """`loras` on `pipe` as named adapters at their scales."""
    for lora in loras:
        try:
            with _quiet_diffusers():
                pipe.load_lora_weights(
                    str(lora.path.parent),
                    weight_name=lora.path.name,
                    adapter_name=lora.adapter_name,
                )
        except Exception as error:
            raise ModelLoadError(
                f"The LoRA {lora.path} doesn't fit this base model ({type(error).__name__}: "
                f"{error}). Was it trained on another base model? Shoot with the base model "
                "its packshot.json names."
            ) from error
    if loras:
        pipe.set_adapters(
            [lora.adapter_name for lora in loras],
            adapter_weights=[lora.scale for lora in loras],
        )


def auto_batch_size(device: str, width: int, height: int, family: ModelFamily) -> int:
    """How many images to render in one call on `device`.

    On a CPU (or Apple MPS) batching gains nothing and costs memory: 1. On a CUDA GPU, as many
    as fit in about half the free memory, counting ~1 GiB per 512² SD 1.5 image (activations
    with classifier-free guidance, fp16) times the family's `memory_factor` (SDXL: 4); at most 8.
    """
    if not device.startswith("cuda"):
        return 1
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    per_image = (width * height) / (512 * 512) * family.memory_factor
    return max(1, min(8, int((free / 2**30) * 0.5 / per_image)))


def render_batch(
    pipe: DiffusionPipeline,
    *,
    prompt: str,
    negative_prompt: str,
    seeds: list[int],
    width: int,
    height: int,
    num_inference_steps: int,
    guidance_scale: float,
    references: Sequence[Image.Image] = (),
) -> tuple[list[Image.Image], float]:
    """Images for `prompt`, one per seed, and the device seconds the call took; `references`:
    photos of the product the pipeline sees as it draws (FLUX.2 [klein]'s `image`)."""
    return timed_call(
        pipe,
        prompt=prompt,
        **({"image": list(references)} if references else {}),
        # only when there is one: FLUX.2 [klein]'s pipelines take no `negative_prompt`
        **({"negative_prompt": negative_prompt} if negative_prompt else {}),
        num_images_per_prompt=len(seeds),
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
        width=width,
        height=height,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
    )


def timed_call(pipe: DiffusionPipeline, **inputs: Any) -> tuple[list[Image.Image], float]:
    """`pipe(**inputs)`'s images and the device seconds the call took (CUDA synchronised).

    A fast pipeline is called through `speed.call` (its attention kernel; eager again if
    compiling fails, with the same seeds).
    """
    device = str(pipe.device)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    generators = inputs.get("generator") or []
    if isinstance(generators, torch.Generator):
        generators = [generators]
    output = speed.call(pipe, lambda: pipe(**inputs), generators)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return list(output.images), time.perf_counter() - started
