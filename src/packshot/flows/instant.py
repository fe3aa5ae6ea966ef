"""Instant shots: no training. The merchant's best photos of the product go to a model that
takes reference images (FLUX.2 [klein]) as it draws, and every shot is judged against all of
the photos, so a missing or drifting product is flagged like in any shoot.

It drives intake (the photo set's check and the pick of 1-4 references), the shoot (with
`ShootRequest.references`) and the judges (`flows.judged`). A catalogue shoot's products
without a model take the same route (`flows.catalogue`): `reference_model` and
`choose_references` are its two steps before the shoot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from packshot.artifacts.product_model import ProductModel
from packshot.errors import UsageError
from packshot.flows.judged import JudgedShoot, shoot_and_judge
from packshot.intake import PhotoSetReport, check_photos
from packshot.intake.references import MAX_REFERENCES, Reference, pick_references
from packshot.judge import JudgeConfig
from packshot.models.families import INSTANT_MODEL, ModelFamily
from packshot.models.load import ResolvedModel, resolve_model
from packshot.progress import ProgressCallback, ProgressEvent, no_progress
from packshot.shoot.request import ShootRequest, check_takes_references

DEFAULT_PRODUCT = "product"  # what {product} says when the merchant names it not


@dataclass
class InstantShoot:
    """What an instant shoot delivered, and the photos it used as references."""

    judged: JudgedShoot
    references: list[Reference]


def instant(
    photos_dir: Path | str,
    request: ShootRequest,
    out_dir: Path | str,
    *,
    judge: JudgeConfig,
    best: int | None = None,
    progress: ProgressCallback = no_progress,
    cache_dir: Path | None = None,
    resume: bool = False,
) -> InstantShoot:
    """Shoot `request` with the best of the photos in `photos_dir` as references, and judge
    every shot against all of them.

    The model is `request.base` (default `INSTANT_MODEL`); with a trained product model
    (`request.model_dir`, no `base`) its LoRA and the references work together.
    """
    photos = Path(photos_dir)
    if not photos.is_dir():
        raise UsageError(f"No photo folder at {photos}.")
    with_lora = request.model_dir is not None and request.base is None
    if with_lora:
        model_ref = ProductModel.load(request.model_dir).base_model  # type: ignore[arg-type]
    else:
        model_ref = request.base or INSTANT_MODEL
    family = reference_model(model_ref, cache_dir).family

    # 1. Intake's judgement of the photos, and the ones that show the product best.
    report = check_photos(photos, progress=progress)
    references = choose_references(report, photos, family, progress)

    # 2. The shoot with them, judged against every photo.
    shoot_request = replace(
        request,
        base=None if with_lora else model_ref,
        product=request.product or (None if with_lora else DEFAULT_PRODUCT),
        references=[str(photos / r.file) for r in references],
    )
    judged = shoot_and_judge(
        shoot_request,
        out_dir,
        judge=judge,
        reference_dir=photos,
        best=best,
        progress=progress,
        cache_dir=cache_dir,
        resume=resume,
    )
    return InstantShoot(judged, references)


def reference_model(model_ref: str, cache_dir: Path | None = None) -> ResolvedModel:
    """The model instant shots are drawn with, found; refused (UsageError, before any work)
    when its family takes no reference images."""
    resolved = resolve_model(model_ref, cache_dir=cache_dir)
    check_takes_references(resolved.family, model_ref)
    return resolved


def choose_references(
    report: PhotoSetReport, photos: Path, family: ModelFamily, progress: ProgressCallback
) -> list[Reference]:
    """The photos of intake's `report` (their files in `photos`) that show the product best,
    as many as `family` takes (at most `MAX_REFERENCES`), announced as a `references` event."""
    references = pick_references(report, min(MAX_REFERENCES, family.reference_images), photos)
    files = [r.file for r in references]
    progress(
        ProgressEvent(
            "instant",
            0,
            len(references),
            "references: " + ", ".join(files),
            {"event": "references", "files": files},
        )
    )
    return references
