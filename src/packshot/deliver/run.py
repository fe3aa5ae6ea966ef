"""Deliver shots to marketplaces: check every shot against every profile, fix what can be fixed
honestly, and write sRGB JPEGs, `delivery.json` and an HTML report.

from packshot.deliver import deliver

report = deliver(Path("shots/"), ["amazon-main", "shopify"], Path("delivery/"))
report.images[0].results["amazon-main"].status  # "pass", "fixed", "warn" or "fail"

What is fixed, and how (each fix is named in the report):
- the frame: cropped or padded to the profile's aspect and fill ratio around the product's box
  (from the cut-out mask for pixel-true shots, else the intake's foreground estimate); padding
  only with a background that is one flat colour, never by drawing more scene;
- the background made exactly white, only for pixel-true shots: the real product's pixels as
  placed, from the cut-out mask, on RGB (255, 255, 255);
- the size: resized (Lanczos) or upscaled (`upscale`) to the profile's recommended size;
- the file: sRGB JPEG with its ICC profile and the IPTC "made with AI" label, under the size limit.

What can't be fixed is reported with the rule, the reason and the marketplace's page: a shot the
model drew is not a photograph of the product (Amazon's main image refuses it, Etsy warns).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from packshot import __version__
from packshot.artifacts.catalogue import handle_for
from packshot.artifacts.provenance import COMPOSITE, GENERATED, read_source_type, xmp_packet
from packshot.artifacts.shots import read_sidecar, write_json
from packshot.deliver.measure import (
    SRGB_ICC,
    Measured,
    fill_of,
    flat_colour,
    mask_box,
    measure,
    product_mask,
    white_frame,
)
from packshot.deliver.profiles import MarketplaceProfile, get_profiles
from packshot.deliver.report import (
    DELIVERY_DIR,
    FAIL,
    FIXED,
    HTML_FILE,
    PASS,
    REPORT_FILE,
    WARN,
    write_html,
)
from packshot.deliver.upscale import LANCZOS, Similarity, Upscaler, resize
from packshot.errors import UsageError
from packshot.intake.colour import normalise
from packshot.place import compose
from packshot.progress import ProgressCallback, ProgressEvent, no_progress

ORIGINS = ("generated", "pixel-true", "photo")
SLOTS = ("main", "additional", "lifestyle")
JPEG_QUALITIES = (95, 90, 85, 80, 75, 70, 65, 60)  # tried in turn until under the size limit


@dataclass(frozen=True)
class DeliveryShot:
    """One shot to deliver, and the product and marketplace slot it is for.

    Unset fields come from the shot's sidecar: the product's name (its handle is the name
    made URL-safe), the shot's description."""

    path: Path
    product: str | None = None  # the handle: the product's folder and Shopify's Handle
    title: str | None = None  # the product's name for people: CSV titles and alt text
    slot: str | None = None  # "main", "additional" or "lifestyle", from the shot list
    description: str | None = None  # what the shot shows, for alt text


@dataclass
class ProfileResult:
    """One shot checked against one marketplace profile."""

    profile: str
    status: str  # "pass", "fixed", "warn" or "fail"
    file: str | None  # the delivered file, relative to the delivery folder
    fixes: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)  # rule, reason, source
    warnings: list[dict[str, str]] = field(default_factory=list)
    check_by_hand: list[str] = field(default_factory=list)
    measured: dict[str, Any] | None = None
    method: str | None = None  # how it was resized: "lanczos" or the upscaler's model

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ImageDelivery:
    """One shot and what each profile made of it."""

    source: Path  # the shot's path as passed in (a folder's shots: the folder / their name)
    product: str
    title: str
    slot: str | None
    description: str
    origin: str  # "generated", "pixel-true" or "photo"
    stem: str = ""  # the delivered files' name, unique within the product
    results: dict[str, ProfileResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "product": self.product,
            "title": self.title,
            "slot": self.slot,
            "description": self.description,
            "origin": self.origin,
            "stem": self.stem,
            "results": {name: r.to_dict() for name, r in self.results.items()},
        }


