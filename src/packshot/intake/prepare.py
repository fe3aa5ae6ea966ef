"""Write the training set: crops centred on the product, each at its photo's aspect bucket (or
square), masks, captions, a manifest."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from packshot.errors import PackshotError, PhotoSetError, UsageError
from packshot.intake.captions import Captioner, combine_caption, instance_prompt
from packshot.intake.config import IntakeConfig
from packshot.intake.decode import NormalisedPhoto, load_photo
from packshot.intake.foreground import border_band, bounding_box, downscale, estimate_foreground
from packshot.intake.report import PhotoSetReport
from packshot.models.sizes import Size, aspect_buckets, nearest_bucket, training_multiple
from packshot.progress import ProgressCallback, ProgressEvent, no_progress

MANIFEST = "packshot.json"
KIND = "packshot.training_set"
VERSION = 2  # 2: crops at their aspect bucket, each item's `size` and `photo_size`; 1: squares


@dataclass
class TrainingImage:
    """One training example: files relative to the training set's folder."""

    file: str  # "photo-000.png": RGB, `size`
    mask_file: str  # "photo-000.mask.png": L, 255 = product
    caption: str
    source: str  # the photo's name in the checked folder (or upload)
    source_sha256: str
    crop_box: list[int]  # [x0, y0, x1, y1] in the upright photo's pixels; may reach outside it
    mask_source: str  # "alpha" (the photo's transparency), "estimate" or "none" (whole crop)
    upscaled: bool  # the crop had fewer pixels than its size
    size: list[int]  # [width, height] of the crop: its aspect bucket (version 1: the square)
    photo_size: list[int] | None = None  # [width, height] of the upright photo (version 2)


@dataclass
class TrainingSet:
    """A prepared training set and its manifest (`packshot.json` in its folder)."""

    resolution: int
    token: str
    class_word: str
    instance_prompt: str
    captioner: str | None
    items: list[TrainingImage]
    config: dict[str, Any]
    buckets: bool = False  # crops at their photo's aspect bucket; False: all square
    size_multiple: int | None = None  # the crops' sides are multiples of it (version 2)
    kind: str = KIND
    version: int = VERSION
    directory: Path | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data."""
        data = asdict(self)
        data.pop("directory")
        return data

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the manifest to `directory`/packshot.json; returns its path."""
        path = Path(directory) / MANIFEST
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", "utf-8")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> TrainingSet:
        """Read a training set written by `prepare_training_set`, checking its files exist."""
        directory = Path(directory)
        path = directory / MANIFEST
        try:
            data = json.loads(path.read_text("utf-8"))
            if data.get("kind") != KIND:
                raise ValueError(f"its kind is {data.get('kind')!r}")
            square = [data["resolution"]] * 2  # what a version 1 set's crops all are
            items = [TrainingImage(**{"size": square, **item}) for item in data.pop("items")]
            training_set = cls(**{**data, "items": items}, directory=directory)
        except OSError as exc:
            raise PackshotError(
                f"No training set in {directory} ({exc.strerror or exc}): run "
                "`packshot photos prepare` first."
            ) from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PackshotError(
                f"{path} is not a packshot training-set manifest ({exc}): prepare it again."
            ) from None
        missing = [
            name
            for item in training_set.items
            for name in (item.file, item.mask_file)
            if not (directory / name).is_file()
        ]
        if missing:
            raise PackshotError(
                f"The training set in {directory} is missing {', '.join(missing[:3])}: prepare "
                "it again."
            )
        return training_set

    def images(self) -> Iterator[tuple[Image.Image, Image.Image, str]]:
        """(image, mask, caption) for each item, read from the training set's folder."""
        if self.directory is None:
            raise UsageError("This training set has no folder yet: save or load it first.")
        for item in self.items:
            with (
                Image.open(self.directory / item.file) as image,
                Image.open(self.directory / item.mask_file) as mask,
            ):
                yield image.convert("RGB"), mask.convert("L"), item.caption


