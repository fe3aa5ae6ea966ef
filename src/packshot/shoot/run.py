"""A shoot: descriptions x shot presets x count, rendered with a product's model and written out.

`plan_shoot` checks everything and decides every shot's prompt, size and seed without loading
a model; `shoot` then loads the base pipeline once, renders the plan in batches and writes each
PNG (recipe in its `parameters` chunk), its JSON sidecar, the contact sheet and `shoot.json`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from packshot import __version__
from packshot.artifacts.product_model import ProductModel
from packshot.artifacts.provenance import GENERATED
from packshot.artifacts.shots import (
    sidecar_path,
    write_shot,
    written_shot,
)
from packshot.errors import UsageError
from packshot.intake.decode import load_photo
from packshot.models import speed
from packshot.models.describe import describe_model
from packshot.models.device import pick_device
from packshot.models.families import ModelFamily, get_family
from packshot.models.load import load_pipeline, resolve_model
from packshot.progress import ProgressCallback, ProgressEvent, no_progress
from packshot.shoot import render
from packshot.shoot.plan import (
    PlannedShot,
    check_limits,
    draw_seed,
    plan_shots,
    presets_named,
)
from packshot.shoot.prompts import ProductWords, read_prompts_file
from packshot.shoot.request import ShootRequest, check_takes_references
from packshot.shoot.sheet import cost_summary, save_contact_sheet, write_summary
from packshot.shoot.sizes import check_aspect, check_size, parse_size, size_for

SUMMARY_FILE = "shoot.json"
CONTACT_SHEET_FILE = "contact-sheet.png"


@dataclass
class ShootPlan:
    """Everything `shoot` will do, decided before any model is loaded."""

    request: ShootRequest
    base_model: str
    lora_path: Path | None  # the product's LoRA; None when shooting a base model alone
    product: ProductWords
    product_model: ProductModel | None  # None when shooting a base model alone
    resolution: int  # the base model's native side length
    family: str
    stand_in: bool  # a tiny stand-in model (noise images by design)
    shots: list[PlannedShot]
    warnings: list[str]
    # (steps, guidance) when the request names none: the model's own (FLUX.2 [klein]: 50 and
    # 4 for the base model, 4 and 1 for the distilled one; --fast: the distilled one's), else
    # packshot's
    sampling: tuple[int, float] = (render.DEFAULT_STEPS, render.DEFAULT_GUIDANCE)


@dataclass(frozen=True)
class Shot:
    """One image written by a shoot."""

    path: Path
    sidecar: Path
    preset: str | None
    description: str
    prompt: str
    negative_prompt: str
    seed: int
    width: int
    height: int
    device_seconds: float


@dataclass
class ShootResult:
    """What a shoot wrote, and what it cost."""

    out_dir: Path
    shots: list[Shot]
    contact_sheet: Path
    summary_path: Path
    warnings: list[str]
    timings: dict[str, float]
    cost: dict[str, Any]


# -- planning ----------------------------------------------------------------------------------


def plan_shoot(request: ShootRequest, *, cache_dir: Path | None = None) -> ShootPlan:
    """Check `request` and decide every shot, without loading a model (only resolving it)."""

    warnings: list[str] = []

    # 1. The numbers.
    check_limits(request)

    # 2. The model: a trained product model, a base model alone, or both (base for comparison).
    model = ProductModel.load(request.model_dir) if request.model_dir is not None else None
    if request.base is not None:
        base_model = request.base
    elif model is not None:
        base_model = model.base_model
    else:
        raise UsageError("Pass a model folder written by `packshot train`, or a base model.")
    lora_path = model.lora_path if model is not None and request.base is None else None
    resolved = resolve_model(base_model, cache_dir=cache_dir)
    family = resolved.family
    if request.fast and family.fast_model and not family.is_step_distilled(resolved.path):
        # --fast on a family with a step-distilled sibling: shoot with it, LoRA and all.
        if resolved.stand_in:
            warnings.append(
                f"The tiny stand-in has no distilled variant: --fast runs the {family.label} "
                f"few-step recipe on {base_model} itself."
            )
        else:
            base_model = family.fast_model
            resolved = resolve_model(base_model, cache_dir=cache_dir)
    described = describe_model(resolved)
    check_references(request.references, resolved.family, base_model)
    if model and model.family and model.family != resolved.family.name and lora_path:
        raise UsageError(
            f"The model in {request.model_dir} was trained on a {model.family} model, but its "
            f"base {base_model} is now {resolved.family.name}."
        )

    # 3. How prompts name the product.
    if model:
        product = ProductWords(model.token, model.class_word, model.product)
        if request.base is not None:
            # The base model alone knows no token: its prompt names the product by class.
            product = ProductWords(None, model.class_word, model.product)
    elif request.product:
        product = ProductWords(None, request.product.strip(), request.product.strip())
    else:
        raise UsageError(
            "Shooting a base model alone without a model folder needs `product`: the words "
            "{product} stands for, such as 'teapot'."
        )

    # 4. The descriptions and presets.
    descriptions = list(request.descriptions)
    if request.prompts_file is not None:
        descriptions += read_prompts_file(Path(request.prompts_file))
    if not descriptions:
        raise UsageError(
            'Describe at least one shot, such as "{product} on a marble kitchen counter", or '
            "pass a prompts file."
        )
    presets = presets_named(request.presets, request.presets_file)

    # 5. Sizes: an explicit size, else the aspect at the model's native resolution.
    resolution = described.resolution
    fixed_size: tuple[int, int] | None = None
    if request.size is not None:
        size = request.size
        fixed_size = parse_size(size) if isinstance(size, str) else (int(size[0]), int(size[1]))
        warnings += check_size(*fixed_size, resolution, resolved.family.size_multiple)
    if request.aspect is not None:
        check_aspect(request.aspect)

    # 6. Every shot: description x preset x count, seeds first + 0..count-1.
    shots, composing = plan_shots(
        descriptions,
        presets,
        product,
        first_seed=request.seed if request.seed is not None else draw_seed(),
        count=request.count,
        aspect=request.aspect,
        negative_prompt=request.negative_prompt,
        size=lambda aspect: (
            fixed_size or size_for(aspect, resolution, resolved.family.size_multiple)
        ),
        family=resolved.family,
    )
    warnings += [w for w in composing if w not in warnings]
    return ShootPlan(
        request=request,
        base_model=base_model,
        lora_path=lora_path,
        product=product,
        product_model=model,
        resolution=resolution,
        family=resolved.family.name,
        stand_in=resolved.stand_in,
        shots=shots,
        warnings=warnings,
        sampling=(
            resolved.family.distilled_sampling
            if request.fast and resolved.family.fast_model
            else resolved.family.sampling_defaults(resolved.path)
        )
        or (render.DEFAULT_STEPS, render.DEFAULT_GUIDANCE),
    )


def check_references(references: list[str], family: ModelFamily, model: str) -> None:
    """Refuse reference photos a family can't take, too many, or files that aren't there."""
    if not references:
        return
    check_takes_references(family, model)
    if len(references) > family.reference_images:
        raise UsageError(
            f"{family.label} takes at most {family.reference_images} reference images, "
            f"not {len(references)}."
        )
    missing = [r for r in references if not Path(r).is_file()]
    if missing:
        raise UsageError(f"No reference photo at {', '.join(missing)}.")


def load_references(references: list[str], resolution: int) -> list[Image.Image]:
    """The reference photos, decoded by intake's safe path and scaled to about the shot's area
    (`resolution`²): each adds its pixels' worth of tokens to every step."""
    images = []
    for path in references:
        image = load_photo(Path(path)).image
        scale = min(1.0, resolution / math.sqrt(image.width * image.height))
        size = (max(16, round(image.width * scale)), max(16, round(image.height * scale)))
        images.append(image.resize(size, Image.Resampling.LANCZOS))
    return images