@dataclass
class DeliveryReport:
    """A delivery: every shot against every profile, and where it was written."""

    out_dir: Path
    profiles: list[MarketplaceProfile]
    images: list[ImageDelivery]
    report_path: Path
    html_path: Path
    timings: dict[str, float]

    def counts(self, product: str | None = None) -> dict[str, dict[str, int]]:
        """{profile: {status: how many shots}}, of every shot or of one product's (its handle)."""
        counts: dict[str, dict[str, int]] = {}
        for image in self.images:
            if product is not None and image.product != product:
                continue
            for name, result in image.results.items():
                row = counts.setdefault(name, {PASS: 0, FIXED: 0, WARN: 0, FAIL: 0})
                row[result.status] += 1
        return counts

    def badges(self, relative_to: Path | None = None) -> dict[str, list[dict[str, str]]]:
        """For a gallery: {shot's path: [{profile, label, status, title}]}, the title being the
        first reason a shot fails or warns (or what was fixed). The path as passed in, or
        relative to the folder `relative_to` (a run's output folder: its records' names)."""
        labels = {p.name: p.label for p in self.profiles}

        def key(source: Path) -> str:
            return str(source if relative_to is None else source.relative_to(relative_to))

        return {
            key(image.source): [_badge(labels[name], r) for name, r in image.results.items()]
            for image in self.images
        }

    def record(self, root: Path) -> dict[str, Any]:
        """The delivery as a run's result records it, paths relative to the run's folder
        `root`: its folder, report and page, the profiles, the verdicts counted per profile
        (`counts`) and per product and profile (`products`)."""
        handles = dict.fromkeys(image.product for image in self.images)
        return {
            "dir": self.out_dir.relative_to(root).as_posix(),
            "report": self.report_path.relative_to(root).as_posix(),
            "html": self.html_path.relative_to(root).as_posix(),
            "profiles": [p.name for p in self.profiles],
            "counts": self.counts(),
            "products": {handle: self.counts(handle) for handle in handles},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "packshot-delivery",
            "packshot_version": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "profiles": [p.to_dict() for p in self.profiles],
            "counts": self.counts(),
            "images": [image.to_dict() for image in self.images],
            "badges": self.badges(),
            "timings": self.timings,
        }


def _badge(label: str, result: ProfileResult) -> dict[str, str]:
    reasons = [p["reason"] for p in result.problems] + [w["reason"] for w in result.warnings]
    title = reasons[0] if reasons else "; ".join(result.fixes) or "meets every rule checked"
    return {"profile": result.profile, "label": label, "status": result.status, "title": title}


def deliver(
    shots: Path | Sequence[Path | DeliveryShot],
    profiles: Sequence[str],
    out_dir: Path,
    *,
    upscaler: Upscaler | None = None,
    upscaler_name: str = LANCZOS,
    similarity: Similarity | None = None,
    progress: ProgressCallback = no_progress,
) -> DeliveryReport:
    """Check every shot against every profile, fix what can be fixed honestly and write the
    delivery into `out_dir`: `<product>/<profile>/<shot>.jpg`, `delivery.json`, `report.html`.

    `shots`: a shoot's or a placement's folder, PNG files, or `DeliveryShot`s naming product
    and slot. `upscaler` enlarges shots the model drew (see `upscale.resize`, with `similarity`
    as its fidelity check); without it, and for pixel-true shots always, Lanczos.
    """
    # 1. What is asked for: the profiles, the shots.
    started = time.perf_counter()
    chosen = get_profiles(list(profiles))
    items = collect_shots(shots)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = len(items) * len(chosen)

    # 2. Every shot against every profile.
    images: list[ImageDelivery] = []
    done = 0
    taken: set[tuple[str, str]] = set()
    for item in items:
        image = _describe(item)
        image.stem = _unique_stem(image.product, item.path.stem, taken)
        rgb, mask, on_white = _load(item.path, image.origin)
        for profile in chosen:
            result = _deliver_one(
                image,
                rgb,
                mask,
                on_white,
                profile,
                out_dir,
                upscaler=upscaler,
                upscaler_name=upscaler_name,
                similarity=similarity,
            )
            image.results[profile.name] = result
            done += 1
            progress(
                ProgressEvent(
                    "deliver",
                    done,
                    total,
                    f"{item.path.name} · {profile.label}: {result.status}",
                    {"file": item.path.name, "profile": profile.name, "status": result.status},
                )
            )
        images.append(image)

    # 3. The report, as JSON and as a page.
    report = DeliveryReport(
        out_dir,
        chosen,
        images,
        out_dir / REPORT_FILE,
        out_dir / HTML_FILE,
        {"total_s": round(time.perf_counter() - started, 3)},
    )
    data = report.to_dict()
    write_json(report.report_path, data)
    write_html(data, out_dir)
    return report