def load_training_set(directory: str | os.PathLike[str]) -> TrainingSet:
    """Read a training set written by `prepare_training_set`."""
    return TrainingSet.load(directory)


@dataclass
class Crop:
    """A crop of one photo around the product, at its training size."""

    image: Image.Image  # RGB
    mask: Image.Image  # L
    box: tuple[int, int, int, int]
    mask_source: str
    upscaled: bool


def prepare_training_set(
    report_or_photos: PhotoSetReport | Sequence[NormalisedPhoto],
    out_dir: str | os.PathLike[str],
    *,
    resolution: int,
    token: str,
    class_word: str,
    captioner: Captioner | None = None,
    config: IntakeConfig | None = None,
    buckets: bool = True,
    size_multiple: int | None = None,
    progress: ProgressCallback = no_progress,
) -> TrainingSet:
    """Write crops centred on the product, their masks and captions to `out_dir`.

    From a report, the accepted photos are read again from its folder (extra exact copies
    left out; a file changed since the check is an error); or pass normalised photos. With
    `buckets` each photo goes to the aspect bucket nearest its own aspect (about `resolution`²
    pixels, sides multiples of `size_multiple`: the family's, or by default one every family
    able to train at `resolution` takes; `packshot.models.sizes`), so that a landscape photo
    stays landscape; without, every crop is the square of `resolution`. Each crop is the
    largest box of its bucket's aspect around the product (its alpha mask, else an estimate,
    else the centre), padded where the product needs more room than the photo has, resized
    to the bucket. Captions are "a photo of <token> <class_word>", followed by the
    captioner's words when one is given. `out_dir` is replaced as a whole when it holds an
    earlier training set, and must otherwise be empty or new.
    """
    # 1. Check the arguments.
    _check_arguments(resolution, token, class_word)
    multiple = size_multiple or training_multiple(resolution)
    if buckets and resolution % multiple:
        raise UsageError(
            f"Aspect buckets at {resolution} px need a resolution in multiples of {multiple} "
            f"px: use {resolution // multiple * multiple or multiple} or "
            f"{(resolution // multiple + 1) * multiple}, or square crops (buckets off)."
        )
    sizes: tuple[Size, ...] = (
        aspect_buckets(resolution, multiple) if buckets else ((resolution, resolution),)
    )
    token, class_word = token.strip(), " ".join(class_word.split())
    out = Path(out_dir)
    if isinstance(report_or_photos, PhotoSetReport):
        report = report_or_photos
        config = config or IntakeConfig.from_dict(report.config)
        if report.verdict == "not enough":
            raise PhotoSetError(
                f"Not enough photos to train on ({report.distinct_count} distinct, "
                f"{config.min_photos} needed): {' '.join(report.advice[:1])}"
            )
        if report.directory is None:
            raise UsageError(
                "This report was made from uploads, so their bytes are gone: pass the photos "
                "(load_photo) instead of the report."
            )
        source_dir = Path(report.directory)
        _check_out_dir(out, source_dir)
        names = report.training_files()
        photos = (_reload(source_dir, report, name, config) for name in names)
    else:
        photos_list = list(report_or_photos)
        config = config or IntakeConfig()
        if not photos_list:
            raise PhotoSetError("No photos to prepare: check the photos first.")
        _check_out_dir(out, None)
        names = [p.name for p in photos_list]
        photos = iter(photos_list)

    # 2. Crop every photo into a temporary folder beside `out_dir`.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        items: list[TrainingImage] = []
        crops: list[Image.Image] = []
        for i, photo in enumerate(photos):
            size = nearest_bucket(*photo.image.size, sizes)
            crop = product_crop(photo, size, config)
            stem = f"photo-{i:03d}"
            crop.image.save(staging / f"{stem}.png", optimize=False)
            crop.mask.save(staging / f"{stem}.mask.png", optimize=False)
            if captioner is not None:
                crops.append(crop.image)
            items.append(
                TrainingImage(
                    file=f"{stem}.png",
                    mask_file=f"{stem}.mask.png",
                    caption=instance_prompt(token, class_word),
                    source=photo.name,
                    source_sha256=photo.sha256,
                    crop_box=list(crop.box),
                    mask_source=crop.mask_source,
                    upscaled=crop.upscaled,
                    size=list(size),
                    photo_size=list(photo.image.size),
                )
            )
            progress(
                ProgressEvent(
                    "prepare", i + 1, len(names), f"cropped {photo.name}", {"file": photo.name}
                )
            )

        # 3. Captions: one text file per image, and in the manifest.
        if captioner is not None:
            generated = captioner.caption(crops)
            if len(generated) != len(items):
                raise PackshotError(
                    f"The captioner returned {len(generated)} captions for {len(items)} images."
                )
            for item, text in zip(items, generated, strict=True):
                item.caption = combine_caption(token, class_word, text)
        for item in items:
            (staging / Path(item.file).with_suffix(".txt")).write_text(item.caption + "\n", "utf-8")

        # 4. The manifest, then swap the folder into place.
        training_set = TrainingSet(
            resolution=resolution,
            token=token,
            class_word=class_word,
            instance_prompt=instance_prompt(token, class_word),
            captioner=getattr(captioner, "name", type(captioner).__name__) if captioner else None,
            items=items,
            config=config.to_dict(),
            buckets=buckets,
            size_multiple=multiple if buckets else None,
        )
        training_set.save(staging)
        if out.exists():
            shutil.rmtree(out)  # an earlier training set, or empty (see _check_out_dir)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    training_set.directory = out
    return training_set


