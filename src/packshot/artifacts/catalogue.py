"""A catalogue on disk: a folder of product folders, each with its photos, an optional
`product.json` naming it and, when it has one, its trained model; read into `CatalogueProduct`
records that a catalogue shoot (a job: plain values) carries.

    catalogue/
      trail-backpack/          the folder's name is the product's handle
        product.json           {"name": "Trail backpack", "class": "backpack"} (optional)
        01.jpg 02.jpg …        its photos (or in photos/)
        model/                 a model `packshot train` wrote (optional; or "model" in product.json)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from packshot.artifacts.product_model import METADATA_FILE
from packshot.artifacts.shots import ShotRecord
from packshot.errors import UsageError

PRODUCT_FILE = "product.json"
PHOTOS_DIR = "photos"  # a product's photos, when they are not in its folder itself
MODEL_DIR = "model"  # a product's trained model inside its folder, when it has one
PRODUCT_FIELDS = ("name", "class", "token", "model")
MAX_PRODUCTS = 500
HANDLE = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")


@dataclass(frozen=True)
class CatalogueProduct:
    """One product of a catalogue: what a catalogue shoot needs of it (plain values)."""

    handle: str  # its folder in the output, the shop's handle: "trail-backpack"
    name: str  # "Trail backpack"
    class_word: str  # "backpack"
    photos_dir: str | None = None  # its photos (absolute); None: it has a model, no photos
    model_dir: str | None = None  # its trained model (absolute); None: train it first
    token: str | None = None  # the rare token to train with (default: the training's)


def handle_for(name: str) -> str:
    """A product's handle from its name: lower case, words joined by dashes (Shopify's rule),
    "Trail Backpack!" → "trail-backpack"; the folder of its images in a catalogue shoot and a
    delivery."""
    handle = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")[:80].strip("-")
    return handle or "product"


def photo_files(photos_dir: Path) -> list[Path]:
    """The files of a product's photo folder that intake judges: everything but its
    `product.json` and its sub-folders (hidden and system files intake skips itself)."""
    if not photos_dir.is_dir():
        raise UsageError(f"The photos folder {photos_dir} does not exist.")
    return sorted(
        (p for p in photos_dir.iterdir() if p.is_file() and p.name != PRODUCT_FILE),
        key=lambda p: (p.name.casefold(), p.name),
    )


def read_product(folder: Path) -> CatalogueProduct:
    """One product folder; its `product.json` checked (unknown fields, wrong types refused)."""
    info: dict[str, Any] = {}
    meta = folder / PRODUCT_FILE
    if meta.is_file():
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise UsageError(f"{meta} is not valid JSON ({error}).") from None
        if not isinstance(info, dict):
            raise UsageError(f'{meta} must be an object such as {{"name": "…", "class": "…"}}.')
        unknown = sorted(set(info) - set(PRODUCT_FIELDS))
        if unknown:
            raise UsageError(
                f"{meta}: unknown field(s) {', '.join(unknown)}; it may give "
                f"{', '.join(PRODUCT_FIELDS)}."
            )
        for key, value in info.items():
            if not isinstance(value, str) or not value.strip():
                raise UsageError(f"{meta}: `{key}` must be a non-empty string.")
    handle = folder.name
    if not HANDLE.fullmatch(handle):
        raise UsageError(
            f"Product folder {folder.name!r}: name it with lower-case letters, digits and "
            f"dashes (such as {handle_for(folder.name)!r}): it becomes the product's handle."
        )
    name = " ".join(info.get("name", handle.replace("-", " ")).split())
    class_word = " ".join(info.get("class", name.split()[-1]).split())
    model: Path | None = None
    if "model" in info:
        model = (folder / info["model"]).resolve()
        if not (model / METADATA_FILE).is_file():
            raise UsageError(f"{meta}: `model` {info['model']!r} is not a model folder.")
    elif (folder / MODEL_DIR / METADATA_FILE).is_file():
        model = (folder / MODEL_DIR).resolve()
    photos = folder / PHOTOS_DIR if (folder / PHOTOS_DIR).is_dir() else folder
    has_photos = bool(photo_files(photos))
    if not has_photos and model is None:
        raise UsageError(
            f"Product folder {folder}: no photos and no model. Add 5–40 photos of the product."
        )
    return CatalogueProduct(
        handle=handle,
        name=name,
        class_word=class_word,
        photos_dir=str(photos.resolve()) if has_photos else None,
        model_dir=str(model) if model else None,
        token=info.get("token"),
    )


def read_catalogue(folder: Path | str) -> list[CatalogueProduct]:
    """Every product folder of a catalogue folder, in name order (hidden folders skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"The catalogue folder {folder} does not exist: check the path.")
    products = [
        read_product(child)
        for child in sorted(folder.iterdir())
        if child.is_dir() and not child.name.startswith(".")
    ]
    if not products:
        raise UsageError(
            f"The catalogue folder {folder} has no product folders: make one folder per product "
            "with its photos (and a product.json naming it)."
        )
    if len(products) > MAX_PRODUCTS:
        raise UsageError(f"A catalogue holds at most {MAX_PRODUCTS} products, {folder} has more.")
    return products


