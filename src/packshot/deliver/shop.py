"""A delivery exported for the shop: a Shopify product CSV, a WooCommerce product CSV, a Google
Merchant Center feed, or a zip of the images in per-product folders with the report.

Each reads the delivery's `delivery.json`, takes the files one profile delivered (all but those
that fail it), main image first, and names them by `image_base_url` + their path in the
delivery: upload the delivery folder there as it is, and the links hold. Torch-free: the API
builds its downloads with it.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packshot.deliver.report import FAIL, HTML_FILE, REPORT_FILE, read_report
from packshot.errors import UsageError

FORMATS = ("shopify", "woocommerce", "google", "zip")
FILE_NAMES = {
    "shopify": "shopify-products.csv",
    "woocommerce": "woocommerce-products.csv",
    "google": "google-merchant-feed.tsv",
    "zip": "delivery.zip",
}
DEFAULT_PROFILE = {"shopify": "shopify", "google": "google"}  # the rest: the only one there
SHOPIFY_COLUMNS = ["Handle", "Title", "Image Src", "Image Position", "Image Alt Text"]
WOOCOMMERCE_COLUMNS = ["SKU", "Name", "Images"]
GOOGLE_COLUMNS = ["id", "title", "image_link", "additional_image_link", "lifestyle_image_link"]
ALT_TEXT_MAX = 512  # Shopify's limit on Image Alt Text
GOOGLE_ADDITIONAL_MAX = 10  # Merchant Center reads at most 10 additional_image_link


@dataclass
class ProductImages:
    """One product's delivered images for one profile, main image first."""

    handle: str
    title: str
    images: list[dict[str, Any]] = field(default_factory=list)  # the report's image entries
    files: list[str] = field(default_factory=list)  # their delivered files, same order


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote, and the shots it left out (failed the profile) with why."""

    path: Path
    profile: str | None
    products: int
    images: int
    left_out: list[str]


def export_delivery(
    delivery_dir: Path,
    fmt: str,
    out_dir: Path,
    *,
    image_base_url: str | None = None,
    profile: str | None = None,
) -> ExportResult:
    """Export the delivery in `delivery_dir` as `fmt` into `out_dir`; see the module's doc."""
    if fmt not in FORMATS:
        raise UsageError(f"Unknown export format `{fmt}`: choose one of {', '.join(FORMATS)}.")
    delivery_dir = Path(delivery_dir)
    report = read_report(delivery_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILE_NAMES[fmt]
    if fmt == "zip":
        count = write_zip(delivery_dir, path)
        return ExportResult(path, None, len(_handles(report)), count, [])
    if not image_base_url or not image_base_url.startswith(("http://", "https://")):
        raise UsageError(
            "Pass the image base URL (--image-base-url; image_base_url in the API): the http(s) "
            "address the delivery folder is uploaded to (e.g. https://cdn.example.com/delivery/), "
            "so the shop can fetch each image."
        )
    chosen = pick_profile(report, fmt, profile)
    products, left_out = products_for(report, chosen)
    base = image_base_url.rstrip("/") + "/"

    def url(file: str) -> str:
        return base + quote(file)

    writers = {"shopify": _shopify, "woocommerce": _woocommerce, "google": _google}
    writers[fmt](path, products, url)
    images = sum(len(p.files) for p in products)
    return ExportResult(path, chosen, len(products), images, left_out)


def _handles(report: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(str(image["product"]) for image in report["images"]))


def pick_profile(report: dict[str, Any], fmt: str, profile: str | None) -> str:
    """The profile whose files `fmt` exports: as asked, else the format's own, else the only."""
    delivered = [p["name"] for p in report["profiles"]]
    wanted = profile or DEFAULT_PROFILE.get(fmt)
    if wanted is None and len(delivered) == 1:
        wanted = delivered[0]
    if wanted not in delivered:
        asked = f"the `{wanted}` profile" if wanted else "one profile"
        raise UsageError(
            f"The {fmt} export takes the images delivered for {asked}; this delivery has "
            f"{', '.join(delivered)}: pass --profile, or deliver with --profile {wanted or '…'}."
        )
    return str(wanted)


def products_for(report: dict[str, Any], profile: str) -> tuple[list[ProductImages], list[str]]:
    """Per product (in delivery order), the files `profile` delivered that don't fail it, the
    main-slot image first; and the shots left out, each with its first reason."""
    products: dict[str, ProductImages] = {}
    left_out = []
    for image in report["images"]:
        result = image["results"].get(profile)
        if result is None:
            continue
        if result["status"] == FAIL or not result.get("file"):
            reason = (result.get("problems") or [{"reason": "failed"}])[0]["reason"]
            left_out.append(f"{Path(image['source']).name}: {reason}")
            continue
        entry = products.setdefault(
            image["product"], ProductImages(image["product"], image["title"])
        )
        entry.images.append(image)
    for entry in products.values():
        entry.images.sort(key=lambda image: image.get("slot") != "main")  # stable: main first
        entry.files = [image["results"][profile]["file"] for image in entry.images]
    return list(products.values()), left_out


def alt_text(title: str, description: str) -> str:
    """The image's alt text: the product's name and what the shot shows, at most 512 chars."""
    text = f"{title}: {description}" if description and description != title else title
    text = " ".join(text.split())
    return text if len(text) <= ALT_TEXT_MAX else text[: ALT_TEXT_MAX - 1].rstrip() + "…"


def _shopify(path: Path, products: list[ProductImages], url: Any) -> None:
    """Shopify's product CSV: one image per row, the handle repeated, the title on the first."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(SHOPIFY_COLUMNS)
        for product in products:
            for position, (image, file) in enumerate(
                zip(product.images, product.files, strict=True), 1
            ):
                title = product.title if position == 1 else ""
                alt = alt_text(product.title, str(image.get("description") or ""))
                writer.writerow([product.handle, title, url(file), position, alt])


def _woocommerce(path: Path, products: list[ProductImages], url: Any) -> None:
    """WooCommerce's product CSV: one row per product, `Images` the URLs, main image first."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(WOOCOMMERCE_COLUMNS)
        for product in products:
            writer.writerow(
                [product.handle, product.title, ", ".join(url(f) for f in product.files)]
            )


def _google(path: Path, products: list[ProductImages], url: Any) -> None:
    """A Merchant Center supplemental feed (tab-separated): image_link the main image,
    lifestyle_image_link the first lifestyle-slot image, additional_image_link up to 10 more."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(GOOGLE_COLUMNS)
        for product in products:
            pairs = list(zip(product.images, product.files, strict=True))
            main = pairs[0][1]
            lifestyle = next((f for i, f in pairs[1:] if i.get("slot") == "lifestyle"), "")
            others = [f for _, f in pairs[1:] if f != lifestyle][:GOOGLE_ADDITIONAL_MAX]
            writer.writerow(
                [
                    product.handle,
                    product.title,
                    url(main),
                    ",".join(url(f) for f in others),
                    url(lifestyle) if lifestyle else "",
                ]
            )


def write_zip(delivery_dir: Path, path: Path) -> int:
    """The delivery's images in per-product folders, with delivery.json and report.html."""
    report = read_report(delivery_dir)
    files = [
        r["file"] for image in report["images"] for r in image["results"].values() if r.get("file")
    ]
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # JPEGs don't shrink
        for name in (REPORT_FILE, HTML_FILE, *files):
            source = delivery_dir / name
            if source.is_file():
                archive.write(source, name)
    tmp.replace(path)
    return len(files)
