"""A catalogue shoot: every product of a catalogue through intake, training (for those without
a model; or, instant, none: their best photos as reference images of a model that takes them)
and a judged shoot of each shot of the shot list; one product at a time, each product's failure
its own, resumable without redoing a finished product.

The output folder holds one folder per product (its handle):

    <out>/request.json                 what a resumed run must match
    <out>/<handle>/photos-report.json  intake's judgement of its photos
    <out>/<handle>/training-set/       its crops, while it is trained here (then in its model)
    <out>/<handle>/model/              its model, when it is trained here (.partial while training)
    <out>/<handle>/shots/<shot name>/  one judged shoot per shot of the list
    <out>/<handle>/outcome.json        written when the product is finished (done or failed)
    <out>/catalogue.json               the summary: outcomes, images, cost per image vs a studio
    <out>/contact-sheet.png            every image, captioned with its product and slot
    <out>/delivery/                    with marketplace profiles: `packshot deliver`'s folder

A product with an `outcome.json` (done, or failed: its reason) is finished and never touched
again (delete the file to try a failed product again, once its photos are fixed); a product cut
short continues where it was: its training from the last checkpoint, its shoots without
rendering the shots already written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from packshot.artifacts.catalogue import (
    OUTCOME_FILE,
    REQUEST_FILE,
    SUMMARY_FILE,
    CatalogueProduct,
    CatalogueShot,
    CatalogueSummary,
    ProductOutcome,
    Route,
    photo_files,
    read_record,
    write_record,
)
from packshot.artifacts.product_model import ProductModel, work_dir_for
from packshot.deliver import DeliveryShot, deliver_run, get_profiles
from packshot.errors import PackshotError, PhotoSetError, UsageError
from packshot.flows.instant import choose_references, reference_model
from packshot.flows.judged import shoot_and_judge
from packshot.intake import PhotoSetReport, check_files, prepare_training_set
from packshot.intake.references import Reference
from packshot.judge import JudgeConfig
from packshot.models.load import ResolvedModel
from packshot.progress import ProgressCallback, ProgressEvent, no_progress
from packshot.shoot.request import ShootRequest
from packshot.shoot.run import SUMMARY_FILE as SHOOT_SUMMARY
from packshot.shoot.run import shoot
from packshot.shoot.sheet import (
    GPU_PRICE_PER_HOUR,
    STUDIO_PRICE_PER_PHOTO,
    cost_summary,
    save_contact_sheet,
)
from packshot.shoot.shotlist import SLOTS, ShotList
from packshot.train import TrainConfig, train

REPORT_FILE = "photos-report.json"
TRAINING_SET = "training-set"
MODEL = "model"
SHOTS = "shots"
CONTACT_SHEET = "contact-sheet.png"


def shoot_catalogue(
    products: list[CatalogueProduct],
    shot_list: ShotList,
    out_dir: Path | str,
    *,
    train_config: Callable[[CatalogueProduct], TrainConfig],
    seed: int,
    instant_model: str | None = None,
    num_inference_steps: int | None = None,
    judge: bool = True,
    dino_model: str | None = None,
    clip_model: str | None = None,
    gpu_price_per_hour: float = GPU_PRICE_PER_HOUR,
    studio_price_per_photo: float = STUDIO_PRICE_PER_PHOTO,
    profiles: list[str] | None = None,
    request: dict[str, Any] | None = None,
    progress: ProgressCallback = no_progress,
    cache_dir: Path | None = None,
) -> CatalogueSummary:
    """Shoot `shot_list` of every product into `out_dir` (trained first when it has no model,
    or with `instant_model` shot instantly from its photos), deliver every image to the
    marketplace `profiles` ("amazon-main", "shopify", …), then write the summary.
    `train_config(product)` is the training of a product without a model; `request` (plain
    values) is what a run continuing in `out_dir` must match."""

    out = Path(out_dir)
    total = len(products)

    # 1. The profiles known; the instant shots' model, refused before any work when it takes
    #    no references (found only while some product needs it: a finished catalogue loads no
    #    model); a run that continues in `out` the same catalogue shoot.
    chosen = [p.name for p in get_profiles(profiles)] if profiles else []
    instant: ResolvedModel | None = None
    if instant_model is not None and any(
        p.model_dir is None and not (out / p.handle / OUTCOME_FILE).is_file() for p in products
    ):
        instant = reference_model(instant_model, cache_dir)
    _claim(out, request or {})

    # 2. Each product on its own: a failure is its outcome, never the others'.
    outcomes: list[ProductOutcome] = []
    for number, product in enumerate(products):
        before = read_record(out / product.handle / OUTCOME_FILE, ProductOutcome)
        if before is not None:  # finished by an earlier run: kept as it is
            outcomes.append(before)
            again = "" if before.status == "done" else f" (to try again, delete {OUTCOME_FILE})"
            _announce(
                progress,
                number,
                total,
                product,
                before.status,
                f"{product.name}: {before.status} before, kept{again}",
                kept=True,
                error=before.error,
            )
            continue
        _announce(progress, number, total, product, "running", f"{product.name}: started")
        try:
            outcome = shoot_product(
                product,
                shot_list,
                out / product.handle,
                train_config=train_config,
                instant=instant,
                seed=seed,
                num_inference_steps=num_inference_steps,
                judge=judge,
                dino_model=dino_model,
                clip_model=clip_model,
                gpu_price_per_hour=gpu_price_per_hour,
                studio_price_per_photo=studio_price_per_photo,
                progress=_tagged(progress, product.handle),
                cache_dir=cache_dir,
            )
        except PackshotError as error:
            outcome = _failed(product, out / product.handle, str(error))
        except torch.OutOfMemoryError as error:  # this product's photos or shots were too big
            torch.cuda.empty_cache()
            reason = f"It ran out of device memory ({str(error).splitlines()[0][:200]})."
            outcome = _failed(product, out / product.handle, reason)
        write_record(out / product.handle / OUTCOME_FILE, outcome)
        outcomes.append(outcome)
        if outcome.status == "done":
            _announce(
                progress,
                number,
                total,
                product,
                "done",
                f"{product.name}: {len(outcome.images or [])} images",
            )
        else:
            _announce(
                progress,
                number,
                total,
                product,
                "failed",
                f"{product.name} failed: {outcome.error}",
                error=outcome.error,
            )

    # 3. The summary: every image on one contact sheet, and what one cost against a studio's.
    summary = summarise(outcomes, out, gpu_price_per_hour, studio_price_per_photo)
    if summary.images:
        save_contact_sheet(
            out / CONTACT_SHEET,
            [(out / i.file, f"{i.product} · {SLOTS[i.slot].lower()}") for i in summary.images],
        )
        summary = replace(summary, contact_sheet=CONTACT_SHEET)

    # 4. Marketplace-ready: every image against every profile, fixed where that is honest
    #    (done again on a resumed run: it is cheap, and its folder is written whole).
    if chosen and summary.images:
        summary = _deliver(summary, outcomes, out, chosen, progress)
    write_record(out / SUMMARY_FILE, summary)
    progress(ProgressEvent("catalogue", total, total, "done", {"event": "done", "path": str(out)}))
    return summary


def shoot_product(
    product: CatalogueProduct,
    shot_list: ShotList,
    folder: Path,
    *,
    train_config: Callable[[CatalogueProduct], TrainConfig],
    instant: ResolvedModel | None,
    seed: int,
    num_inference_steps: int | None,
    judge: bool,
    dino_model: str | None,
    clip_model: str | None,
    gpu_price_per_hour: float,
    studio_price_per_photo: float,
    progress: ProgressCallback,
    cache_dir: Path | None,
) -> ProductOutcome:
    """One product: its photos judged, its model (trained here when it has none, or with an
    `instant` model none: its best photos as that model's references), its shots."""

    folder.mkdir(parents=True, exist_ok=True)

    # 1. Intake's judgement of its photos (kept for the page and the next run).
    verdict, counts, report = None, None, None
    if product.photos_dir is not None:
        report = check_files(photo_files(Path(product.photos_dir)), progress=progress)
        report.save(folder / REPORT_FILE)
        verdict, counts = report.verdict, report.counts

    # 2. What draws it: the model it has, judged against its training crops; else its best
    #    photos as references of the instant model (`packshot instant`'s route), judged
    #    against all its photos; else a model trained on its photos here.
    model: ProductModel | None = None
    references: list[Reference] = []
    draws: dict[str, Any]  # the ShootRequest's fields that say what draws the product
    reference_dir: str | None  # the photos its shots are judged against (None: the crops)
    stand_in: bool  # drawn by a tiny stand-in: judged by the tiny judges
    route: Route
    if product.model_dir is not None:
        route, model = "model", ProductModel.load(Path(product.model_dir))
    elif report is None:
        raise PhotoSetError(f"{product.name} has no photos and no model: add 5–40 photos.")
    elif instant is not None:
        route, photos = "instant", Path(str(product.photos_dir))
        references = choose_references(report, photos, instant.family, progress)
        draws = {
            "model_dir": None,
            "base": instant.ref,
            "product": product.name,
            "references": [str(photos / r.file) for r in references],
        }
        reference_dir, stand_in = str(photos), instant.stand_in
    else:
        if report.verdict == "not enough":
            raise PhotoSetError(
                f"The photos of {product.name} are not enough to train on. "
                + " ".join(report.advice)
            )
        route = "trained"
        model = _train(product, report, folder, train_config(product), progress, cache_dir)
    if model is not None:
        draws = {"model_dir": str(model.model_dir)}
        reference_dir, stand_in = None, model.trained_on_stand_in

    # 3. Each shot of the list: a judged shoot of its own (resumed when it was cut short).
    images: list[CatalogueShot] = []
    missing: list[str] = []
    warnings: list[str] = []
    judges = JudgeConfig.for_models(dino_model, clip_model, stand_in=stand_in)
    for entry in shot_list.shots:
        request = ShootRequest(
            **draws,
            descriptions=[entry.description or "{product}"],
            presets=[entry.preset] if entry.preset else [],
            count=entry.count,
            aspect=entry.aspect,
            seed=seed,
            num_inference_steps=num_inference_steps,
            gpu_price_per_hour=gpu_price_per_hour,
            studio_price_per_photo=studio_price_per_photo,
        )
        shots_dir = folder / SHOTS / entry.name
        resume = shots_dir.exists()
        if judge:
            judged = shoot_and_judge(
                request,
                shots_dir,
                judge=judges,
                reference_dir=reference_dir,
                progress=progress,
                cache_dir=cache_dir,
                resume=resume,
            )
            result = judged.result
            missing += [f"{SHOTS}/{entry.name}/{name}" for name in judged.flagged]
        else:
            result = shoot(
                request, shots_dir, progress=progress, cache_dir=cache_dir, resume=resume
            )
        warnings += [w for w in result.warnings if w not in warnings]
        listed = json.loads((shots_dir / SHOOT_SUMMARY).read_text(encoding="utf-8"))
        for image in listed["images"]:
            images.append(
                CatalogueShot.listed(
                    image,
                    f"{product.handle}/{SHOTS}/{entry.name}/{image['file']}",
                    product=product.handle,
                    shot=entry.name,
                    slot=entry.slot,
                    device_s=float(image.get("device_s") or 0.0),
                )
            )
    trained = route == "trained"
    return ProductOutcome(
        handle=product.handle,
        name=product.name,
        status="done",
        verdict=verdict,
        photos=counts,
        route=route,
        model_dir=MODEL if trained else product.model_dir,
        references=[r.file for r in references] or None,
        train_s=float(model.timings.get("total_s", 0.0)) if trained and model else 0.0,
        images=images,
        product_missing=[f"{product.handle}/{name}" for name in missing],
        warnings=warnings,
    )


def _train(
    product: CatalogueProduct,
    report: Any,
    folder: Path,
    config: TrainConfig,
    progress: ProgressCallback,
    cache_dir: Path | None,
) -> ProductModel:
    """The product's model in `folder/model`: kept when finished before, an interrupted run
    continued from its last checkpoint, else trained on crops of the photos intake accepted."""
    model_dir = folder / MODEL
    if model_dir.is_dir():
        return ProductModel.load(model_dir)
    training_set = folder / TRAINING_SET
    if not training_set.is_dir():
        tmp = folder / f"{TRAINING_SET}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        prepare_training_set(
            report,
            tmp,
            resolution=config.resolution,
            token=config.token,
            class_word=config.class_word,
            buckets=config.buckets,
            progress=progress,
        )
        os.replace(tmp, training_set)
    model = train(
        config,
        training_set,
        model_dir,
        progress=progress,
        resume=work_dir_for(model_dir).exists(),
        cache_dir=cache_dir,
    )
    shutil.rmtree(training_set)  # the model carries its own copy (judging reads it there)
    return model


