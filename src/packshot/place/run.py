"""Pixel-true mode: the real product, cut out of its photo, with a scene generated around it.

`place(PlaceRequest(photo, ["on a marble kitchen counter"]), out_dir)` cuts the product out
(`cutout`), places it on the canvas per composition (`compose`), has an inpainting model paint
everything but the product, adds a contact shadow, blends the edges and pastes the product
back, so that inside its mask (less a 2 px band) every pixel is the product's own. Each shot is
a PNG with its recipe (A1111 `parameters`) and a JSON sidecar, as in `shoot`; shots are then
scored against the product's photos and a shot the judges can't find the product in is flagged.

A job runner can call `place` again with the same request and folder after a crash: shots
already written are kept, only the missing ones are rendered.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from packshot import __version__
from packshot.artifacts.product_model import ProductModel
from packshot.artifacts.provenance import COMPOSITE
from packshot.artifacts.shots import (
    add_scores,
    sidecar_path,
    write_json,
    write_shot,
    written_shot,
)
from packshot.config import default_cache_dir
from packshot.errors import UsageError
from packshot.intake.config import IntakeConfig
from packshot.intake.decode import load_photo
from packshot.judge import JudgeConfig, score_shots, write_report
from packshot.models import speed
from packshot.models.describe import describe_model
from packshot.models.device import pick_device
from packshot.models.families import get_family
from packshot.models.load import load_pipeline, resolve_model
from packshot.models.sizes import MIN_SIDE
from packshot.place import compose
from packshot.place.cutout import cut_out
from packshot.place.records import (
    DEFAULT_FAMILY,
    PlacedShot,
    PlaceRequest,
    PlaceResult,
    default_inpaint_model,
)
from packshot.progress import ProgressCallback, ProgressEvent, no_progress
from packshot.shoot import render
from packshot.shoot.plan import PlannedShot, check_limits, draw_seed, plan_shots, presets_named
from packshot.shoot.prompts import ProductWords
from packshot.shoot.sheet import save_contact_sheet
from packshot.shoot.sizes import check_aspect, size_for

if TYPE_CHECKING:
    from packshot.models.describe import ModelDescription

REQUEST_FILE = "place-request.json"  # the request as first run: a re-run must match it
SUMMARY_FILE = "place.json"
CONTACT_SHEET_FILE = "contact-sheet.png"  # the same name shoot uses: the judge skips it
SCORES_FILE = "scores.json"
PRODUCT_DIR = "product"  # the cut-out and its mask
REFERENCE_DIR = "reference"  # what the shots are judged against without a product model
DEFAULT_PRODUCT_WORD = "product"
DEFAULT_GUIDANCE = 7.5  # the SD inpainting model cards' default
# With --keep-framing the product covers the photo's own share of the frame; above these the
# scene is a thin strip around it.
KEEP_FRAMING_WARN_SHARE, KEEP_FRAMING_MAX_SHARE = 0.5, 0.8
MIN_PHOTO_SIDE = 64  # px on the short side


def _check_numbers(request: PlaceRequest) -> None:
    check_limits(request)
    if not [d for d in request.descriptions if d.strip()]:
        raise UsageError(
            'Describe the scene, such as "on a marble kitchen counter, soft morning light".'
        )
    if request.keep_framing and request.aspect is not None:
        raise UsageError(
            "--keep-framing keeps the photo's own frame, so it can't change the aspect ratio: "
            "drop --aspect, or drop --keep-framing."
        )
    if request.keep_framing and request.composition is not None:
        raise UsageError("--keep-framing keeps the product where it is: drop the composition.")


def _same_request(recorded: dict[str, Any], request: PlaceRequest) -> bool:
    """The same placements: every field but the seed (when none is given) and the profiles
    (a delivery, made after placing, is made again whole)."""
    now = request.to_dict()
    return all(recorded.get(k) == v for k, v in now.items() if k not in ("seed", "profiles")) and (
        request.seed is None or recorded.get("seed") == request.seed
    )


def reference_for(request: PlaceRequest, out: Path, trained: ProductModel | None) -> Path:
    """The photos shots are judged against: given; else the product model's training crops;
    else the photo and its cut-out on white (written into `reference/`)."""
    if request.reference is not None:
        return Path(request.reference)
    if trained is not None and trained.training_set_dir.is_dir():
        return trained.training_set_dir
    return out / REFERENCE_DIR


def _scene_size(width: int, height: int, resolution: int, multiple: int) -> tuple[int, int]:
    """A size for the model at about its native area, with the photo's aspect."""

    scale = (resolution * resolution / (width * height)) ** 0.5
    return tuple(  # type: ignore[return-value]
        max(MIN_SIDE, int(round(side * scale / multiple)) * multiple) for side in (width, height)
    )


