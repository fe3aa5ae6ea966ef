"""Trainings, shoots and placements: asynchronous jobs, created here and run by the worker.

Create returns the job at once (status queued); poll `GET`, follow `/events` (server-sent
events), or pass a `webhook`. Every lookup is scoped to the merchant of the key.

The routes every kind has (list, read, cancel, events; download and contact sheet for the
kinds that deliver shots) are made once, by `add_job_routes`, from a `JobRoutes` per kind;
each kind adds its own create route (and a training its files).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select
from starlette.background import BackgroundTask

from packshot.api import streams
from packshot.api.deps import (
    CurrentMerchant,
    SessionDep,
    SettingsDep,
    check_webhook,
    inline_on_sqlite,
)
from packshot.api.errors import ApiError, not_found
from packshot.api.routes.products import get_product, photos_dir
from packshot.api.schemas import (
    BaseModelPublic,
    BaseModelsPublic,
    CutoutPublic,
    DeliveryPublic,
    ErrorPublic,
    FilePublic,
    MarketplacePublic,
    PlacedShotPublic,
    PlacementCreate,
    PlacementPublic,
    PlacementsPublic,
    PresetPublic,
    ShootCreate,
    ShootPublic,
    ShootsPublic,
    ShotPublic,
    TrainingCreate,
    TrainingPublic,
    TrainingsPublic,
)
from packshot.api.settings import ApiSettings
from packshot.artifacts.product_model import (
    SAMPLES_DIR,
    UNLISTED_PARTS,
    ProductModel,
    work_dir_for,
)
from packshot.artifacts.shots import sidecar_path
from packshot.deliver.profiles import load_profiles
from packshot.deliver.report import DELIVERY_DIR, REPORT_FILE
from packshot.deliver.shop import FORMATS, export_delivery
from packshot.jobs import store
from packshot.jobs.kinds import KINDS, JobKind, ShootParams, TrainingParams
from packshot.jobs.models import Job, JobEvent, Photo, Product, ShotRow
from packshot.models.families import (
    INSTANT_MODEL,
    TRAINING_MODEL,
    ModelFamily,
    base_models,
    stand_in_aliases,
)
from packshot.shoot import load_presets
from packshot.shoot.plan import images_planned, presets_named
from packshot.shoot.request import check_takes_references
from packshot.train import load_presets as load_training_presets

router = APIRouter(prefix="/v1", tags=["jobs"])
E = {code: {"model": ErrorPublic} for code in (401, 404, 422, 429)}
E409 = {**E, 409: {"model": ErrorPublic}}
MODEL_DIR = KINDS["training"].out_dir  # a training's model folder, in the job's folder
LAST_EVENT_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits only, and within a BIGINT
SSE_DOC = {**E, 200: {"content": {"text/event-stream": {}}}}
PNG_DOC = {**E, 200: {"content": {"image/png": {}}}}
ZIP_DOC = {**E, 200: {"content": {"application/zip": {}}}}
EXPORT_TYPES = {  # an export's media type, by format
    "shopify": "text/csv",
    "woocommerce": "text/csv",
    "google": "text/tab-separated-values",
    "zip": "application/zip",
}
EXPORT_DOC = {**E409, 200: {"content": {t: {} for t in sorted(set(EXPORT_TYPES.values()))}}}
ExportFormat = Literal["shopify", "woocommerce", "google", "zip"]


def _job(session: SessionDep, merchant_id: str, job_id: str, kind: str) -> Job:
    job = session.scalars(
        select(Job).where(Job.id == job_id, Job.merchant_id == merchant_id, Job.kind == kind)
    ).first()
    if job is None:
        raise not_found(kind)
    return job


def _error(job: Job) -> dict[str, str] | None:
    return dict(job.error) if job.error else None


def _times(job: Job) -> dict[str, Any]:
    return {
        "created_at": store.utc(job.created_at),
        "started_at": store.utc(job.started_at),
        "finished_at": store.utc(job.finished_at),
    }


# -- fair use and the operator's models ------------------------------------------------------


def check_fair_use(
    session: SessionDep, settings: ApiSettings, merchant_id: str, kind: str, images: int = 0
) -> None:
    """Refuse a job one merchant may not queue now: over their queued jobs (429), or one that
    renders more images than a job may (422). Every create call calls this."""
    if images > settings.max_images_per_job:
        raise ApiError(
            422,
            f"This {kind} would render {images} images, and one job may render at most "
            f"{settings.max_images_per_job}: ask for fewer descriptions or presets, or a "
            "smaller `count` (or `best`), and split the rest into more jobs.",
            code="too_many_images",
        )
    queued = store.queued_count(session, merchant_id)
    if queued >= settings.max_queued_jobs:
        raise ApiError(
            429,
            f"You have {queued} jobs waiting in the queue, the most one merchant may have: "
            "send this one when one of them has started (or cancel one).",
            code="too_many_jobs",
        )


def check_model(settings: ApiSettings, model: str | None, field: str) -> None:
    """Refuse (422) a model the operator doesn't offer (PACKSHOT_MODELS; empty: any name)."""
    if model is not None and settings.models and model not in settings.models:
        raise ApiError(
            422,
            f"`{field}` {model} is not offered by this studio: use one of "
            f"{', '.join(settings.models)}.",
            code="model_not_offered",
        )