def _deliver(
    summary: CatalogueSummary,
    outcomes: list[ProductOutcome],
    out: Path,
    profiles: list[str],
    progress: ProgressCallback,
) -> CatalogueSummary:
    """The summary with its delivery: each image's badges, each product's counts per profile."""
    names = {o.handle: o.name for o in outcomes}
    shots = [
        DeliveryShot(
            out / image.file,
            product=image.product,
            title=names[image.product],
            slot=image.slot,
            description=(image.description or "").replace("{product}", names[image.product]),
        )
        for image in summary.images
    ]
    report = deliver_run(out, profiles, shots, progress=progress)
    badges = report.badges(relative_to=out)
    images = [replace(i, badges=badges.get(i.file)) for i in summary.images]
    return replace(summary, images=images, delivery=report.record(out))


def _failed(product: CatalogueProduct, folder: Path, error: str) -> ProductOutcome:
    """A failed product's outcome, with intake's verdict when its photos were judged."""
    verdict, counts = None, None
    if (folder / REPORT_FILE).is_file():
        report = PhotoSetReport.load(folder / REPORT_FILE)
        verdict, counts = report.verdict, report.counts
    return ProductOutcome(
        handle=product.handle,
        name=product.name,
        status="failed",
        error=error,
        verdict=verdict,
        photos=counts,
    )


