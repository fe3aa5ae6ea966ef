"""Trainings and shoots: asynchronous jobs, created here and run by the worker.

Create returns the job at once (status queued); poll `GET`, follow `/events` (server-sent
events), or pass a `webhook`. Every lookup is scoped to the merchant of the key.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select

from packshot.api.deps import CurrentMerchant, SessionDep, SettingsDep, check_webhook
from packshot.api.errors import ApiError, not_found
from packshot.api.routes.products import get_product, photos_dir
from packshot.api.schemas import (
    ErrorPublic,
    FilePublic,
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
from packshot.jobs import store
from packshot.jobs.execute import MODEL_DIR, SHOTS_DIR, TRAINING_OPTIONS
from packshot.jobs.models import Job, Photo, ShotRow

router = APIRouter(prefix="/v1", tags=["jobs"])
E = {code: {"model": ErrorPublic} for code in (401, 404, 422, 429)}
E409 = {**E, 409: {"model": ErrorPublic}}
HIDDEN_MODEL_PARTS = {"checkpoints", "training-set"}  # big, or the merchant's own crops
SSE_POLL_S = 0.5
SSE_KEEPALIVE_S = 15.0


def _job(session: SessionDep, merchant_id: str, job_id: str, kind: str) -> Job:
    job = session.scalars(
        select(Job).where(Job.id == job_id, Job.merchant_id == merchant_id, Job.kind == kind)
    ).first()
    if job is None:
        raise not_found(kind)
    return job


def _error(job: Job) -> dict[str, str] | None:
    return dict(job.error) if job.error else None


# -- trainings --------------------------------------------------------------------------------


def model_files(settings: ApiSettings, job: Job) -> tuple[Path | None, dict[str, int]]:
    """The training's model folder (finished, else the run in progress) and its files' sizes.

    The run renames `model.partial` to `model` when it finishes, and prunes checkpoints as it
    goes: a listing that races with either is taken again from the folder that exists now.
    """
    root = store.job_dir(settings.service.data_dir, job)
    for _attempt in range(3):
        for folder in (root / MODEL_DIR, root / f"{MODEL_DIR}.partial"):
            if not folder.is_dir():
                continue
            try:
                files = {}
                for path in folder.rglob("*"):
                    relative = path.relative_to(folder)
                    parts = set(relative.parts)
                    if HIDDEN_MODEL_PARTS & parts or any(p.endswith(".tmp") for p in parts):
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
    result = job.result or {}
    return TrainingPublic(
        id=job.id,
        product_id=job.product_id,
        status=job.status,  # type: ignore[arg-type]
        progress=job.progress or {},
        error=_error(job),
        request=job.request or {},
        final_step=result.get("final_step"),
        final_loss=result.get("final_loss"),
        resumed_from=result.get("resumed_from"),
        files=files if job.status == "succeeded" else [f for f in files if "samples/" in f.name],
        samples=[f for f in files if f.name.startswith("samples/")],
        created_at=store.utc(job.created_at),
        started_at=store.utc(job.started_at),
        finished_at=store.utc(job.finished_at),
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
    if settings.models and body.model not in settings.models:
        raise ApiError(422, f"`model` must be one of {', '.join(settings.models)}.")
    request = body.model_dump(exclude_none=True, exclude={"webhook"})
    params: dict[str, Any] = {
        "photos_dir": str(photos_dir(settings, product.id).resolve()),
        "model": body.model,
        "class_word": product.class_name,
        "product": product.name,
        "preset": body.preset,
        "force": body.force,
    }
    params.update({k: v for k, v in request.items() if k in TRAINING_OPTIONS})
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


@router.get("/products/{product_id}/trainings", response_model=TrainingsPublic, responses=E)
def list_trainings(
    product_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
):
    product = get_product(session, merchant.id, product_id)
    jobs = session.scalars(
        select(Job)
        .where(Job.product_id == product.id, Job.kind == "training")
        .order_by(Job.created_at.desc(), Job.id)
    ).all()
    return TrainingsPublic(data=[training_public(settings, j) for j in jobs], count=len(jobs))


@router.get("/trainings/{training_id}", response_model=TrainingPublic, responses=E)
def read_training(
    training_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
):
    return training_public(settings, _job(session, merchant.id, training_id, "training"))


@router.post("/trainings/{training_id}/cancel", response_model=TrainingPublic, responses=E409)
def cancel_training(
    training_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
):
    """Cancel: a queued training at once, a running one at its next step."""
    job = store.request_cancel(session, _job(session, merchant.id, training_id, "training"))
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
    media = {".png": "image/png", ".json": "application/json", ".md": "text/markdown"}
    path = folder / name
    if not path.is_file():  # the run moved it (model.partial → model) since the listing
        path = store.job_dir(settings.service.data_dir, job) / MODEL_DIR / name
        if not path.is_file():
            raise not_found("file")
    return FileResponse(
        path,
        media_type=media.get(path.suffix, "application/octet-stream"),
        filename=path.name if path.suffix == ".safetensors" else None,
    )


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
            for prefix in (f"{MODEL_DIR}.partial/", f"{MODEL_DIR}/"):
                if path.startswith(prefix + "samples/"):
                    urls.append(f"/v1/trainings/{job.id}/files/{path.removeprefix(prefix)}")
        if urls:
            out["urls"] = urls
    return out


async def _event_stream(request: Request, job_id: str, after: int):
    db = request.app.state.db
    waited = 0.0
    while True:
        with db.session() as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            events = store.events_after(session, job_id, after)
            status = job.status
            for event in events:
                after = event.id
                payload = _event_public(job, event.data or {})
                yield f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(payload)}\n\n"
        if events:
            waited = 0.0
            continue
        if status in store.TERMINAL:
            yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(SSE_POLL_S)
        waited += SSE_POLL_S
        if waited >= SSE_KEEPALIVE_S:
            waited = 0.0
            yield ": keep-alive\n\n"


def _events_response(request: Request, job: Job) -> StreamingResponse:
    last = request.headers.get("last-event-id", "0")
    after = int(last) if last.isdigit() else 0
    return StreamingResponse(
        _event_stream(request, job.id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


SSE_DOC = {**E, 200: {"content": {"text/event-stream": {}}}}


@router.get("/trainings/{training_id}/events", response_class=StreamingResponse, responses=SSE_DOC)
def training_events(
    training_id: str, request: Request, session: SessionDep, merchant: CurrentMerchant
):
    """Server-sent events: start, step (loss), checkpoint, sample (urls), resume, done; then
    `end` with the final status. Resumes after `Last-Event-ID`."""
    return _events_response(request, _job(session, merchant.id, training_id, "training"))


# -- shoots -----------------------------------------------------------------------------------


def shoot_public(session: SessionDep, job: Job) -> ShootPublic:
    rows = session.scalars(
        select(ShotRow).where(ShotRow.job_id == job.id).order_by(ShotRow.file)
    ).all()
    shots = []
    for row in rows:
        info = row.info or {}
        scores = info.get("scores")
        shots.append(
            ShotPublic(
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
            )
        )
    result = job.result or {}
    return ShootPublic(
        id=job.id,
        product_id=job.product_id,
        training_id=(job.request or {}).get("training_id", ""),
        status=job.status,  # type: ignore[arg-type]
        progress=job.progress or {},
        error=_error(job),
        request=job.request or {},
        shots=shots,
        warnings=list(result.get("warnings", [])),
        download_url=f"/v1/shoots/{job.id}/download",
        contact_sheet_url=f"/v1/shoots/{job.id}/contact-sheet" if result else None,
        created_at=store.utc(job.created_at),
        started_at=store.utc(job.started_at),
        finished_at=store.utc(job.finished_at),
    )


@router.get("/presets", response_model=list[PresetPublic], responses=E)
def list_presets(merchant: CurrentMerchant):
    """The shot presets: studio on white, lifestyle, on a model, flat lay, …"""
    from packshot.shoot import load_presets

    return [
        PresetPublic(
            name=n, label=p.label, description=p.description, aspect=p.aspect, count=p.count
        )
        for n, p in load_presets().items()
    ]


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
    """Shoot product photos from descriptions with the product's trained model."""
    from packshot.shoot import load_presets

    product = get_product(session, merchant.id, product_id)
    check_webhook(settings, body.webhook)
    unknown = [p for p in body.presets if p not in load_presets()]
    if unknown:
        raise ApiError(
            422,
            f"Unknown shot preset(s) {', '.join(unknown)}; see GET /v1/presets.",
        )
    query = select(Job).where(
        Job.product_id == product.id, Job.kind == "training", Job.merchant_id == merchant.id
    )
    if body.training_id is not None:
        training = session.scalars(query.where(Job.id == body.training_id)).first()
        if training is None:
            raise not_found("training")
    else:
        training = session.scalars(
            query.where(Job.status == "succeeded").order_by(Job.finished_at.desc())
        ).first()
        if training is None:
            raise ApiError(409, "The product has no trained model yet: train it first.")
    if training.status != "succeeded":
        raise ApiError(409, f"Training {training.id} is {training.status}, not succeeded.")
    request = body.model_dump(exclude_none=True, exclude={"webhook"})
    request["training_id"] = training.id
    params = {k: v for k, v in request.items() if k not in ("training_id",)}
    params["model_dir"] = str(
        (store.job_dir(settings.service.data_dir, training) / MODEL_DIR).resolve()
    )
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