def product_crop(photo: NormalisedPhoto, size: Size, config: IntakeConfig) -> Crop:
    """The largest box of `size`'s aspect around the product, resized to `size` (width,
    height); see prepare_training_set. For a square `size`: the largest square."""
    width, height = photo.image.size
    out_w, out_h = size
    aspect = out_w / out_h
    small = downscale(photo.image)  # (h, w, 3), long side 256
    scale_x, scale_y = width / small.shape[1], height / small.shape[0]

    # 1. Where the product is, in full-size pixels: (x0, y0, x1, y1) or None.
    product_box: tuple[float, float, float, float] | None = None
    estimate = None
    if photo.mask is not None:
        alpha = np.asarray(photo.mask) >= 128
        if alpha.any():
            product_box = bounding_box(alpha)
        mask_source = "alpha"
    else:
        estimate = estimate_foreground(small, refine=True)
        if estimate is not None:
            x0, y0, x1, y1 = bounding_box(estimate)
            product_box = (x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y)
        mask_source = "estimate" if estimate is not None else "none"

    # 2. The box: as large as the photo allows at the aspect, or larger (padded) when the
    #    product needs more room, until it spans the photo the other way too. The side the
    #    photo limits is computed first, in whole pixels; the other follows from the aspect.
    product_w, product_h = (0.0, 0.0)
    centre = (width / 2, height / 2)
    if product_box is not None:
        x0, y0, x1, y1 = product_box
        product_w, product_h = x1 - x0, y1 - y0
        centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    margin = 1 + 2 * config.crop_margin
    if width * out_h >= height * out_w:  # the photo is at least as wide as the bucket
        needed = max(product_w / aspect, product_h) * margin
        box_h = min(int(max(height, width / aspect)), max(height, math.ceil(needed)))
        box_w = round(box_h * aspect)
    else:
        needed = max(product_w, product_h * aspect) * margin
        box_w = min(int(max(width, height * aspect)), max(width, math.ceil(needed)))
        box_h = round(box_w / aspect)
    left = _place(centre[0], box_w, width)
    top = _place(centre[1], box_h, height)
    box = (left, top, left + box_w, top + box_h)

    # 3. Resize the part of the box inside the photo; pad the rest (where the box overhangs).
    rx, ry = out_w / box_w, out_h / box_h
    inside = (max(left, 0), max(top, 0), min(left + box_w, width), min(top + box_h, height))
    inside_size = (
        max(1, round((inside[2] - inside[0]) * rx)),
        max(1, round((inside[3] - inside[1]) * ry)),
    )
    offset = (round((inside[0] - left) * rx), round((inside[1] - top) * ry))
    if photo.mask is not None:
        pad = config.matte
    else:
        pad = tuple(int(v) for v in np.median(small[border_band(*small.shape[:2], 0.05)], axis=0))
    image = Image.new("RGB", size, pad)
    image.paste(
        photo.image.resize(inside_size, Image.Resampling.LANCZOS, box=inside, reducing_gap=3.0),
        offset,
    )

    # 4. The mask, cut the same way: alpha, the estimate (upsampled), or the whole photo.
    mask = Image.new("L", size, 0)
    if photo.mask is not None:
        source_mask = photo.mask.resize(inside_size, Image.Resampling.BILINEAR, box=inside)
    elif estimate is not None:
        small_box = (
            inside[0] / scale_x,
            inside[1] / scale_y,
            min(inside[2] / scale_x, small.shape[1]),
            min(inside[3] / scale_y, small.shape[0]),
        )
        upsampled = Image.fromarray(estimate * 255).resize(
            inside_size, Image.Resampling.BILINEAR, box=small_box
        )
        source_mask = upsampled.point(lambda v: 255 if v >= 128 else 0)
    else:
        source_mask = Image.new("L", inside_size, 255)
    mask.paste(source_mask, offset)
    return Crop(image, mask, box, mask_source, upscaled=box_w < out_w)


