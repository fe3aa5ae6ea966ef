"""Products, their photos (uploaded as judged by intake) and the photo-set report."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from packshot.api import judging
from packshot.api.deps import (
    CurrentMerchant,
    SessionDep,
    SettingsDep,
    inline_on_sqlite,
    run_intake,
)
from packshot.api.errors import ApiError, not_found
from packshot.api.schemas import (
    ErrorPublic,
    PhotoPublic,
    PhotosPublic,
    ProductCreate,
    ProductPublic,
    ProductsPublic,
    UploadPublic,
    UploadResult,
)
from packshot.api.settings import ApiSettings
from packshot.api.uploads import check_pixel_budget, read_files
from packshot.errors import PhotoSetError
from packshot.jobs import store
from packshot.jobs.models import Job, Photo, Product, new_id
from packshot.jobs.store import TERMINAL

router = APIRouter(prefix="/v1", tags=["products"])
E = {code: {"model": ErrorPublic} for code in (401, 404, 422, 429)}

PHOTOS_DIR = "photos"
REPORT_CACHE = "report.json"


def get_product(session: SessionDep, merchant_id: str, product_id: str) -> Product:
    product = session.scalars(
        select(Product).where(Product.id == product_id, Product.merchant_id == merchant_id)
    ).first()
    if product is None:
        raise not_found("product")
    return product


def photos_dir(settings: ApiSettings, product_id: str) -> Path:
    return store.product_dir(settings.service.data_dir, product_id) / PHOTOS_DIR


def _photo_count(session: SessionDep, product_id: str) -> int:
    return session.scalar(select(func.count()).where(Photo.product_id == product_id)) or 0


def _check_room(have: int, adding: int, most: int) -> None:
    if have + adding > most:
        raise ApiError(
            409,
            f"The product has {have} photos and may have {most}: send at most "
            f"{max(0, most - have)} more.",
        )


def _product_public(
    session: SessionDep, product: Product, photo_count: int | None = None
) -> ProductPublic:
    return ProductPublic(
        id=product.id,
        name=product.name,
        class_name=product.class_name,
        photo_count=_photo_count(session, product.id) if photo_count is None else photo_count,
        created_at=store.utc(product.created_at),
    )


def _photo_public(photo: Photo) -> PhotoPublic:
    return PhotoPublic(
        id=photo.id,
        file_name=photo.file_name,
        width=photo.width,
        height=photo.height,
        warnings=list(photo.warnings or []),
        url=f"/v1/photos/{photo.id}/image",
        created_at=store.utc(photo.created_at),
    )


@router.post("/products", response_model=ProductPublic, status_code=201, responses=E)
@inline_on_sqlite
def create_product(body: ProductCreate, session: SessionDep, merchant: CurrentMerchant):
    """Create a product: its name and class word ("headphones")."""
    product = Product(
        id=new_id("prd"), merchant_id=merchant.id, name=body.name, class_name=body.class_name
    )
    session.add(product)
    session.commit()
    return _product_public(session, product, photo_count=0)


@router.get("/products", response_model=ProductsPublic, responses=E)
@inline_on_sqlite
def list_products(session: SessionDep, merchant: CurrentMerchant):
    """The merchant's products, newest first."""
    photos = (
        select(func.count(Photo.id))
        .where(Photo.product_id == Product.id)
        .correlate(Product)
        .scalar_subquery()
    )
    rows = session.execute(  # one query, not one count per product
        select(Product, photos)
        .where(Product.merchant_id == merchant.id)
        .order_by(Product.created_at.desc(), Product.id)
    ).all()
    data = [_product_public(session, product, count) for product, count in rows]
    return ProductsPublic(data=data, count=len(data))


@router.get("/products/{product_id}", response_model=ProductPublic, responses=E)
@inline_on_sqlite
def read_product(product_id: str, session: SessionDep, merchant: CurrentMerchant):
    return _product_public(session, get_product(session, merchant.id, product_id))


