"""Request and response bodies (`XCreate` in, `XPublic` out), as the OpenAPI schema shows them."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from packshot.deliver.profiles import get_profiles, load_profiles
from packshot.errors import UsageError
from packshot.models.families import INSTANT_MODEL, TRAINING_MODEL
from packshot.models.names import is_model_name
from packshot.shoot.plan import (
    JOB_MAX_BEST,
    JOB_MAX_COUNT,
    JOB_MAX_DESCRIPTIONS,
    JOB_MAX_PRESETS,
    LIMITS,
    MAX_FIRST_SEED,
)
from packshot.shoot.sizes import ASPECTS

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
# Text direction controls (embeddings, overrides, isolates): in a name they can make the text
# read otherwise than it is stored ("gpj.exe" shown as "exe.jpg").
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorPublic(BaseModel):
    error: ErrorBody


class WebhookField(Strict):
    webhook: str | None = Field(
        None,
        max_length=2000,
        description="An http(s) URL that receives the job on start, progress and completion.",
    )

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^\s/$.?#][^\s]*$", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


# -- session ----------------------------------------------------------------------------------


class SessionCreate(Strict):
    key: str = Field(..., min_length=1, max_length=200, description="The merchant's API key.")


class MerchantPublic(BaseModel):
    id: str
    name: str


class SessionPublic(BaseModel):
    merchant: MerchantPublic
    csrf_token: str | None = Field(
        None, description="Send it as X-CSRF-Token on every POST/DELETE made with the cookie."
    )
    webhook_secret: str = Field(..., description="Verifies the webhook-signature header.")


# -- products and photos ----------------------------------------------------------------------


class ProductCreate(Strict):
    name: str = Field(..., min_length=1, max_length=200, description='e.g. "bose headphones"')
    class_name: str = Field(
        ..., min_length=1, max_length=100, description='The kind of product, e.g. "headphones".'
    )

    @field_validator("name", "class_name")
    @classmethod
    def _words(cls, value: str) -> str:
        if any(c in BIDI_CONTROLS for c in value):
            raise ValueError("must not contain text direction controls (U+202A-202E, 2066-2069)")
        # Other invisible format characters (zero-width spaces and joiners, BOM, soft hyphen)
        # are dropped: two names that look the same are the same.
        value = "".join(c for c in value if unicodedata.category(c) != "Cf")
        value = " ".join(value.split())
        if not value:
            raise ValueError("must not be blank")
        if any(unicodedata.category(c) == "Cc" for c in value):
            raise ValueError("must not contain control characters")
        return value


class ProductPublic(BaseModel):
    id: str
    name: str
    class_name: str
    photo_count: int
    created_at: datetime


class ProductsPublic(BaseModel):
    data: list[ProductPublic]
    count: int


class PhotoPublic(BaseModel):
    id: str
    file_name: str
    width: int
    height: int
    warnings: list[str]
    url: str
    created_at: datetime


class PhotosPublic(BaseModel):
    data: list[PhotoPublic]
    count: int


class UploadResult(BaseModel):
    file_name: str
    status: Literal["accepted", "rejected", "skipped"]
    photo: PhotoPublic | None = None
    reason: str | None = None
    message: str | None = None


class UploadPublic(BaseModel):
    results: list[UploadResult]
    accepted: int
    rejected: int
    photo_count: int


# -- jobs -------------------------------------------------------------------------------------


class Progress(BaseModel):
    model_config = ConfigDict(extra="allow")
    stage: str | None = None
    done: int | None = None
    total: int | None = None
    message: str = ""


class JobError(BaseModel):
    code: str
    message: str


class DeliversFields(Strict):
    """What every request that shoots may add: the marketplaces its images are delivered to."""

    profiles: list[str] = Field(
        [],
        max_length=10,
        description="Then deliver every image to these marketplace profiles (GET "
        f"/v1/marketplaces): {', '.join(load_profiles())}. Each image is checked against "
        "each profile's rules, fixed where that is honest, and its verdicts listed as `badges`; "
        "the delivery is exported for the shop at `…/exports/{format}`.",
    )

    @field_validator("profiles")
    @classmethod
    def _profiles(cls, value: list[str]) -> list[str]:
        if not value:
            return []
        try:
            return [profile.name for profile in get_profiles(value)]
        except UsageError as error:  # names the profiles there are
            raise ValueError(str(error)) from None


class TrainsFields(WebhookField):
    """What every request that trains gives: the base model and a training preset."""

    model: str = Field(
        TRAINING_MODEL,
        max_length=200,
        description="Base model: a Hugging Face Hub id, or tiny / tiny-sdxl (test stand-ins).",
    )
    preset: Literal["quick", "standard", "best"] = "standard"

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not is_model_name(value):
            raise ValueError("must be a Hugging Face Hub id (owner/name) or tiny / tiny-sdxl")
        return value


class TrainingCreate(TrainsFields):
    """A training: a preset, and the `TrainConfig` fields to set over it (its names)."""

    max_train_steps: int | None = Field(None, ge=1, le=20000, description="Training steps.")
    resolution: int | None = Field(None, ge=64, le=2048, multiple_of=8)
    buckets: bool | None = Field(
        None, description="Each photo trains at its own aspect (default); false: square crops."
    )
    rank: int | None = Field(None, ge=1, le=256)
    learning_rate: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    token: str | None = Field(None, pattern=r"^[a-z]{2,12}$", description="Default sks.")
    checkpointing_steps: int | None = Field(
        None, ge=0, le=20000, description="A resumable checkpoint every N steps (0: never)."
    )
    validation_steps: int | None = Field(
        None, ge=0, le=20000, description="Sample shots every N steps (0: only at the end)."
    )
    with_prior_preservation: bool | None = None
    train_text_encoder: bool | None = None
    background_weight: float | None = Field(None, ge=0, le=1)
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] | None = None
    force: bool = Field(False, description='Train on a photo set judged "not enough".')


class FilePublic(BaseModel):
    name: str
    url: str
    size: int


class TrainingPublic(BaseModel):
    id: str
    product_id: str
    status: JobStatus
    progress: Progress
    error: JobError | None
    request: dict[str, Any]
    final_step: int | None = None
    final_loss: float | None = None
    resumed_from: int | None = None
    files: list[FilePublic] = []
    samples: list[FilePublic] = []
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingsPublic(BaseModel):
    data: list[TrainingPublic]
    count: int


class SceneFields(WebhookField):
    """What shoots and placements share: descriptions x shot presets x count, and how to
    render, in the core's names (`ShootRequest`, `PlaceRequest`)."""

    descriptions: list[str] = Field(
        ...,
        min_length=1,
        max_length=JOB_MAX_DESCRIPTIONS,
        description='What to shoot, e.g. "{product} on a marble table".',
    )
    presets: list[str] = Field(
        [], max_length=JOB_MAX_PRESETS, description="Shot presets (see /v1/presets)."
    )
    count: int | None = Field(
        None, ge=1, le=JOB_MAX_COUNT, description="Shots per description and preset."
    )
    aspect: str | None = Field(None, description="1:1, 4:5, 3:4, 16:9 or 9:16.")
    seed: int | None = Field(None, ge=0, le=MAX_FIRST_SEED)
    num_inference_steps: int | None = Field(
        None,
        ge=LIMITS["num_inference_steps"][0],
        le=LIMITS["num_inference_steps"][1],
        description="Sampling steps.",
    )
    guidance_scale: float | None = Field(
        None, ge=LIMITS["guidance_scale"][0], le=LIMITS["guidance_scale"][1]
    )
    negative_prompt: str | None = Field(None, max_length=1000)

    @field_validator("descriptions")
    @classmethod
    def _descriptions(cls, value: list[str]) -> list[str]:
        cleaned = [" ".join(v.split()) for v in value]
        for text in cleaned:
            if not text:
                raise ValueError("a description must not be blank")
            if len(text) > 500:
                raise ValueError("a description must be at most 500 characters")
        return cleaned

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, value: str | None) -> str | None:
        if value is not None and value not in ASPECTS:
            raise ValueError(f"must be one of {', '.join(ASPECTS)}")
        return value