@router.get("/products/{product_id}/shoots", response_model=ShootsPublic, responses=E)
def list_shoots(product_id: str, session: SessionDep, merchant: CurrentMerchant):
    product = get_product(session, merchant.id, product_id)
    jobs = session.scalars(
        select(Job)
        .where(Job.product_id == product.id, Job.kind == "shoot")
        .order_by(Job.created_at.desc(), Job.id)
    ).all()
    return ShootsPublic(data=[shoot_public(session, j) for j in jobs], count=len(jobs))


@router.get("/shoots/{shoot_id}", response_model=ShootPublic, responses=E)
def read_shoot(shoot_id: str, session: SessionDep, merchant: CurrentMerchant):
    return shoot_public(session, _job(session, merchant.id, shoot_id, "shoot"))


@router.post("/shoots/{shoot_id}/cancel", response_model=ShootPublic, responses=E409)
def cancel_shoot(shoot_id: str, session: SessionDep, merchant: CurrentMerchant):
    job = store.request_cancel(session, _job(session, merchant.id, shoot_id, "shoot"))
    return shoot_public(session, job)


@router.get("/shoots/{shoot_id}/events", response_class=StreamingResponse, responses=SSE_DOC)
def shoot_events(shoot_id: str, request: Request, session: SessionDep, merchant: CurrentMerchant):
    """Server-sent events: shot (one per image), warning, done; then `end`."""
    return _events_response(request, _job(session, merchant.id, shoot_id, "shoot"))


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