@router.delete(
    "/products/{product_id}", status_code=204, responses={**E, 409: {"model": ErrorPublic}}
)
def delete_product(
    product_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
) -> Response:
    """Delete a product with its photos, trainings, shoots and all their files."""
    product = get_product(session, merchant.id, product_id)
    jobs = session.scalars(select(Job).where(Job.product_id == product.id)).all()
    active = [job.id for job in jobs if job.status not in TERMINAL]
    # A catalogue shoot belongs to no one product: those still to run name it in their request.
    catalogues = session.scalars(
        select(Job).where(
            Job.merchant_id == merchant.id,
            Job.kind == "catalogue",
            Job.status.not_in(TERMINAL),
        )
    )
    active += [j.id for j in catalogues if product.id in (j.request or {}).get("product_ids", [])]
    if active:
        raise ApiError(
            409,
            f"The product has {len(active)} queued or running job(s) ({', '.join(active)}): "
            "cancel them, then delete it.",
        )
    folders = [store.job_dir(settings.service.data_dir, job) for job in jobs]
    folders.append(store.product_dir(settings.service.data_dir, product.id))
    session.delete(product)
    session.commit()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return Response(status_code=204)


# -- photos -----------------------------------------------------------------------------------

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["files"],
                }
            }
        },
    }
}


@router.post(
    "/products/{product_id}/photos",
    response_model=UploadPublic,
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses={
        **E,
        409: {"model": ErrorPublic},
        413: {"model": ErrorPublic},
        415: {"model": ErrorPublic},
    },
)
async def upload_photos(
    product_id: str,
    request: Request,
    session: SessionDep,
    merchant: CurrentMerchant,
    settings: SettingsDep,
):
    """Upload photos (multipart, `files` parts): each accepted with an id, or rejected with
    intake's reason. Size limits apply while the bytes arrive (413)."""
    # The database is used on threads (never blocking the event loop), and no connection is
    # held while the body arrives at the client's pace or while intake judges it.
    have = await run_in_threadpool(_room_before_upload, session, merchant.id, product_id, settings)
    files = await read_files(request, settings.max_file_bytes, settings.max_request_bytes)
    _check_room(have, len(files), settings.max_photos)
    check_pixel_budget(files, settings.max_upload_megapixels)
    folder = photos_dir(settings, product_id)
    try:
        results = await run_intake(request, judging.judge_and_store, files, folder, settings)
    except PhotoSetError as exc:  # nothing but hidden/system files
        raise ApiError(422, " ".join(str(exc).split())) from None
    return await run_in_threadpool(
        _record_upload, session, merchant.id, product_id, results, folder, settings
    )


def _room_before_upload(
    session: SessionDep, merchant_id: str, product_id: str, settings: ApiSettings
) -> int:
    product = get_product(session, merchant_id, product_id)
    have = _photo_count(session, product.id)
    session.commit()  # hands the connection back to the pool
    if have >= settings.max_photos:
        raise ApiError(409, f"The product already has {have} photos, the most it may have.")
    return have


def _record_upload(
    session: SessionDep,
    merchant_id: str,
    product_id: str,
    results: list[dict[str, Any]],
    folder: Path,
    settings: ApiSettings,
) -> UploadPublic:
    """The accepted photos' rows (their files are stored already), and the per-file results.

    Intake took its time: the product may be gone (deleted meanwhile: 404), or full (another
    upload landed: 409). Either way the stored files go, and nothing of the upload is kept."""
    stored = [item["id"] for item in results if item["status"] == "accepted"]
    photos: dict[str, Photo] = {}
    try:
        get_product(session, merchant_id, product_id)
        _check_room(_photo_count(session, product_id), len(stored), settings.max_photos)
        for item in results:
            if item["status"] == "accepted":
                photos[item["id"]] = Photo(
                    id=item["id"],
                    merchant_id=merchant_id,
                    product_id=product_id,
                    file_name=item["file_name"],
                    width=item["width"],
                    height=item["height"],
                    sha256=item["sha256"],
                    warnings=item["warnings"],
                )
                session.add(photos[item["id"]])
        session.commit()
    except (ApiError, IntegrityError) as exc:  # IntegrityError: deleted since the check
        session.rollback()
        for photo_id in stored:
            (folder / f"{photo_id}.png").unlink(missing_ok=True)
        if session.get(Product, product_id) is None:  # the delete took its folder before
            shutil.rmtree(store.product_dir(settings.service.data_dir, product_id), True)
        if isinstance(exc, ApiError):
            raise
        raise not_found("product") from None
    out: list[UploadResult] = []
    for item in results:
        if item["status"] == "accepted":
            out.append(
                UploadResult(
                    file_name=item["file_name"],
                    status="accepted",
                    photo=_photo_public(photos[item["id"]]),
                )
            )
        else:
            out.append(UploadResult(**item))
    (store.product_dir(settings.service.data_dir, product_id) / REPORT_CACHE).unlink(
        missing_ok=True
    )
    accepted = sum(r.status == "accepted" for r in out)
    return UploadPublic(
        results=out,
        accepted=accepted,
        rejected=len(out) - accepted,
        photo_count=_photo_count(session, product_id),
    )


