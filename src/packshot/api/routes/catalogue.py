"""Catalogue shoots: many products, one shot list, one job (`POST /v1/catalogue-shoots`).

Each product without a succeeded training is trained inside the job first; each product's
failure is its own. The shared job routes (read, cancel, events, download, contact sheet) are
`jobs.add_job_routes`'; the list is the merchant's, not a product's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from packshot.api.deps import CurrentMerchant, SessionDep, SettingsDep, check_webhook
from packshot.api.errors import ApiError
from packshot.api.routes.jobs import (
    E409,
    E,
    JobRoutes,
    _error,
    _model_dir,
    _shots,
    _times,
    add_job_routes,
    check_fair_use,
    check_model,
    check_reference_model,
    delivery_public,
    succeeded_training,
)
from packshot.api.routes.products import get_product, photos_dir
from packshot.api.schemas import (
    CatalogueProductPublic,
    CatalogueShootCreate,
    CatalogueShootPublic,
    CatalogueShootsPublic,
    CatalogueShotPublic,
)
from packshot.api.settings import ApiSettings
from packshot.artifacts.catalogue import CatalogueProduct, handle_for
from packshot.artifacts.product_model import ProductModel
from packshot.jobs import store
from packshot.jobs.kinds import KINDS, CatalogueParams
from packshot.jobs.models import Job, JobEvent, Photo
from packshot.shoot.shotlist import ShotList

KIND = KINDS["catalogue"]
router = APIRouter(prefix="/v1", tags=["jobs"])


def catalogue_public(session: SessionDep, job: Job) -> CatalogueShootPublic:
    """The job with each product's state: from its outcome when finished, else from the
    latest `product` event of the run (queued before its first)."""
    params = job.params or {}
    product_ids = (job.request or {}).get("product_ids", [])
    result = store.job_result(job)
    outcomes = {o.handle: o for o in result.products} if result else {}
    compliance = (result.delivery or {}).get("products", {}) if result else {}
    latest: dict[str, dict[str, Any]] = {}
    if result is None:
        events = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.type == "product")
        )
        for event in events:
            data = (event.data or {}).get("data") or {}
            latest[data.get("product", "")] = data
    products = []
    for product_id, product in zip(product_ids, params.get("products", []), strict=False):
        handle = product["handle"]
        outcome = outcomes.get(handle)
        if outcome is not None:
            state: dict[str, Any] = {
                "status": outcome.status,
                "error": outcome.error,
                "verdict": outcome.verdict,
                "trained": outcome.route == "trained",
                "route": outcome.route,
                "images": len(outcome.images or []),
                "product_missing": len(outcome.product_missing or []),
                "compliance": compliance.get(handle, {}),
            }
        else:
            seen = latest.get(handle, {})
            state = {"status": seen.get("status", "queued"), "error": seen.get("error")}
        products.append(
            CatalogueProductPublic(
                product_id=product_id, handle=handle, name=product["name"], **state
            )
        )
    return CatalogueShootPublic(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        progress=job.progress or {},
        error=_error(job),
        request=job.request or {},
        products=products,
        shots=_shots(session, job, CatalogueShotPublic),
        cost=result.cost if result else {},
        download_url=f"/v1/{KIND.plural}/{job.id}/download",
        contact_sheet_url=f"/v1/{KIND.plural}/{job.id}/contact-sheet"
        if result and result.contact_sheet
        else None,
        delivery=delivery_public(KIND, job, result.delivery if result else None),
        **_times(job),
    )


@router.post(
    f"/{KIND.plural}", response_model=CatalogueShootPublic, status_code=201, responses=E409
)
def create_catalogue_shoot(
    body: CatalogueShootCreate,
    session: SessionDep,
    merchant: CurrentMerchant,
    settings: SettingsDep,
):
    """Shoot the shot list of every product named: products without a succeeded training are
    trained first (on their photos), or with `instant` shot from their best photos as
    reference images; the others shot with their latest model. One product's failure (photos
    not enough, a refused training) is reported for that product only."""
    check_webhook(settings, body.webhook)
    shots = [entry.model_dump(exclude_none=True) for entry in body.shots]
    shot_list = ShotList.from_dict({"shots": shots}, where="`shots`")
    request = body.model_dump(exclude_none=True, exclude={"webhook"})
    values = {k: v for k, v in request.items() if k not in ("product_ids", "shots")}
    params = CatalogueParams(products=[], shots=list(shot_list.shots), **values)
    if params.instant:  # refused here where the web process can tell, else by the job at once
        check_reference_model(params.base_model())
        for field in ("max_train_steps", "preset"):
            if field in body.model_fields_set and getattr(body, field) is not None:
                raise ApiError(422, f"`{field}` is for trainings: `instant` trains nothing.")
    check_model(settings, params.base_model(), "model")
    if len(set(body.product_ids)) != len(body.product_ids):
        raise ApiError(422, "`product_ids` names a product twice: name each once.")
    products = [
        _catalogue_product(session, settings, merchant.id, product_id)
        for product_id in body.product_ids
    ]
    if settings.models:  # the models the products were trained on are still offered
        for product in products:
            if product.model_dir is not None:
                base = ProductModel.load(product.model_dir).base_model
                check_model(settings, base, f"model of {product.name}")
    images = shot_list.images_per_product * len(products)
    check_fair_use(session, settings, merchant.id, "catalogue shoot", images)
    params = replace(params, products=_unique_handles(products))
    job = store.enqueue(
        session,
        merchant_id=merchant.id,
        product_id=None,
        kind=KIND.name,
        params=params,
        request=request,
        webhook=body.webhook,
        prefix="cat",
    )
    return catalogue_public(session, job)


def _catalogue_product(
    session: SessionDep, settings: ApiSettings, merchant_id: str, product_id: str
) -> CatalogueProduct:
    """A product as the job carries it: its photos folder (when it has photos) and its latest
    succeeded training's model (when it has one)."""
    product = get_product(session, merchant_id, product_id)
    training = succeeded_training(session, merchant_id, product, None)
    has_photos = session.scalars(select(Photo.id).where(Photo.product_id == product.id)).first()
    return CatalogueProduct(
        handle=handle_for(product.name),
        name=product.name,
        class_word=product.class_name,
        photos_dir=str(photos_dir(settings, product.id).resolve()) if has_photos else None,
        model_dir=_model_dir(settings, training) if training is not None else None,
    )