# -- what a catalogue shoot writes: one outcome per product, and the catalogue's summary --------

OUTCOME_FILE = "outcome.json"  # in each product's output folder, written when it is finished
SUMMARY_FILE = "catalogue.json"  # in the catalogue's output folder, written at the end
REQUEST_FILE = "request.json"  # what a resumed catalogue shoot must match
Route = Literal["trained", "instant", "model"]  # how a product was shot (ProductOutcome.route)


@dataclass(frozen=True, kw_only=True)
class CatalogueShot(ShotRecord):
    """One delivered image of a catalogue shoot; `file` relative to the summary's folder."""

    product: str  # the product's handle
    shot: str  # the shot list entry's name
    slot: str  # its marketplace slot
    device_s: float = 0.0


@dataclass(frozen=True)
class ProductOutcome:
    """How one product of a catalogue shoot went: done with its shots, or failed and why."""

    handle: str
    name: str
    status: str  # "done" or "failed"
    error: str | None = None  # why it failed, for the merchant
    verdict: str | None = None  # intake's verdict on its photos ("ready", "usable", …)
    photos: dict[str, int] | None = None  # accepted, rejected, skipped
    # How it was shot: "trained" (its model trained by this catalogue shoot), "instant" (no
    # model: its photos as reference images), "model" (the model it had); None when it failed
    route: Route | None = None
    model_dir: str | None = None  # relative when trained here, else as given; None: instant
    references: list[str] | None = None  # instant: the photos it was drawn from
    train_s: float = 0.0  # the training's device seconds, shared among its images' cost
    images: list[CatalogueShot] | None = None
    product_missing: list[str] | None = None  # images the judges found without the product
    warnings: list[str] | None = None


@dataclass(frozen=True)
class CatalogueSummary:
    """A finished catalogue shoot: each product's outcome, every image, the cost per image."""

    out_dir: str
    products: list[ProductOutcome]
    images: list[CatalogueShot]
    cost: dict[str, Any]
    contact_sheet: str | None = None  # every image, captioned with its product and slot
    # The marketplace delivery, when profiles were asked for: `DeliveryReport.record`'s
    # (folder and report relative to the summary's folder, the profiles, the verdicts counted
    # per profile, and per product handle and profile in `products`)
    delivery: dict[str, Any] | None = None

    @property
    def failed(self) -> list[ProductOutcome]:
        return [p for p in self.products if p.status == "failed"]


Record = TypeVar("Record", ProductOutcome, CatalogueSummary)


def write_record(path: Path, record: ProductOutcome | CatalogueSummary) -> Path:
    """An outcome or a summary as JSON, written whole or not at all (temporary file, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_record(path: Path, kind: type[Record]) -> Record | None:
    """The outcome or summary at `path`; None when it is not there (not finished yet)."""
    if not path.is_file():
        return None
    try:
        return TypeAdapter(kind).validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError) as error:
        raise UsageError(
            f"{path} is damaged ({str(error)[:200]}); delete it to do that part again."
        ) from None