class ShootCreate(SceneFields, DeliversFields):
    mode: Literal["trained", "instant"] = Field(
        "trained",
        description="trained: the product's trained model draws it; instant: no training, the "
        "best 1-4 of the product's photos go as reference images to `model` (FLUX.2 [klein]).",
    )
    training_id: str | None = Field(
        None, max_length=60, description="Which model; default: the product's latest training."
    )
    base: str | None = Field(
        None,
        max_length=200,
        description="instant: a base model that takes reference images (a Hugging Face Hub id, "
        f"or tiny-flux2, the test stand-in). Default: {INSTANT_MODEL}.",
    )

    @field_validator("base")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        if value is not None and not is_model_name(value):
            raise ValueError("must be a Hugging Face Hub id (owner/name) or tiny-flux2")
        return value

    best: int | None = Field(
        None, ge=1, le=JOB_MAX_BEST, description="Render 2K candidates, keep K best."
    )
    judge: bool = Field(True, description="Score the shots and flag those without the product.")


class PlacementCreate(SceneFields, DeliversFields):
    """Pixel-true mode: the product cut out of one of its photos, a scene generated around it."""

    photo_id: str = Field(
        ...,
        max_length=60,
        description="One of the product's photos (GET /v1/products/{id}/photos): the product "
        "is cut out of it, and every pixel of it is kept.",
    )
    keep_framing: bool = Field(
        False,
        description="Keep the photo's own framing: the product stays where and as large as it "
        "is, only the background is replaced (no `aspect` then).",
    )
    model: str | None = Field(
        None,
        max_length=200,
        description="The inpainting model: a Hugging Face Hub id, or tiny-inpaint (the test "
        "stand-in). Default: SDXL inpainting, or the one of the training's family.",
    )
    training_id: str | None = Field(
        None,
        max_length=60,
        description="Optional: a succeeded training of this product, whose LoRA and words "
        "shape the scene and whose photos judge the shots.",
    )

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None and not is_model_name(value):
            raise ValueError("must be a Hugging Face Hub id (owner/name) or tiny-inpaint")
        return value