def _place(centre: float, side: int, length: int) -> int:
    """Start of a `side`-long window centred on `centre`, kept over the `length`-long image."""
    start = round(centre - side / 2)
    low, high = sorted((0, length - side))  # when side > length the window overhangs both ends
    return min(max(start, low), high)


def _reload(
    directory: Path, report: PhotoSetReport, name: str, config: IntakeConfig
) -> NormalisedPhoto:
    photo = load_photo(directory / name, name, config)
    if photo.sha256 != report.photo(name).sha256:
        raise PhotoSetError(
            f"{name} in {directory} changed since it was checked: check the photos again."
        )
    return photo


def _check_arguments(resolution: int, token: str, class_word: str) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise UsageError(f"`resolution` must be an integer, got {resolution!r}.")
    if resolution < 64 or resolution > 4096 or resolution % 8:
        raise UsageError(
            f"`resolution` must be a multiple of 8 between 64 and 4096, got {resolution}."
        )
    if not token.strip() or len(token.split()) != 1:
        raise UsageError(f"`token` must be one word (e.g. 'sks'), got {token!r}.")
    if not class_word.strip():
        raise UsageError(
            f"`class_word` must name the kind of product (e.g. 'backpack'), got {class_word!r}."
        )


def _check_out_dir(out: Path, source: Path | None) -> None:
    """Refuse to write into the photos' folder, or over a folder that isn't a training set."""
    resolved = out.resolve()
    if source is not None:
        source = source.resolve()
        if resolved == source or source in resolved.parents:
            raise UsageError(
                f"The training set can't go into the photos' folder ({out}): originals are "
                "never written to; choose another folder."
            )
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"{out} is a file: choose a folder for the training set.")
        if any(out.iterdir()) and not _is_training_set(out):
            raise UsageError(
                f"{out} is not empty and holds no training set: choose an empty or new folder."
            )


def _is_training_set(directory: Path) -> bool:
    """Whether `directory` holds a training set (other artifacts have a packshot.json too)."""
    try:
        data = json.loads((directory / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == KIND
