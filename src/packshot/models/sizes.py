"""The image sizes a model takes: sides in its family's multiple, and the aspect-ratio buckets
training sorts its photos into.

A model makes its best images at about the pixels it was trained at; other shapes keep that
area and change the sides (shots: `packshot.shoot.sizes`). Training does the same with its
photos, as kohya-ss sd-scripts, ai-toolkit and OneTrainer do: each photo goes to the bucket
whose aspect is nearest its own, and a batch holds photos of one bucket. This module owns the
rounding of a side and the bucket list, and imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from packshot.errors import UsageError
from packshot.models.families import get_family, trainable_families

MIN_SIDE = 64  # 8 latent pixels: below this the UNet has nothing to work on
MAX_SIDE = 4096  # beyond what any supported family was trained near; memory runs out first
# Buckets span 1:2 to 2:1: a landscape or portrait product photo keeps its frame, and no side
# falls below 0.7 of the resolution (kohya's defaults reach 1:4, where a product is a sliver).
MAX_BUCKET_ASPECT = 2.0
# Bucket sides step by about 1/16 of the resolution: 64 px at 1024, the step of SDXL's own
# training buckets and kohya's default. Finer steps make a bucket per photo, and a batch
# draws from one bucket: batches larger than 1 need photos that share one.
BUCKET_STEPS = 16

Size = tuple[int, int]  # (width, height) in pixels


def round_side(value: float, multiple: int) -> int:
    """`value` rounded to the nearest multiple of `multiple`, and at least MIN_SIDE."""
    return max(MIN_SIDE, int(round(value / multiple)) * multiple)


def training_multiple(resolution: int) -> int:
    """The side multiple of a training set prepared before its model is known (`packshot
    photos prepare`): one that every family able to train at `resolution` takes (SD's 8 and
    FLUX.2's 16: 16; 8 at 200 px, where FLUX.2 can't train)."""
    multiples = [get_family(name).size_multiple for name in trainable_families()]
    fitting = [m for m in multiples if resolution % m == 0]
    return math.lcm(*fitting) if fitting else min(multiples)


def bucket_step(resolution: int, multiple: int) -> int:
    """The step of the bucket sides: the largest multiple of `multiple` that divides
    `resolution` (so that the square is a bucket) and is at most 1/16 of it; else `multiple`."""
    steps = [
        step
        for step in range(multiple, resolution // BUCKET_STEPS + 1, multiple)
        if resolution % step == 0
    ]
    return max(steps, default=multiple)


def aspect_buckets(resolution: int, multiple: int) -> tuple[Size, ...]:
    """The (width, height) buckets of a training run at `resolution` px, sides in `multiple`s.

    Each holds at most resolution² pixels, as close to it as the step allows, with an aspect
    between 1:2 and 2:1; the square is one, and every landscape bucket has its portrait twin.
    Ordered from the tallest to the widest. SDXL at 1024 (step 64): 1024x1024, 1088x960,
    1152x896, 1216x832, 1344x768, 1408x704 and their portraits; SD 1.5 at 512 (step 32):
    512x512, 544x480, 576x448, 608x416, 672x384, 704x352 and theirs.
    """
    if multiple < 1 or resolution < MIN_SIDE or resolution % multiple:
        raise UsageError(
            f"The training resolution must be a multiple of {multiple} px, at least {MIN_SIDE}; "
            f"got {resolution}."
        )
    step = bucket_step(resolution, multiple)
    area = resolution * resolution
    # 1. Landscape and square: for each height, the widest width within the area.
    widest: dict[int, int] = {}
    width = resolution
    while True:
        height = area // width // step * step
        if height < MIN_SIDE or width / height > MAX_BUCKET_ASPECT:
            break
        widest[height] = width
        width += step
    landscape = sorted((w, h) for h, w in widest.items())
    # 2. Their portrait twins.
    portrait = [(h, w) for w, h in landscape if w != h]
    return tuple(sorted(portrait + landscape, key=lambda size: size[0] / size[1]))


def nearest_bucket(width: int, height: int, buckets: Sequence[Size]) -> Size:
    """The bucket whose aspect is nearest `width`:`height`'s, measured as a ratio (log
    aspect), so that 2:1 is as far from 1:1 as 1:2 is; ties go to the squarer bucket."""
    if width < 1 or height < 1:
        raise UsageError(f"An image of {width}x{height} px has no aspect ratio.")
    aspect = math.log(width / height)

    def distance(size: Size) -> tuple[float, float]:
        own = math.log(size[0] / size[1])
        return abs(own - aspect), abs(own)

    return min(buckets, key=distance)


def check_bucket(size: Size, resolution: int, multiple: int) -> str | None:
    """Why `size` can't be a bucket of a run at `resolution` in `multiple`s, or None."""
    width, height = size
    if width % multiple or height % multiple:
        return f"its sides are not multiples of {multiple} px"
    if width * height > resolution * resolution:
        return f"it holds more pixels than {resolution}x{resolution}"
    if min(width, height) < MIN_SIDE:
        return f"a side is below {MIN_SIDE} px"
    if max(width / height, height / width) > MAX_BUCKET_ASPECT:
        return "its aspect is beyond 1:2 to 2:1"
    return None