def place(
    request: PlaceRequest,
    out_dir: Path | str,
    *,
    progress: ProgressCallback = no_progress,
    cache_dir: Path | None = None,
) -> PlaceResult:
    """Render `request` into `out_dir`; run again after a crash to finish what's missing."""

    started = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out_dir)
    cache = cache_dir or default_cache_dir()
    warnings: list[str] = []

    def emit(done: int, total: int | None, message: str, **data: Any) -> None:
        progress(ProgressEvent("place", done, total, message, data))

    def warn(message: str) -> None:
        if message not in warnings:
            warnings.append(message)
            emit(0, None, message, event="warning")

    # 1. Check the numbers, and that a re-run asks for the same thing.
    _check_numbers(request)
    request_path = out / REQUEST_FILE
    if request_path.is_file():
        try:
            recorded = json.loads(request_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        if not isinstance(recorded, dict) or not _same_request(recorded, request):
            raise UsageError(
                f"{out} already holds placements made with other settings ({REQUEST_FILE}). "
                "Choose another output folder, or run the same request again to finish it."
            )
        request = PlaceRequest.from_dict(recorded)  # the recorded seed, when none is given
    elif (out / SUMMARY_FILE).exists():
        raise UsageError(f"{out} already holds other results. Choose another output folder.")
    if request.seed is None:
        request = PlaceRequest.from_dict({**request.to_dict(), "seed": draw_seed()})
    if request.aspect is not None:
        check_aspect(request.aspect)

    # 2. The product model (optional) and the inpainting model.
    trained: ProductModel | None = None
    lora_path: Path | None = None
    if request.product_model is not None:
        trained = ProductModel.load(request.product_model)
        lora_path = trained.lora_path
        product = ProductWords(trained.token, trained.class_word, trained.product)
    else:
        word = (request.product or DEFAULT_PRODUCT_WORD).strip() or DEFAULT_PRODUCT_WORD
        product = ProductWords(None, word, word)
    trained_family = trained.family if trained is not None else None
    base_family = get_family(trained_family or DEFAULT_FAMILY)
    model_ref = request.model or default_inpaint_model(trained)
    if model_ref is None:
        raise UsageError(
            f"packshot knows no inpainting model for {base_family.label} product models: pass "
            "one with `model`."
        )
    resolved = resolve_model(model_ref, cache_dir=cache)
    described = describe_model(resolved)
    resolution = described.resolution
    family = resolved.family.name
    if trained_family and lora_path and resolved.family.lora_family != base_family.name:
        raise UsageError(
            f"The product model {request.product_model} was trained on a {trained_family} model, "
            f"but the inpainting model {model_ref} is {family}: pass an inpainting model of the "
            f"same family (for {base_family.name}: {base_family.inpaint_model or '?'})."
        )

    # 3. The photo, and the product cut out of it.
    # Intake's safety limits, but not its 256 px minimum for training: a small product
    # photo still places (with a warning when the product must be enlarged).
    photo = load_photo(Path(request.photo), config=IntakeConfig(min_side=MIN_PHOTO_SIDE))
    emit(0, None, "cutting out the product", event="cutout")
    cutout = cut_out(photo, mask_path=request.mask, model=request.cutout_model, cache_dir=cache)
    for message in cutout.warnings:
        warn(message)
    pixels = np.asarray(photo.image.convert("RGB"))  # (H, W, 3)
    out.mkdir(parents=True, exist_ok=True)
    write_json(request_path, request.to_dict())
    product_dir = out / PRODUCT_DIR
    product_dir.mkdir(exist_ok=True)
    Image.fromarray(cutout.mask * 255, "L").save(product_dir / "mask.png")
    rgba = photo.image.convert("RGB")
    rgba.putalpha(Image.fromarray(cutout.mask * 255, "L"))
    rgba.save(product_dir / "cutout.png")
    box = compose.mask_box(cutout.mask)
    touches = box[0] == 0 or box[1] == 0 or box[0] + box[2] == photo.width
    touches = touches or box[1] + box[3] == photo.height
    if request.keep_framing:
        share = cutout.share
        if share > KEEP_FRAMING_MAX_SHARE:
            raise UsageError(
                f"The product fills {share:.0%} of the photo: with --keep-framing no scene fits "
                "around it. Drop --keep-framing, and packshot places it smaller on a new canvas."
            )
        if share > KEEP_FRAMING_WARN_SHARE:
            warn(
                f"The product fills {share:.0%} of the photo: with --keep-framing the scene is "
                "only a thin strip around it."
            )
    elif touches:
        warn(
            f"The product touches the edge of {photo.name}: it may be cut off, and its cut edge "
            "will show in the scene. Use a photo with space around the product."
        )

    # 4. Plan every shot: descriptions x presets x count. A scene names no product, so the
    # planner's notes on where it put the product's words are not passed on.
    presets = presets_named(request.presets)
    compositions: dict[str | None, compose.Composition] = {}
    for preset in presets:
        if request.composition is not None:
            composition = compose.get_composition(request.composition)
        elif request.keep_framing:
            composition = compose.Composition("keep-framing", "As photographed", (0, 0), 1, "")
        else:
            composition = compose.composition_for_preset(preset.name if preset else None)
        compositions[preset.name if preset else None] = composition
    planned, _ = plan_shots(
        [d for d in request.descriptions if d.strip()],
        presets,
        product,
        first_seed=request.seed,
        count=request.count,
        aspect=request.aspect,
        negative_prompt=request.negative_prompt,
        size=lambda aspect: (
            (photo.width, photo.height)
            if request.keep_framing
            else size_for(aspect, resolution, resolved.family.size_multiple)
        ),
        label=lambda preset: f"place-{preset.name if preset else compositions[None].name}",
        family=resolved.family,
    )

    # 5. Placements, one per canvas size and composition (shared by the shots that use it).
    placements: dict[tuple[str, str], compose.Placement] = {}
    for shot in planned:
        composition = compositions[shot.preset]
        key = (shot.aspect, composition.name)
        if key in placements:
            continue
        if request.keep_framing:
            placements[key] = compose.keep_framing(pixels, cutout.mask)
        else:
            canvas = size_for(shot.aspect, resolution, resolved.family.size_multiple)
            placement, notes = compose.place_product(pixels, cutout.mask, canvas, composition)
            placements[key] = placement
            for note in notes:
                warn(note)

    # 6. The reference photos for the judges.
    reference = reference_for(request, out, trained)
    if request.judge and reference == out / REFERENCE_DIR:
        reference.mkdir(exist_ok=True)
        photo.image.convert("RGB").save(reference / "photo.png")
        x, y, w, h = box
        white = np.where(cutout.mask[..., None] > 0, pixels, 255).astype(np.uint8)
        Image.fromarray(white[y : y + h, x : x + w]).save(reference / "on-white.png")

    # 7. Render what isn't there yet.
    timings["prepare_s"] = round(time.perf_counter() - started, 3)
    todo: list[PlannedShot] = []
    shots: list[PlacedShot] = []
    for shot in planned:
        png = out / f"{shot.stem}.png"
        kept = written_shot(png, shot)
        if kept is None:
            todo.append(shot)
        else:
            shots.append(_placed_shot(shot, png, compositions[shot.preset].name, kept, reused=True))
    total = len(planned)
    if shots:
        emit(len(shots), total, f"{len(shots)} shots already written", event="resume")
    if todo:
        shots += _render(
            request,
            out,
            todo,
            placements,
            compositions,
            model_ref=model_ref,
            model_path=resolved.path,
            family=family,
            resolution=resolution,
            trained=trained,
            product=product,
            cutout=cutout,
            cache_dir=cache,
            done_before=len(shots),
            total=total,
            emit=emit,
            warn=warn,
        )
    shots.sort(key=lambda s: s.path.name)
    timings["render_s"] = round(sum(s.device_seconds for s in shots if not s.reused), 3)

    # 8. Contact sheet, judges, summary.
    scores_path: Path | None = None
    flagged: list[str] = []
    if request.judge:
        scores_path, flagged = _judge(request, out, shots, reference, described, cache, progress)
        for name in flagged:
            warn(f"{name}: the judges can't find the product in it; check it before using it.")
    captions = []
    for shot in shots:
        score = shot.scores or {}
        flag = "  MISSING?" if score and not score.get("present") else ""
        captions.append((shot.path, f"{shot.composition} · seed {shot.seed}{flag}"))
    sheet = save_contact_sheet(out / CONTACT_SHEET_FILE, captions)
    timings["total_s"] = round(time.perf_counter() - started, 3)
    cutout_info = {
        "source": cutout.source,
        "model": cutout.model,
        "mask": f"{PRODUCT_DIR}/mask.png",
        "cutout": f"{PRODUCT_DIR}/cutout.png",
        "share": round(cutout.share, 4),
        "box": dict(zip(("x", "y", "width", "height"), box, strict=True)),
    }
    summary = {
        "kind": "packshot-place",
        "packshot_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "request": request.to_dict(),
        "photo": {"file": photo.name, "width": photo.width, "height": photo.height},
        "model": model_ref,
        "family": family,
        "stand_in": described.tiny_stand_in,
        "cutout": cutout_info,
        "guarantee_band_px": compose.GUARANTEE_BAND_PX,
        "images": [
            {
                "file": s.path.name,
                "sidecar": s.sidecar.name,
                "preset": s.preset,
                "composition": s.composition,
                "description": s.description,
                "seed": s.seed,
                "width": s.width,
                "height": s.height,
                "placement": s.placement,
                "scores": s.scores,
            }
            for s in shots
        ],
        "product_missing": flagged,
        "contact_sheet": sheet.name,
        "scores_file": scores_path.name if scores_path else None,
        "timings": timings,
        "warnings": warnings,
    }
    summary_path = write_json(out / SUMMARY_FILE, summary)
    emit(total, total, "done", event="done", path=str(out))
    return PlaceResult(
        out, shots, sheet, summary_path, cutout_info, scores_path, flagged, warnings, timings
    )


def _placed_shot(
    shot: PlannedShot, png: Path, composition: str, sidecar: dict[str, Any], *, reused: bool
) -> PlacedShot:
    """The record of a placed shot, from its plan and its sidecar's fields."""
    return PlacedShot(
        path=png,
        sidecar=sidecar_path(png),
        preset=shot.preset,
        composition=composition,
        description=shot.description,
        prompt=shot.prompt,
        seed=shot.seed,
        width=int(sidecar["width"]),
        height=int(sidecar["height"]),
        placement=dict(sidecar["placement"]),
        device_seconds=float(sidecar.get("timings", {}).get("device_s", 0.0)),
        reused=reused,
    )


def _render(
    request: PlaceRequest,
    out: Path,
    todo: list[PlannedShot],
    placements: dict[tuple[str, str], Any],
    compositions: dict[str | None, Any],
    *,
    model_ref: str,
    model_path: Path,
    family: str,
    resolution: int,
    trained: ProductModel | None,
    product: ProductWords,
    cutout: Any,
    cache_dir: Path,
    done_before: int,
    total: int,
    emit: Any,
    warn: Any,
) -> list[PlacedShot]:
    """Generate the scenes of `todo`, composite the product, write PNGs and sidecars."""

    # 1. The pipeline, its scheduler and the product's LoRA.
    emit(done_before, total, f"loading {model_ref}", event="loading")
    device = pick_device(request.device)
    pipe = load_pipeline(
        model_ref,
        kind="inpaint",
        device=device,
        dtype=request.precision,
        cache_dir=cache_dir,
        speedups=speed.Speedups(compile=request.compile, fp8=request.fp8),
    )
    for message in speed.speed_notes(pipe):
        warn(message)
    model_family = get_family(family)
    scheduler = render.get_scheduler(request.scheduler or model_family.default_scheduler)
    defaults = model_family.sampling_defaults(model_path) or (
        render.DEFAULT_STEPS,
        DEFAULT_GUIDANCE,
    )
    steps = request.num_inference_steps or defaults[0]
    guidance = defaults[1] if request.guidance_scale is None else request.guidance_scale
    loras = [render.product_lora(trained, request.lora_scale)] if trained is not None else []
    for message in render.prompt_warnings(pipe, model_family, todo):
        warn(message)

    # 2. One scene per shot: paint all but the product's core, shade, blend, paste back.
    written: list[PlacedShot] = []
    with render.configured(
        pipe, scheduler, loras, model=model_ref, num_inference_steps=steps, guidance_scale=guidance
    ) as settings:
        for shot in todo:
            composition = compositions[shot.preset]
            placement = placements[(shot.aspect, composition.name)]
            width, height = placement.canvas
            scene_w, scene_h = (
                _scene_size(width, height, resolution, model_family.size_multiple)
                if request.keep_framing
                else (width, height)
            )
            init = np.where(placement.mask[..., None] > 0, placement.rgb, 127).astype(np.uint8)
            paint = compose.generation_mask(placement)
            init_image = Image.fromarray(init).resize((scene_w, scene_h), Image.Resampling.LANCZOS)
            mask_image = Image.fromarray(paint, "L").resize(
                (scene_w, scene_h), Image.Resampling.NEAREST
            )
            images, seconds = render.timed_call(
                pipe,
                prompt=shot.prompt,
                **({"negative_prompt": shot.negative_prompt} if shot.negative_prompt else {}),
                image=init_image,
                **(
                    {"strength": model_family.inpaint_strength}
                    if model_family.inpaint_strength is not None
                    else {}
                ),
                mask_image=mask_image,
                width=scene_w,
                height=scene_h,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator("cpu").manual_seed(shot.seed),
            )
            scene = images[0].convert("RGB")
            if scene.size != (width, height):
                scene = scene.resize((width, height), Image.Resampling.LANCZOS)
            shadow = "contact" if request.keep_framing else composition.shadow
            shaded = compose.add_shadow(np.asarray(scene), placement, shadow)
            final = Image.fromarray(compose.composite(shaded, placement))

            png = out / f"{shot.stem}.png"
            write_shot(
                final,
                png,
                settings.recipe(shot),
                {
                    "mode": "place",
                    "scheduler": scheduler.name,
                    "product": product.to_dict(),
                    "preset": shot.preset,
                    "composition": composition.name,
                    "description": shot.description,
                    "photo": str(request.photo),
                    "inpaint_model": model_ref,
                    "family": family,
                    "product_model": request.product_model,
                    "keep_framing": request.keep_framing,
                    "placement": placement.to_dict(),
                    "scene_size": [scene_w, scene_h],
                    "cutout": {"source": cutout.source, "model": cutout.model},
                    "guarantee_band_px": compose.GUARANTEE_BAND_PX,
                    "device": device,
                    "speed": speed.applied(pipe),
                    "timings": {"device_s": round(seconds, 3)},
                },
                source_type=COMPOSITE,
            )
            done = {"width": width, "height": height, "placement": placement.to_dict()}
            done["timings"] = {"device_s": seconds}
            written.append(_placed_shot(shot, png, composition.name, done, reused=False))
            emit(
                done_before + len(written), total, f"shot {shot.stem}", event="shot", path=str(png)
            )
    return written


def _judge(
    request: PlaceRequest,
    out: Path,
    shots: list[PlacedShot],
    reference: Path,
    described: ModelDescription,
    cache: Path,
    progress: ProgressCallback,
) -> tuple[Path, list[str]]:
    """Score every shot against `reference`, record the scores, return the flagged shots."""

    config = JudgeConfig.for_models(
        request.dino_model, request.clip_model, stand_in=described.tiny_stand_in
    )
    report = score_shots(out, reference, config=config, progress=progress, cache_dir=cache)
    by_file = {s.file: s for s in report.shots}
    flagged = []
    for shot in shots:
        score = by_file.get(shot.path.name)
        if score is None:
            continue
        shot.scores = score.verdict()
        if not score.present:
            flagged.append(shot.path.name)
        add_scores(shot.path, shot.scores)
    path = report.save(out / SCORES_FILE)
    write_report(report)
    return path, flagged
