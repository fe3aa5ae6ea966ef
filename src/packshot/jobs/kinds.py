"""The job kinds: one record per kind (its params, executor, GPU need, folder and result), the
one table the store, the runners, the API routes and the CLI read.

A kind's params and result are typed records in the core's names (diffusers' where they
exist: `max_train_steps`, `num_inference_steps`, `guidance_scale`, …); they become JSON only
at the store's boundary (`to_json` / `JobKind.load_params` / `JobKind.load_result`) and when
they leave for another machine. A new kind is one `JobKind` in `KINDS` and its executor.

This module imports no torch and no model code: the API reads it. Executors, and the params
and results the core owns itself (a placement's `PlaceRequest`), are named here as
"module:name" and imported when first used, on the worker.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from packshot.artifacts.catalogue import CatalogueProduct
from packshot.artifacts.shots import ShotRecord
from packshot.errors import UsageError
from packshot.models.families import INSTANT_MODEL, TRAINING_MODEL
from packshot.progress import ProgressCallback
from packshot.shoot.request import ShootRequest
from packshot.shoot.sheet import GPU_PRICE_PER_HOUR, STUDIO_PRICE_PER_PHOTO
from packshot.shoot.shotlist import ShotList, ShotListEntry

# -- params ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingParams:
    """A training job: the photos, the base model, a preset and `TrainConfig` overrides (None:
    the preset's value), in `TrainConfig`'s names."""

    photos_dir: str  # a folder of photos, or a training set from `packshot photos prepare`
    model: str  # base model: Hub id, local diffusers folder, tiny / tiny-sdxl
    class_word: str  # "headphones"
    product: str | None = None  # "bose headphones"
    preset: str = "standard"  # quick, standard, best
    force: bool = False  # train on a photo set judged "not enough"
    token: str | None = None
    seed: int | None = None
    resolution: int | None = None
    buckets: bool | None = None  # aspect-ratio buckets (TrainConfig's default: on)
    train_batch_size: int | None = None
    rank: int | None = None
    learning_rate: float | None = None
    max_train_steps: int | None = None
    checkpointing_steps: int | None = None
    validation_steps: int | None = None
    with_prior_preservation: bool | None = None
    train_text_encoder: bool | None = None
    background_weight: float | None = None
    mixed_precision: str | None = None
    compile: bool | None = None

    def config_overrides(self) -> dict[str, Any]:
        """The `TrainConfig` fields this job sets (those not None)."""
        own = ("photos_dir", "model", "class_word", "product", "preset", "force")
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in own and getattr(self, f.name) is not None
        }


@dataclass
class ShootParams(ShootRequest):
    """A shoot job: a `ShootRequest`, and how its shots are judged."""

    judge: bool = True  # score every shot, flag those without the product
    best: int | None = None  # render 2K candidates per description and preset, keep K
    reference_dir: str | None = None  # photos to judge against (default: the model's crops)
    dino_model: str | None = None  # the judges (default: tiny ones for a tiny model)
    clip_model: str | None = None
    # instant shots (no training): the product's photos, the best 1-4 of which are picked as
    # `references` (flows.instant); `reference_dir` judges against them all
    photos_dir: str | None = None
    profiles: list[str] = field(default_factory=list)  # marketplace profiles to deliver to

    def request(self) -> ShootRequest:
        """The shoot itself, without the judging."""
        return ShootRequest(**{f.name: getattr(self, f.name) for f in fields(ShootRequest)})


@dataclass
class CatalogueParams:
    """A catalogue shoot: its products, the shot list every one gets, how the products without
    a model are trained (`TrainingParams`' names) or, `instant`, shot from their photos as
    reference images, and how the shots are rendered and judged."""

    products: list[CatalogueProduct]
    shots: list[ShotListEntry]  # the shot list, checked (`ShotList`)
    # The base model of the products without one: of their trainings, or with `instant` of their
    # instant shots (a family that takes reference images); None: `base_model()`'s default
    model: str | None = None
    instant: bool = False  # no training: a product without a model is shot instantly
    preset: str = "standard"  # training preset: quick, standard, best
    max_train_steps: int | None = None
    resolution: int | None = None
    seed: int | None = None  # first seed of every shot (a random one kept in the job's folder)
    num_inference_steps: int | None = None
    judge: bool = True
    dino_model: str | None = None  # the judges (default: tiny ones for a tiny model)
    clip_model: str | None = None
    profiles: list[str] = field(default_factory=list)  # marketplace profiles to deliver to
    gpu_price_per_hour: float = GPU_PRICE_PER_HOUR
    studio_price_per_photo: float = STUDIO_PRICE_PER_PHOTO

    def shot_list(self) -> ShotList:
        return ShotList(tuple(self.shots))

    def base_model(self) -> str:
        """The model a product without one is trained on, or shot instantly with."""
        return self.model or (INSTANT_MODEL if self.instant else TRAINING_MODEL)

    def training(self, product: CatalogueProduct) -> TrainingParams:
        """The training of a product without a model (its photos: the crops prepared for it)."""
        return TrainingParams(
            photos_dir=str(product.photos_dir),
            model=self.base_model(),
            class_word=product.class_word,
            product=product.name,
            preset=self.preset,
            token=product.token,
            seed=self.seed,
            max_train_steps=self.max_train_steps,
            resolution=self.resolution,
        )


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingResult:
    """A finished training job; paths relative to its folder."""

    model_dir: str
    base_model: str
    token: str
    class_word: str
    final_step: int
    final_loss: float | None
    resumed_from: int | None = None
    nan_rollbacks: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # the model folder's, but its training set


@dataclass(frozen=True)
class ShootResult:
    """A finished shoot job; paths relative to its folder."""

    out_dir: str
    images: list[ShotRecord]  # with their marketplace badges when it was delivered
    contact_sheet: str
    product_missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    # With profiles: the delivery in `out_dir` (`DeliveryReport.record`, relative to out_dir)
    delivery: dict[str, Any] | None = None


# -- the table ---------------------------------------------------------------------------------


def _load(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class JobKind:
    """One job kind: everything a store, a runner, a route or the CLI needs to know of it."""

    name: str  # "training", "shoot", "placement"
    plural: str  # its URL segment: /v1/trainings/{id}
    params: str  # its params record, "module:name"
    result: str  # its result record, "module:name"
    executor: str  # (params, workdir, progress, cache_dir) -> result, "module:name"
    out_dir: str  # the folder it writes inside its job folder
    gpus_env: str  # the setting of the GPUs a Ray task of this kind asks for (default: auto)
    seeded: bool = False  # plans its images from a first seed (a random one kept in its folder)
    product_models: tuple[str, ...] = ()  # its params that name a product model folder
    # Its images become shot rows as their `shot` events arrive, reconciled at the end with
    # the result's JSON: (the list of delivered images, the key naming each one's file).
    shots: tuple[str, str] | None = None
    # Its params' list whose items fan out over Ray's workers, each a job of this kind on its
    # own (a catalogue's products); the folders they write are merged into one job's folder.
    fans_out: str | None = None
    # Its params that the items leave to the whole job, emptied in each item's own (a
    # catalogue's delivery: done once over every product's images, when the items are merged)
    whole_job: tuple[str, ...] = ()

    @cached_property
    def params_type(self) -> type:
        return _load(self.params)

    @cached_property
    def result_type(self) -> type:
        return _load(self.result)

    def run(
        self, params: Any, workdir: Path, progress: ProgressCallback, cache_dir: Path | None
    ) -> Any:
        """Its executor, on this machine (`execute.run_job` is the seam that calls it)."""
        return _load(self.executor)(params, workdir, progress, cache_dir)

    def load_params(self, data: dict[str, Any]) -> Any:
        """The params record from its JSON (a job row, a request); unknown names refused."""
        known = {f.name for f in fields(self.params_type)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"Unknown {self.name} parameter(s): {', '.join(unknown)}.")
        try:
            return _adapter(self.params_type).validate_python(data)
        except ValidationError as error:
            raise UsageError(f"Bad {self.name} parameters: {error}") from None

    def load_result(self, data: dict[str, Any]) -> Any:
        return _adapter(self.result_type).validate_python(data)


# Executors, and the core's own records, are named "module:name" and imported on first use (on
# the worker), so that api/ reads this table without torch or OpenCV.
KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind(
            "training",
            "trainings",
            params=f"{__name__}:TrainingParams",
            result=f"{__name__}:TrainingResult",
            executor="packshot.jobs.execute:run_training",
            out_dir="model",
            gpus_env="PACKSHOT_RAY_TRAIN_GPUS",
        ),
        JobKind(
            "shoot",
            "shoots",
            params=f"{__name__}:ShootParams",
            result=f"{__name__}:ShootResult",
            executor="packshot.jobs.execute:run_shoot",
            out_dir="shots",
            gpus_env="PACKSHOT_RAY_SHOOT_GPUS",
            seeded=True,
            product_models=("model_dir",),
            shots=("images", "file"),
        ),
        JobKind(
            "placement",  # pixel-true mode: the core's own request and result records
            "placements",
            params="packshot.place.records:PlaceRequest",
            result="packshot.place.records:PlaceResult",
            executor="packshot.jobs.execute:run_placement",
            out_dir="placements",
            gpus_env="PACKSHOT_RAY_SHOOT_GPUS",
            seeded=True,
            product_models=("product_model",),
            shots=("shots", "path"),
        ),
        JobKind(
            "catalogue",  # many products, one shot list: the flow's own summary as its result
            "catalogue-shoots",
            params=f"{__name__}:CatalogueParams",
            result="packshot.artifacts.catalogue:CatalogueSummary",
            executor="packshot.jobs.execute:run_catalogue",
            out_dir="catalogue",
            gpus_env="PACKSHOT_RAY_TRAIN_GPUS",
            seeded=True,
            product_models=("model_dir",),
            shots=("images", "file"),
            fans_out="products",
            whole_job=("profiles",),
        ),
    )
}


def kind_of(name: str) -> JobKind:
    if name not in KINDS:
        raise UsageError(f"unknown job kind {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


# -- JSON at the boundary ----------------------------------------------------------------------

_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(cls: type) -> TypeAdapter[Any]:
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def to_json(record: Any) -> dict[str, Any]:
    """A params or result record as JSON-ready data (paths as strings)."""
    return _adapter(type(record)).dump_python(record, mode="json")


def with_values(record: Any, **changes: Any) -> Any:
    """The record with some fields changed."""
    return dataclasses.replace(record, **changes)