def check_reference_model(model: str) -> None:
    """Refuse (422) an instant shots' model whose family takes no reference images, where the
    web process can tell without the Hub: a stand-in's. A Hub id's family is the job's to find
    (`flows.instant.reference_model`), which refuses it the same way before any work."""
    family = stand_in_aliases().get(model)
    if family is not None:
        check_takes_references(family, model)


def _product_model(settings: ApiSettings, training: Job) -> ProductModel:
    return ProductModel.load(Path(_model_dir(settings, training)))


# -- trainings --------------------------------------------------------------------------------


def model_files(settings: ApiSettings, job: Job) -> tuple[Path | None, dict[str, int]]:
    """The training's model folder (finished, else the run in progress) and its files' sizes.

    The run renames `model.partial` to `model` when it finishes, and prunes checkpoints as it
    goes: a listing that races with either is taken again from the folder that exists now.
    """
    root = store.job_dir(settings.service.data_dir, job)
    for _attempt in range(3):
        for folder in (root / MODEL_DIR, work_dir_for(root / MODEL_DIR)):
            if not folder.is_dir():
                continue
            try:
                files = {}
                for path in folder.rglob("*"):
                    relative = path.relative_to(folder)
                    parts = set(relative.parts)
                    if parts.intersection(UNLISTED_PARTS) or any(p.endswith(".tmp") for p in parts):
                        continue
                    if path.is_file():
                        files[str(relative)] = path.stat().st_size
            except OSError:  # renamed or pruned while listed
                break
            return folder, dict(sorted(files.items()))
    return None, {}


def training_public(settings: ApiSettings, job: Job) -> TrainingPublic:
    _folder, sizes = model_files(settings, job)
    files = [
        FilePublic(name=name, url=f"/v1/trainings/{job.id}/files/{name}", size=size)
        for name, size in sizes.items()
    ]
    result = store.job_result(job)
    sample_prefix = f"{SAMPLES_DIR}/"
    return TrainingPublic(
        id=job.id,
        product_id=job.product_id,
        status=job.status,  # type: ignore[arg-type]
        progress=job.progress or {},
        error=_error(job),
        request=job.request or {},
        final_step=result.final_step if result else None,
        final_loss=result.final_loss if result else None,
        resumed_from=result.resumed_from if result else None,
        files=files if job.status == "succeeded" else [f for f in files if sample_prefix in f.name],
        samples=[f for f in files if f.name.startswith(sample_prefix)],
        **_times(job),
    )


@router.post(
    "/products/{product_id}/trainings",
    response_model=TrainingPublic,
    status_code=201,
    responses=E409,
)
def create_training(
    product_id: str,
    body: TrainingCreate,
    session: SessionDep,
    merchant: CurrentMerchant,
    settings: SettingsDep,
):
    """Start training the product's model on its photos (the `packshot train` options)."""
    product = get_product(session, merchant.id, product_id)
    check_webhook(settings, body.webhook)
    has_photos = session.scalars(select(Photo.id).where(Photo.product_id == product.id)).first()
    if has_photos is None:
        raise ApiError(409, "The product has no photos yet: upload 5–40 photos, then train.")
    check_model(settings, body.model, "model")
    check_fair_use(session, settings, merchant.id, "training")
    request = body.model_dump(exclude_none=True, exclude={"webhook"})
    params = TrainingParams(
        photos_dir=str(photos_dir(settings, product.id).resolve()),
        class_word=product.class_name,
        product=product.name,
        **request,
    )
    job = store.enqueue(
        session,
        merchant_id=merchant.id,
        product_id=product.id,
        kind="training",
        params=params,
        request=request,
        webhook=body.webhook,
        prefix="trn",
    )
    return training_public(settings, job)