def deliver_run(
    root: Path,
    profiles: Sequence[str],
    shots: Path | Sequence[Path | DeliveryShot] | None = None,
    *,
    progress: ProgressCallback = no_progress,
) -> DeliveryReport:
    """Deliver a run's shots into its output folder `root`, as `root/delivery/`: the folder
    the studio's exports read and `packshot export` takes. Shoots, placements, instant shots
    and catalogue shoots (their jobs and their commands' `--profile`) all deliver through here.

    `shots`: files inside `root` (default: the run's own shots, the PNGs with a sidecar in
    `root`). The result's records take `report.badges(relative_to=root)` (each shot's verdicts
    by its name in the run) and `report.record(root)` (the delivery's summary)."""
    root = Path(root)
    shots = root if shots is None else shots
    return deliver(shots, profiles, root / DELIVERY_DIR, progress=progress)


def collect_shots(shots: Path | Sequence[Path | DeliveryShot]) -> list[DeliveryShot]:
    """The shots to deliver: folders opened to their shot PNGs (those with a sidecar)."""
    entries: Sequence[Path | DeliveryShot] = [shots] if isinstance(shots, Path | str) else shots
    items: list[DeliveryShot] = []
    for entry in entries:
        if isinstance(entry, DeliveryShot):
            items.append(entry)
            continue
        path = Path(entry)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.png") if read_sidecar(p) is not None)
            if not found:
                raise UsageError(
                    f"{path} holds no shots (PNGs with their .json sidecar): pass the folder "
                    "a `packshot shoot` or `packshot place` wrote, or the images themselves."
                )
            items += [DeliveryShot(p) for p in found]
        elif path.is_file():
            items.append(DeliveryShot(path))
        else:
            raise UsageError(f"{path} does not exist: pass a folder of shots or image files.")
    for item in items:
        if item.slot is not None and item.slot not in SLOTS:
            raise UsageError(f"{item.path.name}: slot `{item.slot}` is not one of {SLOTS}.")
    if not items:
        raise UsageError("No shots to deliver: pass a folder of shots or image files.")
    return items


def _unique_stem(product: str, stem: str, taken: set[tuple[str, str]]) -> str:
    """`stem`, or `stem-2`, `stem-3`… when another shot of the product already has it."""
    candidate, n = stem, 1
    while (product, candidate) in taken:
        n += 1
        candidate = f"{stem}-{n}"
    taken.add((product, candidate))
    return candidate


def _describe(item: DeliveryShot) -> ImageDelivery:
    """The shot's product, title, description and origin, from the item and its sidecar."""
    sidecar = read_sidecar(item.path) or {}
    words = sidecar.get("product") or {}
    name = item.title or words.get("name") or words.get("class_word") or item.path.stem
    label = sidecar.get("digital_source_type") or read_source_type(item.path)
    origin = {GENERATED: "generated", COMPOSITE: "pixel-true"}.get(str(label), "photo")
    description = item.description or sidecar.get("description") or ""
    return ImageDelivery(
        source=item.path,
        product=item.product or handle_for(str(name)),
        title=str(name),
        slot=item.slot,
        description=str(description).replace("{product}", str(name)),
        origin=origin,
    )


def _load(path: Path, origin: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The shot as sRGB pixels (H, W, 3), the product's 0/1 mask (or None), and for a
    pixel-true shot the real product as placed on pure white (else None)."""
    try:
        with Image.open(path) as opened:
            rgb = np.asarray(normalise(opened, (255, 255, 255)).image)
    except OSError as error:
        raise UsageError(f"{path} can't be read as an image ({error}).") from error
    if origin == "pixel-true":
        placed = _placed_product(path, rgb.shape[1], rgb.shape[0])
        if placed is not None:
            on_white = np.where(placed.mask[..., None] > 0, placed.rgb, 255).astype(np.uint8)
            return rgb, placed.mask, on_white
    return rgb, product_mask(rgb), None


def _placed_product(path: Path, width: int, height: int) -> compose.Placement | None:
    """The product exactly as `place` put it on this shot: the run's cut-out (its photo's
    pixels and mask, `product/cutout.png`) placed again by the shot's composition."""
    sidecar = read_sidecar(path) or {}
    cutout_file = path.parent / "product" / "cutout.png"
    if not cutout_file.is_file():
        return None
    with Image.open(cutout_file) as cutout:
        rgba = np.asarray(cutout.convert("RGBA"))
    pixels, mask = rgba[..., :3], (rgba[..., 3] > 127).astype(np.uint8)
    if sidecar.get("keep_framing"):
        placement = compose.keep_framing(pixels, mask)
    else:
        composition = compose.get_composition(str(sidecar.get("composition")))
        placement, _ = compose.place_product(pixels, mask, (width, height), composition)
    recorded = sidecar.get("placement")
    return placement if recorded in (None, placement.to_dict()) else None


