"""Cut the product out of its photo: the merchant's mask, else the photo's alpha, else a
background-removal model (ONNX), else OpenCV's GrabCut seeded from the photo's border.

The result is a 0/1 mask at the photo's size and where it came from; a photo in which no
product can be told from its background is a PhotoError that says what to send instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from packshot.errors import ModelNotFoundError, PhotoError, UsageError
from packshot.intake.decode import NormalisedPhoto
from packshot.intake.foreground import border_band, downscale, estimate_foreground, fill_holes
from packshot.place import matting

CUTOUT_MODEL_ENV = "PACKSHOT_CUTOUT_MODEL"  # a .onnx file, URL, Hub repo or known name
GRABCUT = "grabcut"  # --cutout-model grabcut: the classical cut-out, no model
AUTO = "auto"  # the configured model (env), else the default one, else GrabCut
# A product covering less than this share of the photo is a speck; more than MAX_SHARE leaves
# no background to replace.
MIN_SHARE, MAX_SHARE = 0.002, 0.97
GRABCUT_SIDE = 512  # px on the long side GrabCut works at: ~1 s on a CPU
GRABCUT_ITERATIONS = 5


@dataclass
class Cutout:
    """The product's mask in the photo and where it came from."""

    mask: np.ndarray  # (H, W) uint8 0/1 at the photo's size
    source: str  # "mask", "alpha", "model", "grabcut"
    model: dict[str, str] | None = None  # the ONNX model used, for the record
    warnings: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return float(self.mask.mean())


def read_mask(path: Path | str, photo: NormalisedPhoto) -> np.ndarray:
    """The merchant's mask file as 0/1 at the photo's size: white (or opaque) is product."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            mask = (
                image.getchannel("A")
                if "A" in image.getbands() and image.getextrema()[-1][0] < 255
                else image.convert("L")
            )
    except FileNotFoundError:
        raise UsageError(f"Mask not found: {path}.") from None
    except OSError as error:
        raise UsageError(f"Can't read the mask {path} as an image ({error}).") from None
    if mask.size != photo.image.size:
        turned = " (it has the photo's size before its EXIF rotation: rotate it too)"
        hint = turned if mask.size == photo.stored_size[::-1] else ""
        raise UsageError(
            f"The mask {path.name} is {mask.width}x{mask.height} but the photo is "
            f"{photo.width}x{photo.height}{hint}. Draw the mask on the photo itself."
        )
    return (np.asarray(mask) >= 128).astype(np.uint8)


def check_mask(mask: np.ndarray, what: str) -> None:
    """Refuse an empty mask and one that leaves no background."""
    share = float(mask.mean())
    if share < MIN_SHARE:
        raise UsageError(
            f"{what} is empty (the product covers {share:.1%} of the photo). White marks the "
            "product: draw it over the product."
        )
    if share > MAX_SHARE:
        raise UsageError(
            f"{what} covers {share:.1%} of the photo: there is no background left to replace. "
            "White marks the product only; the rest must be black."
        )


def grabcut_mask(image: Image.Image) -> np.ndarray | None:
    """A 0/1 product mask by GrabCut seeded from the border; None when nothing stands out.

    The outer 3% of the photo is certain background. Inside, pixels whose colour is far from
    the border's (intake's estimate) are probable product, the rest probable background; with
    no such estimate, everything inside is probable product. GrabCut then fits its colour
    models and cuts; the biggest pieces are kept, holes filled, and the mask is scaled back up.
    """
    small = downscale(image, GRABCUT_SIDE)  # (h, w, 3)
    h, w = small.shape[:2]
    estimate = estimate_foreground(small)
    seeds = np.full((h, w), cv2.GC_PR_FGD, np.uint8)
    if estimate is not None:
        seeds[estimate == 0] = cv2.GC_PR_BGD
    seeds[border_band(h, w, 0.03)] = cv2.GC_BGD
    cv2.setRNGSeed(0)  # GrabCut's k-means: the same mask every time
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(
            np.ascontiguousarray(small),
            seeds,
            None,
            background_model,
            foreground_model,
            GRABCUT_ITERATIONS,
            cv2.GC_INIT_WITH_MASK,
        )
    except cv2.error:
        return None  # e.g. one flat colour: nothing for its colour models to learn
    cut = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    cut = cv2.morphologyEx(cut, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cut, connectivity=8)
    if count <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= 0.2 * areas.max())
    cut = fill_holes(np.isin(labels, keep).astype(np.uint8))
    full = cv2.resize(cut * 255, image.size, interpolation=cv2.INTER_LINEAR)
    mask = (full >= 128).astype(np.uint8)
    return mask if MIN_SHARE <= mask.mean() <= MAX_SHARE else None


def cut_out(
    photo: NormalisedPhoto,
    *,
    mask_path: Path | str | None = None,
    model: str | None = AUTO,
    cache_dir: Path,
) -> Cutout:
    """The product's mask in `photo`, from the first source that has one (see the module doc).

    `model`: "auto" (PACKSHOT_CUTOUT_MODEL, else the default model, downloaded on first use;
    GrabCut when neither is available), "grabcut", or a model reference (see `matting`).
    """

    # 1. The merchant's own mask, then the photo's alpha channel.
    if mask_path is not None:
        mask = read_mask(mask_path, photo)
        check_mask(mask, f"The mask {Path(mask_path).name}")
        return Cutout(mask, "mask")
    if photo.mask is not None:
        mask = (np.asarray(photo.mask) >= 128).astype(np.uint8)
        check_mask(mask, f"The transparency (alpha channel) of {photo.name}")
        return Cutout(mask, "alpha")

    # 2. A background-removal model.
    warnings: list[str] = []
    model = (model or AUTO).strip()
    configured = os.environ.get(CUTOUT_MODEL_ENV, "").strip()
    ref = model if model != AUTO else configured or matting.DEFAULT_MODEL
    explicit = model != AUTO or bool(configured)  # asked for by name: its failure is an error
    if model != GRABCUT:
        try:
            session = matting.load_matting_model(ref, cache_dir)
        except ModelNotFoundError as error:
            if explicit:
                raise
            warnings.append(
                f"No background-removal model available ({error}) Cut out with GrabCut instead: "
                f"check the mask in product/mask.png, or pass your own with --mask."
            )
        else:
            soft = session.predict(photo.image)
            mask = fill_holes((soft >= 0.5).astype(np.uint8))
            if not MIN_SHARE <= mask.mean() <= MAX_SHARE:
                raise PhotoError(_no_product(photo.name, f"the model {ref}"), "no_product")
            return Cutout(mask, "model", session.describe(), warnings)

    # 3. GrabCut.
    mask = grabcut_mask(photo.image)
    if mask is None:
        raise PhotoError(_no_product(photo.name, "GrabCut"), "no_product")
    return Cutout(mask, "grabcut", None, warnings)


def _no_product(name: str, how: str) -> str:
    return (
        f"No product found in {name}: {how} couldn't tell a product from the background. "
        "Use a photo of the product on a plain background, or pass a mask (--mask) or a "
        "transparent PNG."
    )