@router.get(
    "/trainings/{training_id}/files/{name:path}",
    response_class=FileResponse,
    responses={**E, 200: {"content": {"application/octet-stream": {}}}},
)
def training_file(
    training_id: str,
    name: str,
    session: SessionDep,
    merchant: CurrentMerchant,
    settings: SettingsDep,
):
    """A file of the trained model: the LoRA (diffusers, kohya), packshot.json, README.md,
    samples/…; only names listed in the training's `files`."""
    job = _job(session, merchant.id, training_id, "training")
    folder, sizes = model_files(settings, job)
    if folder is None or name not in sizes:  # a listed name: never a path from the client
        raise not_found("file")
    media_type = MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream")
    filename = Path(name).name if name.endswith(".safetensors") else None
    final = store.job_dir(settings.service.data_dir, job) / MODEL_DIR / name
    if job.status == "succeeded" and final.is_file():  # the finished folder: it stays
        return FileResponse(final, media_type=media_type, filename=filename)
    # A run in progress renames `model.partial` to `model` when it finishes, and rewrites its
    # samples: the file is opened here, where it was listed or where it went, and sent from
    # the open file, which a rename doesn't disturb (a path opened later, when the response
    # is sent, may be gone by then).
    for path in (folder / name, final):
        try:
            handle = path.open("rb")
        except (FileNotFoundError, IsADirectoryError):
            continue
        size = os.fstat(handle.fileno()).st_size
        headers = {"content-length": str(size)}
        if filename:
            headers["content-disposition"] = f'attachment; filename="{filename}"'
        return StreamingResponse(_chunks(handle), media_type=media_type, headers=headers)
    raise not_found("file")


MEDIA_TYPES = {".png": "image/png", ".json": "application/json", ".md": "text/markdown"}
CHUNK_BYTES = 256 * 1024


def _chunks(handle: io.BufferedReader) -> Iterator[bytes]:
    """An open file, a chunk at a time, closed at the end (or when the client goes)."""
    with handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def _model_dir(settings: ApiSettings, training: Job) -> str:
    """The absolute path of a succeeded training's model folder (a job parameter)."""
    return str((store.job_dir(settings.service.data_dir, training) / MODEL_DIR).resolve())


def succeeded_training(
    session: SessionDep, merchant_id: str, product: Product, training_id: str | None
) -> Job | None:
    """The training `training_id` of this product (404 if none, 409 unless it succeeded);
    without an id, the product's latest succeeded training, or None."""
    query = select(Job).where(
        Job.product_id == product.id, Job.kind == "training", Job.merchant_id == merchant_id
    )
    if training_id is None:
        return session.scalars(
            query.where(Job.status == "succeeded").order_by(Job.finished_at.desc())
        ).first()
    training = session.scalars(query.where(Job.id == training_id)).first()
    if training is None:
        raise not_found("training")
    if training.status != "succeeded":
        raise ApiError(409, f"Training {training.id} is {training.status}, not succeeded.")
    return training


# -- events -----------------------------------------------------------------------------------


def _event_public(job: Job, data: dict[str, Any]) -> dict[str, Any]:
    """An event as the client sees it: file paths become URLs of this API."""
    out = {k: v for k, v in data.items() if k != "data"}
    inner = dict(data.get("data") or {})
    for key in ("path", "paths"):
        inner.pop(key, None)
    out.update(inner)
    raw = data.get("data") or {}
    paths = raw.get("paths") or ([raw["path"]] if raw.get("path") else [])
    if job.kind == "training":
        urls = []
        for path in paths:
            for prefix in (f"{work_dir_for(Path(MODEL_DIR))}/", f"{MODEL_DIR}/"):
                if path.startswith(f"{prefix}{SAMPLES_DIR}/"):
                    urls.append(f"/v1/trainings/{job.id}/files/{path.removeprefix(prefix)}")
        if urls:
            out["urls"] = urls
    return out


def _render(job: Job) -> Callable[[JobEvent], str]:
    def render(event: JobEvent) -> str:
        payload = _event_public(job, event.data or {})
        return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(payload)}\n\n"

    return render


def _open_stream(session: SessionDep, settings: ApiSettings, merchant_id: str) -> str:
    """A lease for one more open stream of this merchant (429 past the stream caps)."""
    try:
        return store.open_stream_lease(
            session,
            merchant_id,
            per_merchant=settings.max_streams_per_merchant,
            total=settings.max_streams,
            ttl_s=streams.LEASE_TTL_S,
            clock=time.time(),
        )
    except store.TooManyStreams as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "30"}) from None


def last_event_id(request: Request) -> int:
    """The `Last-Event-ID` a reconnecting client sends (an id this stream gave: 1 to 18
    digits), 0 without one; 422 for anything else (`²`, a 20-digit number: not ours)."""
    last = request.headers.get("last-event-id", "").strip()
    if not last:
        return 0
    if not LAST_EVENT_ID.fullmatch(last):
        raise ApiError(422, "`Last-Event-ID` must be the id of an event of this stream.")
    return int(last)