def _rule(profile: MarketplaceProfile, name: str, reason: str) -> dict[str, str]:
    rule = profile.rules.get(name)
    return {"rule": name, "reason": reason, "source": rule.source if rule else profile.source}


def _deliver_one(
    image: ImageDelivery,
    rgb: np.ndarray,
    mask: np.ndarray | None,
    on_white: np.ndarray | None,
    profile: MarketplaceProfile,
    out_dir: Path,
    *,
    upscaler: Upscaler | None,
    upscaler_name: str,
    similarity: Similarity | None,
) -> ProfileResult:
    """One shot for one profile: eligibility, then frame, background, size, file; measured."""
    result = ProfileResult(profile.name, PASS, None, check_by_hand=profile.checked_by_hand)

    # 1. Eligibility: a shot the model drew is no photograph of the product.
    if image.origin == "generated" and profile.generated != "ok":
        entry = _rule(profile, "generated", _generated_reason(profile))
        if profile.generated == "fail":
            result.problems.append(entry)
            result.status = FAIL
            return result
        result.warnings.append(entry)

    # 2. The background: exactly white from the cut-out mask, for pixel-true shots only.
    pixels = rgb
    whitened = False
    if profile.white_background and white_frame(rgb) < 1.0:
        if on_white is not None:
            pixels, whitened = on_white, True
            result.fixes.append("background made pure white from the cut-out mask")
        else:
            why = (
                "the background is not pure white, and the placement's cut-out "
                "(product/cutout.png beside the shot) that would whiten it is missing: deliver "
                "the folder `packshot place` wrote"
                if image.origin == "pixel-true"
                else "the background is not pure white, and packshot whitens only pixel-true "
                "shots, where the cut-out says which pixels are the product's: shoot it with "
                "`packshot place` or on white"
            )
            result.problems.append(_rule(profile, "white_background", why))

    # 3. The frame: aspect and fill ratio around the product's box.
    pixels, mask = _frame(pixels, mask, profile, result)

    # 4. The size. A whitened background stays exactly white where the resized mask is empty
    # (Lanczos rings a little past the product's edge).
    target = _target_size(pixels.shape[1], pixels.shape[0], profile)
    picture = Image.fromarray(pixels)
    if target != picture.size:
        enlarging = target[0] > picture.width
        resized = resize(
            picture,
            target,
            upscaler=upscaler if image.origin == "generated" else None,
            upscaler_name=upscaler_name,
            similarity=similarity,
        )
        picture, result.method = resized.image, resized.method
        verb = "upscaled" if enlarging else "resized"
        result.fixes.append(
            f"{verb} from {pixels.shape[1]}x{pixels.shape[0]} to {target[0]}x{target[1]} "
            f"({resized.method})"
        )
        if resized.note:
            result.warnings.append(_rule(profile, "recommended_long_side", resized.note))
        if mask is not None:
            scaled = cv2.resize(mask.astype(np.float32), target, interpolation=cv2.INTER_LINEAR)
            if whitened:
                out = np.asarray(picture).copy()
                out[scaled <= 0] = 255
                picture = Image.fromarray(out)
            mask = (scaled >= 0.5).astype(np.uint8)
    fill = (
        round(fill_of(mask_box(mask), *picture.size), 4)
        if mask is not None and mask.any()
        else None
    )

    # 5. The file.
    relative = Path(image.product) / profile.name / f"{image.stem}.jpg"
    path = out_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    label = GENERATED if image.origin == "generated" else COMPOSITE
    _save_jpeg(
        picture,
        path,
        profile.value("max_file_bytes"),
        None if image.origin == "photo" else label,
        result,
    )
    result.file = relative.as_posix()
    result.fixes.append("saved as sRGB JPEG with its ICC profile")

    # 6. The delivered file, measured against every rule; the fill from the product's mask
    # carried through (the cut-out's, or the estimate made on the shot before resizing).
    measured = measure(path)
    if fill is not None:
        measured = replace(measured, fill=fill)
    result.measured = measured.to_dict()
    known = {p["rule"] for p in result.problems}
    result.problems += [
        p for p in _check(measured, profile, image.origin) if p["rule"] not in known
    ]
    if result.problems:
        result.status = FAIL
    elif result.warnings:
        result.status = WARN
    elif any(not f.startswith("saved as") for f in result.fixes):
        result.status = FIXED
    return result