@router.get("/products/{product_id}/photos", response_model=PhotosPublic, responses=E)
@inline_on_sqlite
def list_photos(product_id: str, session: SessionDep, merchant: CurrentMerchant):
    product = get_product(session, merchant.id, product_id)
    photos = session.scalars(
        select(Photo).where(Photo.product_id == product.id).order_by(Photo.created_at, Photo.id)
    ).all()
    return PhotosPublic(data=[_photo_public(p) for p in photos], count=len(photos))


def _own_photo(session: SessionDep, merchant_id: str, photo_id: str) -> Photo:
    photo = session.scalars(
        select(Photo).where(Photo.id == photo_id, Photo.merchant_id == merchant_id)
    ).first()
    if photo is None:
        raise not_found("photo")
    return photo


@router.get(
    "/photos/{photo_id}/image",
    response_class=FileResponse,
    responses={**E, 200: {"content": {"image/png": {}}}},
)
def photo_image(
    photo_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
):
    """The stored photo (as re-encoded on upload: PNG)."""
    photo = _own_photo(session, merchant.id, photo_id)
    path = photos_dir(settings, photo.product_id) / f"{photo.id}.png"
    if not path.is_file():
        raise not_found("photo")
    return FileResponse(path, media_type="image/png")


@router.delete("/photos/{photo_id}", status_code=204, responses={**E, 409: {"model": ErrorPublic}})
def delete_photo(
    photo_id: str, session: SessionDep, merchant: CurrentMerchant, settings: SettingsDep
) -> Response:
    """Delete a photo (not while a queued or running placement takes its product from it)."""
    photo = _own_photo(session, merchant.id, photo_id)
    placing = session.scalars(
        select(Job).where(
            Job.product_id == photo.product_id,
            Job.kind == "placement",
            Job.status.not_in(TERMINAL),
        )
    ).all()
    if any((job.request or {}).get("photo_id") == photo.id for job in placing):
        raise ApiError(
            409,
            "A placement is taking the product from this photo right now: delete the photo "
            "once it is done, or cancel it first.",
        )
    (photos_dir(settings, photo.product_id) / f"{photo.id}.png").unlink(missing_ok=True)
    (store.product_dir(settings.service.data_dir, photo.product_id) / REPORT_CACHE).unlink(
        missing_ok=True
    )
    session.delete(photo)
    session.commit()
    return Response(status_code=204)


@router.get("/products/{product_id}/report", response_model=dict[str, Any], responses=E)
async def photo_report(
    product_id: str,
    request: Request,
    session: SessionDep,
    merchant: CurrentMerchant,
    settings: SettingsDep,
):
    """The photo-set report: verdict (ready, usable, not enough), advice, per-photo findings."""
    photos = await run_in_threadpool(_product_photos, session, merchant.id, product_id)
    if not photos:
        return {
            "verdict": "not enough",
            "advice": ["Upload 5–40 photos of the product: more angles, one product."],
            "accepted": [],
            "rejected": [],
            "skipped": [],
            "duplicates": [],
            "shared": [],
            "counts": {"accepted": 0},
        }
    key = hashlib.sha256("|".join(p.id for p in photos).encode()).hexdigest()
    cache = store.product_dir(settings.service.data_dir, product_id) / REPORT_CACHE
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return cached["report"]
    except (OSError, ValueError):
        pass
    named = [(p.id, p.file_name) for p in photos]
    report = await run_intake(
        request, judging.report, named, photos_dir(settings, product_id), settings
    )
    report.pop("directory", None)  # a server path: not the merchant's business
    buffer = io.StringIO()
    json.dump({"key": key, "report": report}, buffer)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(buffer.getvalue(), encoding="utf-8")
    return report


def _product_photos(session: SessionDep, merchant_id: str, product_id: str) -> list[Photo]:
    product = get_product(session, merchant_id, product_id)
    photos = list(
        session.scalars(
            select(Photo).where(Photo.product_id == product.id).order_by(Photo.created_at, Photo.id)
        )
    )
    session.commit()  # no connection held while intake judges the set
    return photos
