"""Image sizes for each aspect ratio at a model's native resolution and size multiple.

A model makes its best images at about the number of pixels it was trained at (SD 1.5: 512²,
SDXL: 1024²); other shapes keep that area and change the sides. The resolution and the
multiple are the model family's (`ModelFamily.native_resolution`, `.size_multiple`); the
rounding of a side and its limits are `packshot.models.sizes`', which training's aspect buckets
share.
"""

from __future__ import annotations

import math
import re

from packshot.errors import UsageError
from packshot.models.sizes import MAX_SIDE, MIN_SIDE, round_side

# width:height. 1:1 marketplace main image, 4:5 and 3:4 portrait feeds and product pages,
# 16:9 banners, 9:16 stories and reels.
ASPECTS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1),
    "4:5": (4, 5),
    "3:4": (3, 4),
    "16:9": (16, 9),
    "9:16": (9, 16),
}
MULTIPLE = 8  # SD's VAE halves the image 3 times: sides are multiples of 8 (the default)
# Above this many times its native area a model repeats the subject (two products, two heads).
MAX_AREA_FACTOR = 2.0


def check_aspect(aspect: str) -> str:
    """`aspect` if packshot knows it, else a UsageError naming the ones it knows."""
    aspect = aspect.strip()
    if aspect not in ASPECTS:
        raise UsageError(f"Unknown aspect ratio `{aspect}`. Choose one of: {', '.join(ASPECTS)}.")
    return aspect


def size_for(aspect: str, resolution: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    """(width, height) for `aspect` with about `resolution`² pixels, sides multiples of `multiple`.

    SD 1.5 (512): 1:1 512x512, 4:5 456x576, 3:4 440x592, 16:9 680x384, 9:16 384x680.
    SDXL (1024): 1:1 1024x1024, 4:5 912x1144, 3:4 888x1184, 16:9 1368x768, 9:16 768x1368.
    """
    w, h = ASPECTS[check_aspect(aspect)]
    if resolution < MIN_SIDE:
        raise UsageError(f"A resolution of {resolution} px is below the smallest, {MIN_SIDE}.")
    area = resolution * resolution
    width, height = math.sqrt(area * w / h), math.sqrt(area * h / w)
    return round_side(width, multiple), round_side(height, multiple)


def parse_size(text: str) -> tuple[int, int]:
    """ "768x512" → (768, 512); a UsageError for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if match is None:
        raise UsageError(f"Size `{text}` should be WIDTHxHEIGHT in pixels, such as 512x512.")
    return int(match.group(1)), int(match.group(2))


def check_size(width: int, height: int, resolution: int, multiple: int = MULTIPLE) -> list[str]:
    """Refuse a size no model can make; warnings for one far above the model's native area."""
    for name, side in (("width", width), ("height", height)):
        if side % multiple:
            lower, upper = side // multiple * multiple, (side // multiple + 1) * multiple
            raise UsageError(
                f"The {name} must be a multiple of {multiple}, but is {side}. "
                f"Use {max(lower, MIN_SIDE)} or {upper}."
            )
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise UsageError(
                f"The {name} must be between {MIN_SIDE} and {MAX_SIDE} px, but is {side}."
            )
    warnings = []
    if width * height > MAX_AREA_FACTOR * resolution * resolution:
        warnings.append(
            f"{width}x{height} is more than {MAX_AREA_FACTOR:g}x the {resolution}x{resolution} "
            "pixels this model was trained at: expect repeated or duplicated products. Shoot at "
            "the native size and upscale instead."
        )
    return warnings