def _generated_reason(profile: MarketplaceProfile) -> str:
    if profile.generated == "fail":
        return (
            f"{profile.label} takes only a photograph of the real product: this shot was drawn "
            "by the model. Use a pixel-true shot on white instead (`packshot place`; in the "
            "studio, “Keep my product's pixels”)"
        )
    return (
        f"{profile.label} wants images of the item itself, not a rendering: this shot was drawn "
        "by the model; check the marketplace's rules before listing it"
    )


def _frame(
    pixels: np.ndarray, mask: np.ndarray | None, profile: MarketplaceProfile, result: ProfileResult
) -> tuple[np.ndarray, np.ndarray | None]:
    """`pixels` and the product's `mask` cropped or padded to the profile's aspect and fill
    ratio around the product."""
    height, width = pixels.shape[:2]
    fill_rule, aspect_rule = profile.fill, profile.aspect
    if fill_rule is None and aspect_rule is None:
        return pixels, mask
    if mask is None or not mask.any():
        if fill_rule is not None:
            result.warnings.append(
                _rule(
                    profile,
                    "fill",
                    "packshot can't find the product's outline in this shot, "
                    "so how much of the frame it fills was not checked",
                )
            )
        return pixels, mask
    x, y, bw, bh = mask_box(mask)
    ratio = aspect_rule[0][0] / aspect_rule[0][1] if aspect_rule else width / height
    fill = fill_of((x, y, bw, bh), width, height)
    needs_fill = fill_rule is not None and not fill_rule.min <= fill <= fill_rule.max
    needs_aspect = abs(width / height - ratio) > 0.01
    if not needs_fill and not needs_aspect:
        return pixels, mask

    # The window: the aspect asked for, the product's box at the target fill (or as large as
    # the shot allows when only the aspect changes), centred on the box, kept inside the shot.
    if needs_fill and fill_rule is not None:
        window_w = max(bw, bh * ratio) / fill_rule.target
    else:
        window_w = min(width, height * ratio)
    window_w = max(1, round(window_w))
    window_h = max(1, round(window_w / ratio))
    left = round(x + bw / 2 - window_w / 2)
    top = round(y + bh / 2 - window_h / 2)
    left = min(max(left, 0), max(0, width - window_w)) if window_w <= width else left
    top = min(max(top, 0), max(0, height - window_h)) if window_h <= height else top
    outside = left < 0 or top < 0 or left + window_w > width or top + window_h > height
    cuts_product = bw > window_w or bh > window_h
    colour = flat_colour(pixels) if outside else None
    rule = "fill" if needs_fill else "aspect"
    if cuts_product or (outside and colour is None):
        why = (
            f"the product fills {fill:.0%} of the frame and the background is a scene: more "
            "space around it would have to be drawn, which packshot doesn't do"
            if outside
            else "the frame asked for would cut into the product"
        )
        entry = _rule(profile, rule, why)
        required = needs_fill or (aspect_rule is not None and aspect_rule[1])
        (result.problems if required else result.warnings).append(entry)
        return pixels, mask
    canvas = np.empty((window_h, window_w, 3), np.uint8)
    canvas[:] = colour if colour is not None else 255
    src_x0, src_y0 = max(0, left), max(0, top)
    src_x1, src_y1 = min(width, left + window_w), min(height, top + window_h)
    canvas[src_y0 - top : src_y1 - top, src_x0 - left : src_x1 - left] = pixels[
        src_y0:src_y1, src_x0:src_x1
    ]
    framed = np.zeros((window_h, window_w), np.uint8)
    framed[src_y0 - top : src_y1 - top, src_x0 - left : src_x1 - left] = mask[
        src_y0:src_y1, src_x0:src_x1
    ]
    how = "padded with its background colour" if outside else "cropped"
    new_fill = fill_of((x - left, y - top, bw, bh), window_w, window_h)
    result.fixes.append(
        f"{how} to {window_w}x{window_h} (aspect {ratio:g}, product fills {new_fill:.0%}, "
        f"was {fill:.0%})"
    )
    return canvas, framed


