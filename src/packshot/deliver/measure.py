"""What a marketplace checks, measured on an image: size, format, colour profile, file size,
white background, how much of the frame the product fills, and its "made with AI" label."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageCms

from packshot.artifacts.provenance import read_source_type
from packshot.intake.foreground import ANALYSIS_SIDE, downscale, estimate_foreground

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
WHITE = 255
FRAME_SHARE = 0.02  # the outer band (share of the short side) that must be pure white
FLAT_SPREAD = 3.0  # a frame whose channels spread less than this (std, 0-255) is one colour
BACKGROUND_TOLERANCE = 5  # further than this from a flat background's colour counts as product


@dataclass(frozen=True)
class Measured:
    """One delivered file, as a marketplace would see it."""

    width: int
    height: int
    format: str  # Pillow's name: "JPEG", "PNG"
    file_bytes: int
    colour_profile: str | None  # the ICC profile's description ("sRGB built-in"), or None
    white_frame: float  # share of the outer band that is exactly RGB (255, 255, 255)
    fill: float | None  # the product box's share of the frame; None when it can't be found
    source_type: str | None  # the IPTC digital source type in its XMP

    @property
    def long_side(self) -> int:
        return max(self.width, self.height)

    @property
    def srgb(self) -> bool:
        return (self.colour_profile or "").lower().startswith("srgb")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_band(height: int, width: int) -> np.ndarray:
    """A boolean (H, W) mask of the outer FRAME_SHARE of the short side, at least 1 px."""
    band = max(1, round(FRAME_SHARE * min(height, width)))
    mask = np.zeros((height, width), bool)
    mask[:band] = mask[-band:] = True
    mask[:, :band] = mask[:, -band:] = True
    return mask


def white_frame(rgb: np.ndarray) -> float:
    """The share of the outer band of `rgb` (H, W, 3) that is exactly white."""
    band = frame_band(*rgb.shape[:2])
    return float(np.all(rgb[band] == WHITE, axis=-1).mean())


def flat_colour(rgb: np.ndarray) -> tuple[int, int, int] | None:
    """The colour of the outer band of `rgb` when it is one flat colour (a seamless studio
    background, white or not), else None (a scene)."""
    band = rgb[frame_band(*rgb.shape[:2])].astype(np.float32)
    if float(band.std(axis=0).max()) > FLAT_SPREAD:
        return None
    r, g, b = (int(v) for v in np.median(band, axis=0))
    return r, g, b


def product_mask(rgb: np.ndarray) -> np.ndarray | None:
    """A 0/1 (H, W) mask of the product: on a flat background everything that differs from
    its colour, else the intake's estimate from the border colours (None when unsure)."""
    colour = flat_colour(rgb)
    if colour is not None:
        distance = np.abs(rgb.astype(np.int16) - np.int16(colour)).max(axis=-1)
        mask = (distance > BACKGROUND_TOLERANCE).astype(np.uint8)
        return mask if mask.any() else None
    small = downscale(Image.fromarray(rgb), ANALYSIS_SIDE)
    estimate = estimate_foreground(small)
    if estimate is None:
        return None
    height, width = rgb.shape[:2]
    return cv2.resize(estimate, (width, height), interpolation=cv2.INTER_NEAREST)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the non-zero pixels of a mask."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0


def fill_of(box: tuple[int, int, int, int], width: int, height: int) -> float:
    """How much of a width x height frame a box fills: the larger of its two shares."""
    return max(box[2] / width, box[3] / height)


def colour_profile(image: Image.Image) -> str | None:
    """The description of an image's embedded ICC profile, or None when it has none."""
    icc = image.info.get("icc_profile")
    if not icc:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError):
        return None
    return (profile.profile.profile_description or "").strip() or None


def measure(path: Path) -> Measured:
    """Measure the file at `path` the way a marketplace's image checks do."""
    with Image.open(path) as image:
        fmt = str(image.format)
        profile = colour_profile(image)
        rgb = np.asarray(image.convert("RGB"))
    height, width = rgb.shape[:2]
    mask = product_mask(rgb)
    fill = round(fill_of(mask_box(mask), width, height), 4) if mask is not None else None
    return Measured(
        width=width,
        height=height,
        format=fmt,
        file_bytes=path.stat().st_size,
        colour_profile=profile,
        white_frame=round(white_frame(rgb), 4),
        fill=fill,
        source_type=read_source_type(path),
    )