# -- shooting ----------------------------------------------------------------------------------


def _batches(shots: list[PlannedShot], size: int) -> list[list[PlannedShot]]:
    """Consecutive shots that share prompt and size, at most `size` at a time."""
    batches: list[list[PlannedShot]] = []
    for shot in shots:
        last = batches[-1] if batches else None
        if (
            last is not None
            and len(last) < size
            and (last[0].prompt, last[0].negative_prompt, last[0].width, last[0].height)
            == (shot.prompt, shot.negative_prompt, shot.width, shot.height)
        ):
            last.append(shot)
        else:
            batches.append([shot])
    return batches


def shoot(
    request: ShootRequest,
    out_dir: Path | str,
    *,
    progress: ProgressCallback = no_progress,
    cache_dir: Path | None = None,
    resume: bool = False,
) -> ShootResult:
    """Render `request` into `out_dir`: PNGs with their recipes, sidecars, contact sheet, summary.

    The base pipeline is loaded once (and cached for the next shoot); the product's LoRA and the
    scheduler are set on it for this shoot only. Warnings (a product added to a description, a
    prompt cut at the token limit) go to `progress` as they happen and into the result.
    `resume` continues an interrupted shoot of the same request in `out_dir`: shots whose PNG
    and sidecar are both there are kept as they are, not rendered again.
    """

    started = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out_dir)

    # 1. Check and plan everything before loading anything.
    if (out / SUMMARY_FILE).exists() and not resume:
        raise UsageError(
            f"{out} already holds a shoot ({SUMMARY_FILE}). Choose another output folder."
        )
    plan = plan_shoot(request, cache_dir=cache_dir)
    warnings = list(plan.warnings)
    total = len(plan.shots)

    def emit(done: int, message: str, **data: Any) -> None:
        progress(ProgressEvent("shoot", done, total, message, data))

    def warn(message: str) -> None:
        if message not in warnings:
            warnings.append(message)
        emit(0, message, event="warning")

    for message in warnings:
        emit(0, message, event="warning")

    # 2. Settings: the fast mode's, else the request's, else packshot's defaults.
    fast_lora: Path | None = None
    family = get_family(plan.family)
    scheduler = render.get_scheduler(request.scheduler or family.default_scheduler)
    steps = request.num_inference_steps or plan.sampling[0]
    guidance = request.guidance_scale
    # --fast: a distilled sibling's recipe is in plan.sampling; else a turbo model or an LCM-LoRA
    if request.fast and family.fast_model is None:
        steps = request.num_inference_steps or render.FAST_STEPS
        if request.fast_lora is None and render.is_turbo(plan.base_model):
            scheduler = render.get_scheduler(request.scheduler or "model")
            guidance = render.TURBO_GUIDANCE if guidance is None else guidance
        else:
            fast_lora = render.find_fast_lora(request.fast_lora, family, plan.stand_in)
            scheduler = render.get_scheduler(request.scheduler or "lcm")
            guidance = render.LCM_GUIDANCE if guidance is None else guidance
    guidance = plan.sampling[1] if guidance is None else guidance
    loras: list[render.LoraWeights] = []
    if plan.product_model is not None and plan.lora_path is not None:
        loras.append(render.product_lora(plan.product_model, request.lora_scale))
    if fast_lora is not None:
        loras.append(render.LoraWeights(render.FAST_ADAPTER, fast_lora, 1.0, fast_lora.stem))

    references = load_references(request.references, plan.resolution)

    # 3. Load the base pipeline once.
    emit(0, f"loading {plan.base_model}", event="loading")
    device = pick_device(request.device)
    pipe = load_pipeline(
        plan.base_model,
        device=device,
        dtype=request.precision,
        cache_dir=cache_dir,
        speedups=speed.Speedups(compile=request.compile, fp8=request.fp8),
    )
    timings["load_s"] = round(time.perf_counter() - started, 3)
    for message in speed.speed_notes(pipe):
        warn(message)

    # 4. Warn about prompts longer than the text encoder reads.
    for message in render.prompt_warnings(pipe, family, plan.shots):
        warn(message)

    # 5. Render batch by batch, writing each shot as soon as it exists.
    out.mkdir(parents=True, exist_ok=True)
    batch_size = request.batch_size or render.auto_batch_size(
        device, plan.shots[0].width, plan.shots[0].height, family
    )
    written: list[Shot] = []
    render_s = write_s = 0.0
    todo = list(plan.shots)
    if resume:
        todo = []
        for planned in plan.shots:
            png = out / f"{planned.stem}.png"
            kept = written_shot(png, planned)
            if kept is None:
                todo.append(planned)
                continue
            written.append(_shot(planned, png, float(kept.get("timings", {}).get("device_s", 0.0))))
            emit(len(written), f"shot {planned.stem} (kept)", event="shot", path=str(png))
    with render.configured(
        pipe,
        scheduler,
        loras,
        model=plan.base_model,
        num_inference_steps=steps,
        guidance_scale=guidance,
    ) as settings:
        for batch in _batches(todo, batch_size):
            first = batch[0]
            images, seconds = render.render_batch(
                pipe,
                prompt=first.prompt,
                negative_prompt=first.negative_prompt,
                seeds=[s.seed for s in batch],
                width=first.width,
                height=first.height,
                num_inference_steps=steps,
                guidance_scale=guidance,
                references=references,
            )
            render_s += seconds
            write_started = time.perf_counter()
            for planned, image in zip(batch, images, strict=True):
                png = out / f"{planned.stem}.png"
                per_image = seconds / len(batch)
                write_shot(
                    image,
                    png,
                    settings.recipe(planned),
                    {
                        "scheduler": scheduler.name,
                        "product": plan.product.to_dict(),
                        "preset": planned.preset,
                        "description": planned.description,
                        "base_model": plan.base_model,
                        "family": plan.family,
                        "references": [Path(r).name for r in request.references],
                        "model_dir": str(request.model_dir) if request.model_dir else None,
                        "fast": request.fast,
                        "device": device,
                        "speed": speed.applied(pipe),
                        "timings": {"device_s": round(per_image, 3), "batch_size": len(batch)},
                    },
                    source_type=GENERATED,
                )
                written.append(_shot(planned, png, per_image))
                emit(len(written), f"shot {planned.stem}", event="shot", path=str(png))
            write_s += time.perf_counter() - write_started
    timings["render_s"] = round(render_s, 3)
    timings["write_s"] = round(write_s, 3)

    written.sort(key=lambda shot_: shot_.path.name)

    # 6. The contact sheet and shoot.json.
    sheet_path = save_contact_sheet(
        out / CONTACT_SHEET_FILE,
        [(s.path, f"{s.preset or 'shot'} · seed {s.seed}") for s in written],
    )
    cost = cost_summary(
        [s.device_seconds for s in written],
        request.gpu_price_per_hour,
        request.studio_price_per_photo,
    )
    timings["total_s"] = round(time.perf_counter() - started, 3)
    summary = {
        "kind": "packshot-shoot",
        "packshot_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_dir": str(request.model_dir) if request.model_dir else None,
        "base_model": plan.base_model,
        "family": plan.family,
        "stand_in": plan.stand_in,
        "product": plan.product.to_dict(),
        "settings": {
            "num_inference_steps": steps,
            "guidance_scale": guidance,
            "scheduler": scheduler.name,
            "sampler": settings.sampler,
            "lora_scale": request.lora_scale if plan.lora_path is not None else None,
            "fast": request.fast,
            "fast_lora": str(fast_lora) if fast_lora else None,
            "references": list(request.references),
            "batch_size": batch_size,
            "device": device,
            "dtype": str(pipe.dtype).removeprefix("torch."),
            "speed": speed.applied(pipe),
        },
        "images": [
            {
                "file": s.path.name,
                "sidecar": s.sidecar.name,
                "preset": s.preset,
                "description": s.description,
                "prompt": s.prompt,
                "seed": s.seed,
                "width": s.width,
                "height": s.height,
                "device_s": round(s.device_seconds, 3),
                "cost": round(s.device_seconds / 3600 * request.gpu_price_per_hour, 6),
            }
            for s in written
        ],
        "contact_sheet": sheet_path.name,
        "cost": cost,
        "timings": timings,
        "warnings": warnings,
    }
    summary_path = write_summary(out / SUMMARY_FILE, summary)
    emit(total, "done", event="done", path=str(out))
    return ShootResult(out, written, sheet_path, summary_path, warnings, timings, cost)


def _shot(planned: PlannedShot, png: Path, device_seconds: float) -> Shot:
    return Shot(
        path=png,
        sidecar=sidecar_path(png),
        preset=planned.preset,
        description=planned.description,
        prompt=planned.prompt,
        negative_prompt=planned.negative_prompt,
        seed=planned.seed,
        width=planned.width,
        height=planned.height,
        device_seconds=device_seconds,
    )