def _events_response(request: Request, job: Job, after: int, lease: str) -> StreamingResponse:
    hub: streams.EventHub = request.app.state.streams
    return StreamingResponse(
        hub.follow(job.id, after, lease, _render(job)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- shots: what shoots and placements deliver -------------------------------------------------


def _shots(session: SessionDep, job: Job, model: type[ShotPublic]) -> list[Any]:
    rows = session.scalars(
        select(ShotRow).where(ShotRow.job_id == job.id).order_by(ShotRow.file)
    ).all()
    shots = []
    for row in rows:
        info = row.info or {}
        scores = info.get("scores")
        extra = {k: info.get(k) for k in model.model_fields if k not in ShotPublic.model_fields}
        shots.append(
            model(
                id=row.id,
                url=f"/v1/shots/{row.id}/image",
                preset=info.get("preset"),
                description=info.get("description"),
                prompt=info.get("prompt"),
                seed=info.get("seed"),
                width=info.get("width"),
                height=info.get("height"),
                scores=scores,
                product_missing=bool(scores) and scores.get("present") is False,
                badges=info.get("badges"),
                **extra,
            )
        )
    return shots


def delivery_public(
    kind: JobKind, job: Job, delivery: dict[str, Any] | None
) -> DeliveryPublic | None:
    """A finished job's marketplace delivery (its result's `DeliveryReport.record`): the
    verdicts counted per profile and the exports' URLs; None without one."""
    if not delivery:
        return None
    return DeliveryPublic(
        profiles=list(delivery["profiles"]),
        compliance=delivery.get("counts", {}),  # a catalogue's delivered before: per product
        exports={fmt: f"/v1/{kind.plural}/{job.id}/exports/{fmt}" for fmt in FORMATS},
    )


def shoot_public(session: SessionDep, job: Job) -> ShootPublic:
    result = store.job_result(job)
    return ShootPublic(
        id=job.id,
        product_id=job.product_id,
        training_id=(job.request or {}).get("training_id", ""),
        status=job.status,  # type: ignore[arg-type]
        progress=job.progress or {},
        error=_error(job),
        request=job.request or {},
        shots=_shots(session, job, ShotPublic),
        warnings=list(result.warnings) if result else [],
        download_url=f"/v1/shoots/{job.id}/download",
        contact_sheet_url=f"/v1/shoots/{job.id}/contact-sheet" if result else None,
        delivery=delivery_public(KINDS["shoot"], job, result.delivery if result else None),
        **_times(job),
    )


def placement_public(session: SessionDep, job: Job) -> PlacementPublic:
    result = store.job_result(job)
    request = job.request or {}
    cutout = result.cutout if result else None
    return PlacementPublic(
        id=job.id,
        product_id=job.product_id,
        photo_id=request.get("photo_id", ""),
        training_id=request.get("training_id"),
        status=job.status,  # type: ignore[arg-type]
        progress=job.progress or {},
        error=_error(job),
        request=request,
        shots=_shots(session, job, PlacedShotPublic),
        cutout=CutoutPublic(
            source=cutout["source"],
            share=cutout.get("share"),
            url=f"/v1/placements/{job.id}/cutout",
        )
        if cutout
        else None,
        warnings=list(result.warnings) if result else [],
        download_url=f"/v1/placements/{job.id}/download",
        contact_sheet_url=f"/v1/placements/{job.id}/contact-sheet" if result else None,
        delivery=delivery_public(KINDS["placement"], job, result.delivery if result else None),
        **_times(job),
    )


@router.get("/presets", response_model=list[PresetPublic], responses=E)
def list_presets(merchant: CurrentMerchant):
    """The shot presets: studio on white, lifestyle, on a model, flat lay, …; `composition`
    says where pixel-true mode places the product (null: shoots only)."""
    from packshot.place import load_compositions

    _compositions, by_preset = load_compositions()
    return [
        PresetPublic(
            name=n,
            label=p.label,
            description=p.description,
            aspect=p.aspect,
            count=p.count,
            composition=by_preset.get(n),
        )
        for n, p in load_presets().items()
    ]


@router.get("/models", response_model=BaseModelsPublic, responses=E)
def list_models(merchant: CurrentMerchant, settings: SettingsDep):
    """The base models to suggest for trainings and instant shots, with what each needs."""
    known = {hub_id: (note, family) for hub_id, note, family in base_models()}
    for alias, family in stand_in_aliases().items():
        known.setdefault(alias, (f"{family.label}: test stand-in, random weights", family))
    names = settings.models or sorted(
        (hub_id for hub_id, _note, _family in base_models()), key=lambda n: n != TRAINING_MODEL
    )
    return BaseModelsPublic(
        training_default=TRAINING_MODEL,
        instant_default=INSTANT_MODEL,
        data=[_base_model(name, *known.get(name, (name, None))) for name in names],
    )


def _base_model(name: str, label: str, family: ModelFamily | None) -> BaseModelPublic:
    trains = family is not None and family.trainable
    return BaseModelPublic(
        id=name,
        family=family.name if family else None,
        label=label,
        trains=trains,
        takes_references=bool(family and family.reference_images),
        training_steps={
            preset: values["max_train_steps"]
            for preset, values in load_training_presets(family.name).items()
        }
        if family is not None and trains
        else {},
    )


@router.get("/marketplaces", response_model=list[MarketplacePublic], responses=E)
def list_marketplaces(merchant: CurrentMerchant):
    """The marketplace profiles a shoot, a placement or a catalogue shoot may deliver to
    (`profiles`): each with its page of rules and what it makes of an image the model drew."""
    marketplaces = []
    for profile in load_profiles().values():
        rule = profile.rules.get("generated")
        marketplaces.append(
            MarketplacePublic(
                name=profile.name,
                label=profile.label,
                source=profile.source,
                generated=profile.generated,  # type: ignore[arg-type]
                generated_rule=rule.says if rule else None,
                white_background=profile.white_background,
            )
        )
    return marketplaces


def _check_presets(names: list[str], pixel_true: bool = False) -> None:
    from packshot.place import load_compositions

    unknown = [p for p in names if p not in load_presets()]
    if unknown:
        raise ApiError(422, f"Unknown shot preset(s) {', '.join(unknown)}; see GET /v1/presets.")
    if pixel_true:
        _compositions, by_preset = load_compositions()
        drawn = [p for p in names if p not in by_preset]
        if drawn:
            raise ApiError(
                422,
                f"The shot preset(s) {', '.join(drawn)} need the product held or worn, which "
                f"means drawing it: keep the product's pixels with {', '.join(by_preset)}, or "
                "shoot these with the trained model (POST /v1/products/{id}/shoots).",
            )


@router.post(
    "/products/{product_id}/shoots", response_model=ShootPublic, status_code=201, responses=E409
)
def create_shoot(
    product_id: str,
    body: ShootCreate,
    session: SessionDep,
    merchant: CurrentMerchant,
    settings: SettingsDep,
):
    """Shoot product photos from descriptions: with the product's trained model, or (`mode`
    instant) with no training, its best photos as reference images of a FLUX.2 [klein] model."""
    product = get_product(session, merchant.id, product_id)
    check_webhook(settings, body.webhook)
    _check_presets(body.presets)
    if body.mode == "instant":
        return _create_instant_shoot(session, merchant, settings, product, body)
    if body.base is not None:
        raise ApiError(422, "`base` is for instant shoots: a trained shoot uses its training's.")
    training = succeeded_training(session, merchant.id, product, body.training_id)
    if training is None:
        raise ApiError(409, "The product has no trained model yet: train it first.")
    if settings.models:  # the training's base model is still offered
        check_model(settings, _product_model(settings, training).base_model, "training's model")
    images = images_planned(
        len(body.descriptions), presets_named(body.presets), body.count, body.best
    )
    check_fair_use(session, settings, merchant.id, "shoot", images)
    request = body.model_dump(exclude_none=True, exclude={"webhook", "mode", "base"})
    request["training_id"] = training.id
    scene = {k: v for k, v in request.items() if k != "training_id"}
    params = ShootParams(model_dir=_model_dir(settings, training), **scene)
    job = store.enqueue(
        session,
        merchant_id=merchant.id,
        product_id=product.id,
        kind="shoot",
        params=params,
        request=request,
        webhook=body.webhook,
        prefix="sht",
    )
    return shoot_public(session, job)


def _create_instant_shoot(
    session: SessionDep,
    merchant: CurrentMerchant,
    settings: SettingsDep,
    product: Product,
    body: ShootCreate,
) -> ShootPublic:
    """An instant shoot: no training, as soon as the product has photos."""
    has_photos = session.scalars(select(Photo.id).where(Photo.product_id == product.id)).first()
    if has_photos is None:
        raise ApiError(409, "The product has no photos yet: upload some, then shoot instantly.")
    if body.training_id is not None:
        raise ApiError(422, "An instant shoot uses no training: drop `training_id`.")
    model = body.base or INSTANT_MODEL
    check_reference_model(model)
    check_model(settings, model, "model")
    images = images_planned(
        len(body.descriptions), presets_named(body.presets), body.count, body.best
    )
    check_fair_use(session, settings, merchant.id, "shoot", images)
    request = body.model_dump(exclude_none=True, exclude={"webhook"})
    scene = {k: v for k, v in request.items() if k not in ("mode", "base")}
    photos = str(photos_dir(settings, product.id).resolve())
    params = ShootParams(
        model_dir=None,
        base=model,
        product=product.name or product.class_name,
        photos_dir=photos,
        reference_dir=photos,
        **scene,
    )
    job = store.enqueue(
        session,
        merchant_id=merchant.id,
        product_id=product.id,
        kind="shoot",
        params=params,
        request={**request, "model": model},
        webhook=body.webhook,
        prefix="sht",
    )
    return shoot_public(session, job)


@router.post(
    "/products/{product_id}/placements",
    response_model=PlacementPublic,
    status_code=201,
    responses=E409,
)
def create_placement(
    product_id: str,
    body: PlacementCreate,
    session: SessionDep,
    merchant: CurrentMerchant,
    settings: SettingsDep,
):
    """Pixel-true mode: cut the product out of one of its photos and generate the scene around
    it, so that every pixel of the product is the merchant's own (`packshot place`)."""
    from packshot.place import PlaceRequest, default_inpaint_model

    product = get_product(session, merchant.id, product_id)
    check_webhook(settings, body.webhook)
    photo = session.scalars(
        select(Photo).where(
            Photo.id == body.photo_id,
            Photo.product_id == product.id,
            Photo.merchant_id == merchant.id,
        )
    ).first()
    if photo is None:
        raise not_found("photo of this product")
    _check_presets(body.presets, pixel_true=True)
    if body.keep_framing and body.aspect is not None:
        raise ApiError(
            422,
            "`keep_framing` keeps the photo's own frame, so it can't change `aspect`: "
            "drop one of them.",
        )
    training = (
        succeeded_training(session, merchant.id, product, body.training_id)
        if body.training_id is not None
        else None
    )
    if settings.models:  # the inpainting model, named or the default, and the training's
        trained = _product_model(settings, training) if training is not None else None
        check_model(settings, body.model or default_inpaint_model(trained), "model")
        if trained is not None:
            check_model(settings, trained.base_model, "training's model")
    images = images_planned(len(body.descriptions), presets_named(body.presets), body.count)
    check_fair_use(session, settings, merchant.id, "placement", images)
    request = body.model_dump(exclude_none=True, exclude={"webhook"})
    scene = {k: v for k, v in request.items() if k not in ("photo_id", "training_id")}
    params = PlaceRequest(
        photo=str((photos_dir(settings, product.id) / f"{photo.id}.png").resolve()),
        product=product.class_name,  # what {product} means without a product model
        product_model=_model_dir(settings, training) if training is not None else None,
        **scene,
    )
    job = store.enqueue(
        session,
        merchant_id=merchant.id,
        product_id=product.id,
        kind="placement",
        params=params,
        request=request,
        webhook=body.webhook,
        prefix="plc",
    )
    return placement_public(session, job)


@router.get("/placements/{placement_id}/cutout", response_class=FileResponse, responses=PNG_DOC)
def placement_cutout(
    placement_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
):
    """The product as cut out of its photo: a transparent PNG (what every shot keeps)."""
    job = _job(session, merchant.id, placement_id, "placement")
    result = store.job_result(job)
    cutout = result.cutout.get("cutout") if result else None
    path = store.job_dir(settings.service.data_dir, job) / KINDS["placement"].out_dir / str(cutout)
    if not cutout or not path.is_file():
        raise not_found("cut-out")
    return FileResponse(path, media_type="image/png")


def _shot_file(settings: ApiSettings, session: SessionDep, merchant_id: str, shot_id: str) -> Path:
    row = session.scalars(
        select(ShotRow).where(ShotRow.id == shot_id, ShotRow.merchant_id == merchant_id)
    ).first()
    if row is None:
        raise not_found("shot")
    job = session.get(Job, row.job_id)
    path = store.job_dir(settings.service.data_dir, job) / row.file
    if not path.is_file():
        raise not_found("shot")
    return path


@router.get("/shots/{shot_id}/image", response_class=FileResponse, responses=PNG_DOC)
def shot_image(shot_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep):
    """One shot of a shoot or a placement: a PNG carrying its recipe (A1111 `parameters`)."""
    path = _shot_file(settings, session, merchant.id, shot_id)
    return FileResponse(path, media_type="image/png")


# -- the routes every kind has -----------------------------------------------------------------


@dataclass(frozen=True)
class JobRoutes:
    """One job kind's shared routes: `/v1/{plural}/{<kind>_id}`, `…/cancel`, `…/events` and
    `/v1/products/{product_id}/{plural}`; for a kind that delivers shots, `…/download` and
    `…/contact-sheet`."""

    job: JobKind  # the kind: its name, URL segment, folder, whether it delivers shots
    public: Callable[[Any, ApiSettings, Job], BaseModel]  # (session, settings, job) → body
    model: type[BaseModel]
    listing: type[BaseModel]
    events: str  # what its event stream carries (the events route's description)
    extras: tuple[str, ...] = ()  # files of its folder the zip adds to the shots
    per_product: bool = True  # listed per product (a catalogue shoot is of many: its own list)

    @property
    def kind(self) -> str:
        return self.job.name

    @property
    def path(self) -> str:
        return self.job.plural

    @property
    def label(self) -> str:
        return self.kind.capitalize()


ZIP_CHUNK = 1 << 20  # bytes read from a file, and at most held, per piece of the zip sent


class _Pipe(io.RawIOBase):
    """A write-only stream that holds what was written until `take()`: the zip's bytes, sent
    as they are made. Not seekable, so zipfile writes each entry's sizes after its data."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.pieces.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.pieces = b"".join(self.pieces), []
        return data


def _zip_pieces(files: list[tuple[Path, str]]) -> Iterator[bytes]:
    """The zip of `files` (path, name in the zip; stored), a piece at a time: the whole
    archive is never in memory, whatever the number and size of the shots."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_STORED) as archive:
        for path, name in files:
            try:
                info = zipfile.ZipInfo.from_file(path, name)  # its size and time
                source = path.open("rb")
            except OSError:  # gone since it was listed
                continue
            with source, archive.open(info, "w") as entry:
                while chunk := source.read(ZIP_CHUNK):
                    entry.write(chunk)
                    yield pipe.take()
    yield pipe.take()  # the central directory


def _zip(root: Path, rows: list[ShotRow], extras: list[Path], name: str) -> StreamingResponse:
    """The shots named as in their kind's folder `root` (a shoot's flat, a catalogue's in
    per-product folders), and `extras` by their own names; streamed (`_zip_pieces`)."""
    files = []
    for row in rows:
        png = root.parent / row.file
        files += [(path, path.relative_to(root).as_posix()) for path in (png, sidecar_path(png))]
    files += [(path, path.name) for path in extras]
    return StreamingResponse(
        _zip_pieces([(path, name) for path, name in files if path.is_file()]),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
    )


def add_job_routes(spec: JobRoutes) -> None:
    """Add `spec`'s shared routes to the router (their operation ids name the kind)."""
    kind = spec.kind
    JobId = Annotated[str, PathParam(alias=f"{kind}_id")]  # noqa: N806 - a type alias
    base = f"/{spec.path}/{{{kind}_id}}"

    def list_jobs(
        product_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
    ):
        product = get_product(session, merchant.id, product_id)
        jobs = session.scalars(
            select(Job)
            .where(Job.product_id == product.id, Job.kind == kind)
            .order_by(Job.created_at.desc(), Job.id)
        ).all()
        data = [spec.public(session, settings, j) for j in jobs]
        return spec.listing(data=data, count=len(data))

    def read_job(
        job_id: JobId, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
    ):
        return spec.public(session, settings, _job(session, merchant.id, job_id, kind))

    def cancel_job(
        job_id: JobId, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
    ):
        job = store.request_cancel(session, _job(session, merchant.id, job_id, kind))
        return spec.public(session, settings, job)

    def job_events(
        job_id: JobId,
        request: Request,
        session: SessionDep,
        merchant: CurrentMerchant,
        settings: SettingsDep,
    ):
        job = _job(session, merchant.id, job_id, kind)
        after = last_event_id(request)  # checked before a stream's lease is taken
        lease = _open_stream(session, settings, merchant.id)
        return _events_response(request, job, after, lease)

    def add(path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        # This module's annotations are strings (PEP 563), which FastAPI resolves in the
        # module's globals: the per-kind `JobId` is set as the object itself.
        if "job_id" in endpoint.__annotations__:
            endpoint.__annotations__["job_id"] = JobId
        router.add_api_route(path, endpoint, **options)

    if spec.per_product:
        add(
            f"/products/{{product_id}}/{spec.path}",
            inline_on_sqlite(list_jobs),
            methods=["GET"],
            response_model=spec.listing,
            responses=E,
            name=f"list_{spec.path}",
            summary=f"List {spec.path.capitalize()}",
            description=f"The product's {spec.path}, newest first.",
        )
    add(
        base,
        inline_on_sqlite(read_job),
        methods=["GET"],
        response_model=spec.model,
        responses=E,
        name=f"read_{kind}",
        summary=f"Read {spec.label}",
    )
    add(
        f"{base}/cancel",
        inline_on_sqlite(cancel_job),
        methods=["POST"],
        response_model=spec.model,
        responses=E409,
        name=f"cancel_{kind}",
        summary=f"Cancel {spec.label}",
        description=f"Cancel: a queued {kind} at once, a running one at its next step or shot.",
    )
    add(
        f"{base}/events",
        inline_on_sqlite(job_events),
        methods=["GET"],
        response_class=StreamingResponse,
        responses=SSE_DOC,
        name=f"{kind}_events",
        summary=f"{spec.label} Events",
        description=f"Server-sent events: {spec.events}; then `end` with the final status. "
        "Resumes after `Last-Event-ID`. A merchant may keep a few streams open at once "
        "(PACKSHOT_MAX_STREAMS_PER_MERCHANT): 429 past that.",
    )
    if spec.job.shots is None:
        return
    shots_dir = spec.job.out_dir

    def download(
        job_id: JobId, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
    ):
        job = _job(session, merchant.id, job_id, kind)
        root = store.job_dir(settings.service.data_dir, job)
        rows = list(session.scalars(select(ShotRow).where(ShotRow.job_id == job.id)))
        if not rows:
            raise ApiError(409, f"The {kind} is {job.status} and has no shots to download yet.")
        done = job.status == "succeeded"
        extras = [root / shots_dir / name for name in spec.extras] if done else []
        return _zip(root / shots_dir, rows, extras, job.id)

    def contact_sheet(
        job_id: JobId, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
    ):
        job = _job(session, merchant.id, job_id, kind)
        result = store.job_result(job)
        sheet = result.contact_sheet if result else None
        path = store.job_dir(settings.service.data_dir, job) / str(sheet) if sheet else None
        if path is None or not path.is_file():
            raise not_found("contact sheet")
        return FileResponse(path, media_type="image/png")

    def export(
        job_id: JobId,
        fmt: Annotated[ExportFormat, PathParam(alias="format")],
        session: SessionDep,
        merchant: CurrentMerchant,
        settings: SettingsDep,
        image_base_url: Annotated[str | None, Query(max_length=2000)] = None,
        profile: Annotated[str | None, Query(max_length=64)] = None,
    ):
        job = _job(session, merchant.id, job_id, kind)
        delivery = store.job_dir(settings.service.data_dir, job) / spec.job.out_dir / DELIVERY_DIR
        if not (delivery / REPORT_FILE).is_file():
            raise ApiError(
                409, f"The {kind} has no marketplace delivery: it was run without profiles."
            )
        # Written to a folder of its own and sent from there a piece at a time (a zip of a
        # catalogue's images need not fit in memory); the folder goes once it is sent.
        folder = Path(tempfile.mkdtemp(prefix="packshot-export-"))
        try:
            result = export_delivery(
                delivery, fmt, folder, image_base_url=image_base_url, profile=profile
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            result.path,
            media_type=EXPORT_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{job.id}-{result.path.name}"'},
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    add(
        f"{base}/exports/{{format}}",
        export,
        methods=["GET"],
        response_class=Response,
        responses=EXPORT_DOC,
        name=f"export_{kind}",
        summary=f"Export {spec.label} For The Shop",
        description="The marketplace delivery as a Shopify or WooCommerce product CSV, a Google "
        "Merchant Center feed (pass `image_base_url`: where the delivery folder is uploaded) or "
        "a zip of the images in per-product folders with the report.",
    )
    add(
        f"{base}/download",
        download,
        methods=["GET"],
        response_class=StreamingResponse,
        responses=ZIP_DOC,
        name=f"download_{kind}",
        summary=f"Download {spec.label}",
        description=f"The delivered shots as one zip (PNGs, sidecars, {', '.join(spec.extras)}).",
    )
    add(
        f"{base}/contact-sheet",
        contact_sheet,
        methods=["GET"],
        response_class=FileResponse,
        responses=PNG_DOC,
        name=f"{kind}_contact_sheet",
        summary=f"{spec.label} Contact Sheet",
    )


for _spec in (
    JobRoutes(
        KINDS["training"],
        lambda _session, settings, job: training_public(settings, job),
        TrainingPublic,
        TrainingsPublic,
        events="start, step (loss), checkpoint, sample (urls), resume, done",
    ),
    JobRoutes(
        KINDS["shoot"],
        lambda session, _settings, job: shoot_public(session, job),
        ShootPublic,
        ShootsPublic,
        events="shot (one per image), warning, done",
        extras=("shoot.json", "scores.json", "contact-sheet.png"),
    ),
    JobRoutes(
        KINDS["placement"],
        lambda session, _settings, job: placement_public(session, job),
        PlacementPublic,
        PlacementsPublic,
        events="cutout, loading, shot (one per image), warning, done",
        extras=("place.json", "scores.json", "contact-sheet.png", "product/cutout.png"),
    ),
):
    add_job_routes(_spec)