@router.get(
    "/shots/{shot_id}/image",
    response_class=FileResponse,
    responses={**E, 200: {"content": {"image/png": {}}}},
)
def shot_image(shot_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep):
    """One shot: a PNG carrying its recipe (A1111 `parameters`)."""
    path = _shot_file(settings, session, merchant.id, shot_id)
    return FileResponse(path, media_type="image/png")


@router.get(
    "/shoots/{shoot_id}/contact-sheet",
    response_class=FileResponse,
    responses={**E, 200: {"content": {"image/png": {}}}},
)
def contact_sheet(
    shoot_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
):
    job = _job(session, merchant.id, shoot_id, "shoot")
    sheet = (job.result or {}).get("contact_sheet")
    path = store.job_dir(settings.service.data_dir, job) / str(sheet) if sheet else None
    if path is None or not path.is_file():
        raise not_found("contact sheet")
    return FileResponse(path, media_type="image/png")


@router.get(
    "/shoots/{shoot_id}/download",
    response_class=StreamingResponse,
    responses={**E, 200: {"content": {"application/zip": {}}}},
)
def download_shoot(
    shoot_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
):
    """The delivered shots as one zip (PNGs, sidecars, shoot.json, contact sheet, scores)."""
    job = _job(session, merchant.id, shoot_id, "shoot")
    root = store.job_dir(settings.service.data_dir, job)
    rows = session.scalars(select(ShotRow).where(ShotRow.job_id == job.id)).all()
    if not rows:
        raise ApiError(409, f"The shoot is {job.status} and has no shots to download yet.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for row in rows:
            png = root / row.file
            for path in (png, png.with_suffix(".json")):
                if path.is_file():
                    archive.write(path, path.name)
        for extra in ("shoot.json", "scores.json", "contact-sheet.png"):
            path = root / SHOTS_DIR / extra
            if path.is_file() and job.status == "succeeded":
                archive.write(path, extra)
    buffer.seek(0)
    return StreamingResponse(
        buffer,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{job.id}.zip"'},
    )