class ScoresPublic(BaseModel):
    dino: float | None = None
    clip_i: float | None = None
    clip_t: float | None = None
    present: bool | None = None
    flags: list[str] = []


class BadgePublic(BaseModel):
    """One marketplace profile's verdict on one image."""

    profile: str
    label: str
    status: Literal["pass", "fixed", "warn", "fail"]
    title: str = Field(..., description="Why it fails or warns; else what was fixed.")


class ShotPublic(BaseModel):
    id: str
    url: str
    preset: str | None = None
    description: str | None = None
    prompt: str | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    scores: ScoresPublic | None = None
    product_missing: bool = False
    badges: list[BadgePublic] | None = Field(
        None, description="With `profiles`, once delivered: each profile's verdict on it."
    )


class DeliveryPublic(BaseModel):
    """A job's marketplace delivery (`delivery/` in its output folder)."""

    profiles: list[str]
    compliance: dict[str, dict[str, int]] = Field(
        ..., description="Per marketplace profile, its images by verdict: pass, fixed, warn, fail."
    )
    exports: dict[str, str] = Field(
        ...,
        description="Each export's URL by format: zip as it is (the images in per-product "
        "folders and the report); shopify, woocommerce and google with `image_base_url`, the "
        "address the zip's folders are uploaded to, and optionally `profile` (whose images).",
    )


class ShootPublic(BaseModel):
    id: str
    product_id: str
    training_id: str
    status: JobStatus
    progress: Progress
    error: JobError | None
    request: dict[str, Any]
    shots: list[ShotPublic]
    warnings: list[str] = []
    download_url: str
    contact_sheet_url: str | None = None
    delivery: DeliveryPublic | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ShootsPublic(BaseModel):
    data: list[ShootPublic]
    count: int


class PlacementBox(BaseModel):
    """Where the product sits on the output (px), and how much it was scaled."""

    x: int
    y: int
    width: int
    height: int
    scale: float


class PlacedShotPublic(ShotPublic):
    composition: str | None = None
    placement: PlacementBox | None = None


class CutoutPublic(BaseModel):
    source: str = Field(..., description="mask, alpha, model (background removal) or grabcut")
    share: float | None = Field(None, description="The product's share of the photo.")
    url: str = Field(..., description="The cut-out product as a transparent PNG.")


class PlacementPublic(BaseModel):
    id: str
    product_id: str
    photo_id: str
    training_id: str | None = None
    status: JobStatus
    progress: Progress
    error: JobError | None
    request: dict[str, Any]
    shots: list[PlacedShotPublic]
    cutout: CutoutPublic | None = None
    warnings: list[str] = []
    download_url: str
    contact_sheet_url: str | None = None
    delivery: DeliveryPublic | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class PlacementsPublic(BaseModel):
    data: list[PlacementPublic]
    count: int


class MarketplacePublic(BaseModel):
    """A marketplace profile (`presets/marketplaces.json`) a shoot may deliver to."""

    name: str
    label: str
    source: str = Field(..., description="The marketplace's page of image rules.")
    generated: Literal["ok", "warn", "fail"] = Field(
        ...,
        description="What an image the model drew gets: ok, warn, or fail (only a pixel-true "
        "placement, the product's own pixels, is eligible).",
    )
    generated_rule: str | None = Field(None, description="What the marketplace says of it.")
    white_background: bool


class BaseModelPublic(BaseModel):
    """A base model a merchant may pick for a training or instant shots (`GET /v1/models`)."""

    id: str = Field(..., description="The Hugging Face Hub id (or a built-in stand-in's alias).")
    family: str | None = Field(None, description="Its model family; null: not known here.")
    label: str = Field(..., description="What it is and what it needs, for people.")
    trains: bool = Field(..., description="packshot trains product models on it.")
    takes_references: bool = Field(
        ..., description="It takes reference photos: instant shots, with no training."
    )
    training_steps: dict[str, int] = Field(
        default_factory=dict,
        description="Each training preset's steps on this model (quick, standard, best).",
    )