def _target_size(width: int, height: int, profile: MarketplaceProfile) -> tuple[int, int]:
    """The delivery size: the recommended long side within every limit of the profile."""
    scale = 1.0
    target_long = profile.target_long_side
    if target_long is not None:
        scale = target_long / max(width, height)
    limits = [
        (profile.value("max_long_side"), max(width, height)),
        (profile.value("max_width"), width),
        (profile.value("max_height"), height),
    ]
    for limit, side in limits:
        if limit is not None:
            scale = min(scale, limit / side)
    max_pixels = profile.value("max_pixels")
    if max_pixels is not None:
        scale = min(scale, (max_pixels / (width * height)) ** 0.5)
    for minimum, side in (
        (profile.value("min_width"), width),
        (profile.value("min_height"), height),
    ):
        if minimum is not None:
            scale = max(scale, minimum / side)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def _save_jpeg(
    picture: Image.Image,
    path: Path,
    max_bytes: int | None,
    label: str | None,
    result: ProfileResult,
) -> None:
    """`picture` as an sRGB JPEG (ICC profile, IPTC label in XMP) under `max_bytes`."""
    extra: dict[str, Any] = {"icc_profile": SRGB_ICC}
    if label is not None:
        extra["xmp"] = xmp_packet(label, creator_tool=f"packshot {__version__}")  # type: ignore[arg-type]
    data = b""
    for quality in JPEG_QUALITIES:
        buffer = BytesIO()
        picture.convert("RGB").save(
            buffer,
            "JPEG",
            quality=quality,
            subsampling=0 if quality >= 90 else 2,
            optimize=True,
            **extra,
        )
        data = buffer.getvalue()
        if max_bytes is None or len(data) <= max_bytes:
            if quality != JPEG_QUALITIES[0]:
                result.fixes.append(f"JPEG quality {quality} to stay under {max_bytes:,} bytes")
            break
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _check(measured: Measured, profile: MarketplaceProfile, origin: str) -> list[dict[str, str]]:
    """The rules the delivered file breaks, each with the reason measured."""
    problems = []
    value = profile.value

    def broken(rule: str, reason: str) -> None:
        problems.append(_rule(profile, rule, reason))

    if value("min_long_side") and measured.long_side < value("min_long_side"):
        broken(
            "min_long_side",
            f"{measured.long_side} px on the longest side, below {value('min_long_side')}",
        )
    if value("max_long_side") and measured.long_side > value("max_long_side"):
        broken(
            "max_long_side",
            f"{measured.long_side} px on the longest side, above {value('max_long_side')}",
        )
    if value("max_width") and measured.width > value("max_width"):
        broken("max_width", f"{measured.width} px wide, above {value('max_width')}")
    if value("max_height") and measured.height > value("max_height"):
        broken("max_height", f"{measured.height} px high, above {value('max_height')}")
    if value("min_width") and measured.width < value("min_width"):
        broken("min_width", f"{measured.width} px wide, below {value('min_width')}")
    if value("min_height") and measured.height < value("min_height"):
        broken("min_height", f"{measured.height} px high, below {value('min_height')}")
    if value("max_pixels") and measured.width * measured.height > value("max_pixels"):
        broken(
            "max_pixels",
            f"{measured.width * measured.height:,} pixels, above {value('max_pixels'):,}",
        )
    if value("formats") and measured.format not in value("formats"):
        broken("formats", f"{measured.format} is not one of {', '.join(value('formats'))}")
    if value("colour_space") == "sRGB" and not measured.srgb:
        broken(
            "colour_space",
            f"its colour profile is {measured.colour_profile or 'missing'}, not sRGB",
        )
    if value("max_file_bytes") and measured.file_bytes > value("max_file_bytes"):
        broken(
            "max_file_bytes",
            f"{measured.file_bytes:,} bytes even at JPEG quality {JPEG_QUALITIES[-1]}, above "
            f"{value('max_file_bytes'):,}",
        )
    if profile.white_background and measured.white_frame < 0.99:
        broken("white_background", f"only {measured.white_frame:.0%} of the outer band is white")
    fill = profile.fill
    if fill is not None and measured.fill is not None and not fill.min <= measured.fill <= fill.max:
        broken(
            "fill",
            f"the product fills {measured.fill:.0%} of the frame, "
            f"not {fill.min:.0%}–{fill.max:.0%}",
        )
    if value("ai_label") and origin != "photo" and measured.source_type is None:
        broken("ai_label", "the file carries no IPTC digital source type")
    return problems