def _unique_handles(products: list[CatalogueProduct]) -> list[CatalogueProduct]:
    """Two products of one name get handles of their own: `mug`, `mug-2`."""
    seen: set[str] = set()
    unique = []
    for product in products:
        handle, number = product.handle, 1
        while handle in seen:
            number += 1
            handle = f"{product.handle}-{number}"
        seen.add(handle)
        unique.append(replace(product, handle=handle))
    return unique


@router.get(f"/{KIND.plural}", response_model=CatalogueShootsPublic, responses=E)
def list_catalogue_shoots(session: SessionDep, merchant: CurrentMerchant):
    """The merchant's catalogue shoots, newest first."""
    jobs = session.scalars(
        select(Job)
        .where(Job.merchant_id == merchant.id, Job.kind == KIND.name)
        .order_by(Job.created_at.desc(), Job.id)
    ).all()
    data = [catalogue_public(session, job) for job in jobs]
    return CatalogueShootsPublic(data=data, count=len(data))


add_job_routes(
    JobRoutes(
        KIND,
        lambda session, _settings, job: catalogue_public(session, job),
        CatalogueShootPublic,
        CatalogueShootsPublic,
        events="product (each product's state: running, done, failed), the trainings' and "
        "shoots' events (`product` names whose), done",
        extras=("catalogue.json", "contact-sheet.png"),
        per_product=False,
    )
)