def summarise(
    outcomes: list[ProductOutcome],
    out: Path,
    gpu_price_per_hour: float,
    studio_price_per_photo: float,
) -> CatalogueSummary:
    """The catalogue's summary; each image's cost carries its share of its product's training."""
    images = [image for outcome in outcomes for image in outcome.images or []]
    seconds = []
    for outcome in outcomes:
        own = outcome.images or []
        share = outcome.train_s / len(own) if own else 0.0
        seconds += [image.device_s + share for image in own]
    cost = cost_summary(seconds, gpu_price_per_hour, studio_price_per_photo)
    cost["products_done"] = sum(o.status == "done" for o in outcomes)
    cost["products_failed"] = sum(o.status == "failed" for o in outcomes)
    cost["images"] = len(images)
    cost["training_device_seconds"] = round(sum(o.train_s for o in outcomes), 3)
    return CatalogueSummary(out_dir=str(out), products=outcomes, images=images, cost=cost)


def _announce(
    progress: ProgressCallback,
    number: int,
    total: int,
    product: CatalogueProduct,
    status: str,
    message: str,
    **data: Any,
) -> None:
    """A product's state, for the progress per product: running, done or failed."""
    event = {"event": "product", "product": product.handle, "status": status, **data}
    progress(ProgressEvent("catalogue", number, total, message, event))


def _tagged(progress: ProgressCallback, handle: str) -> ProgressCallback:
    """A product's training and shooting events, named with its handle."""

    def tagged(event: ProgressEvent) -> None:
        progress(
            replace(
                event, stage=f"{handle} · {event.stage}", data={**event.data, "product": handle}
            )
        )

    return tagged


def _claim(out: Path, request: dict[str, Any]) -> None:
    """Start a catalogue shoot in `out`, or continue the same one; refuse another one there."""
    path = out / REQUEST_FILE
    wanted = json.loads(json.dumps(request, default=str))
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != wanted:
            changed = sorted(k for k in set(before) | set(wanted) if before.get(k) != wanted.get(k))
            raise UsageError(
                f"{out} holds another catalogue shoot (it differs in {', '.join(changed)}). "
                "Run the same one again to continue it, or choose another output folder."
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(wanted, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