class BaseModelsPublic(BaseModel):
    training_default: str = Field(..., description="A training's base model when none is named.")
    instant_default: str = Field(..., description="Instant shots' model when none is named.")
    data: list[BaseModelPublic] = Field(
        ...,
        description="The models to suggest: the operator's allowed ones (PACKSHOT_MODELS) when "
        "set, else packshot's suggestions, the training default first. Any Hub id works "
        "unless the operator allows only some.",
    )


class PresetPublic(BaseModel):
    name: str
    label: str
    description: str
    aspect: str
    count: int
    composition: str | None = Field(
        None,
        description="Where pixel-true mode places the product in this preset (hero, thirds, "
        "flat-lay); null: the preset draws the product held or worn, so only shoots use it.",
    )


# -- catalogue shoots ---------------------------------------------------------------------------


class ShotListEntryCreate(Strict):
    """One shot of the shot list every product gets (`examples/shot-list.yaml`)."""

    slot: Literal["main", "additional", "lifestyle"] = Field(
        ..., description="The marketplace slot it fills."
    )
    description: str | None = Field(
        None, max_length=500, description='Your words, e.g. "{product} on a marble table".'
    )
    preset: str | None = Field(None, max_length=40, description="A shot preset (/v1/presets).")
    aspect: str | None = Field(None, description="1:1, 4:5, 3:4, 16:9 or 9:16.")
    count: int = Field(1, ge=1, le=JOB_MAX_COUNT, description="Images of this shot per product.")
    name: str | None = Field(None, max_length=40, description="Its folder (default 01-main, …).")


class CatalogueShootCreate(TrainsFields, DeliversFields):
    """Many products, one shot list: each product without a model is trained first (`model`,
    `preset`, `max_train_steps`), or with `instant` shot from its photos as reference images."""

    model: str | None = Field(  # type: ignore[assignment]
        None,
        max_length=200,
        description="Base model of the products without one: a Hugging Face Hub id, or tiny / "
        f"tiny-sdxl / tiny-flux2 (test stand-ins). Default: {TRAINING_MODEL} for their "
        f"trainings; with `instant`, {INSTANT_MODEL}.",
    )
    instant: bool = Field(
        False,
        description="No training: a product without a model is shot from its best 1-4 photos "
        "as reference images of `model` (a family that takes them: FLUX.2 [klein]).",
    )

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:  # type: ignore[override]
        if value is not None and not is_model_name(value):
            raise ValueError("must be a Hugging Face Hub id (owner/name) or tiny / tiny-flux2")
        return value

    product_ids: list[str] = Field(..., min_length=1, max_length=200)
    shots: list[ShotListEntryCreate] = Field(..., min_length=1, max_length=20)
    max_train_steps: int | None = Field(None, ge=1, le=20000, description="Training steps.")
    num_inference_steps: int | None = Field(
        None,
        ge=LIMITS["num_inference_steps"][0],
        le=LIMITS["num_inference_steps"][1],
        description="Sampling steps.",
    )
    seed: int | None = Field(None, ge=0, le=MAX_FIRST_SEED)
    judge: bool = Field(True, description="Score the shots and flag those without the product.")


class CatalogueProductPublic(BaseModel):
    product_id: str
    handle: str
    name: str
    status: Literal["queued", "running", "done", "failed"]
    error: str | None = None
    verdict: str | None = Field(None, description="Intake's verdict on its photos.")
    trained: bool | None = Field(None, description="Trained by this catalogue shoot.")
    route: Literal["trained", "instant", "model"] | None = Field(
        None,
        description="How it was drawn: trained (by this catalogue shoot), instant (its photos as "
        "reference images, no training), model (the model it had).",
    )
    images: int = 0
    product_missing: int = 0
    compliance: dict[str, dict[str, int]] = Field(
        {}, description="Per marketplace profile, its images by verdict: pass, fixed, warn, fail."
    )


class CatalogueShotPublic(ShotPublic):
    product: str | None = Field(None, description="The product's handle.")
    slot: str | None = None
    shot: str | None = Field(None, description="The shot list entry's name.")


class CatalogueShootPublic(BaseModel):
    id: str
    status: JobStatus
    progress: Progress
    error: JobError | None
    request: dict[str, Any]
    products: list[CatalogueProductPublic]
    shots: list[CatalogueShotPublic]
    cost: dict[str, Any] = {}
    download_url: str
    contact_sheet_url: str | None = None
    delivery: DeliveryPublic | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class CatalogueShootsPublic(BaseModel):
    data: list[CatalogueShootPublic]
    count: int
