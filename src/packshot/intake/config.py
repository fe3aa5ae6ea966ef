"""The thresholds photo intake uses, in one typed, validated config object."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from packshot.errors import UsageError

# Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS): above it Pillow warns, and
# intake turns that warning into a refusal, so `max_pixels` can't usefully be higher.
PILLOW_PIXEL_LIMIT = 89_478_485


@dataclass(frozen=True)
class IntakeConfig:
    """Every threshold of photo intake. Defaults were tuned on the DreamBench photos.

    The numbers behind each default are in the comments; `check_photos` records the config
    it ran with in its report, and `prepare_training_set` in its manifest.
    """

    # 1. Files: refused before their pixels are decoded.
    max_file_bytes: int = 200 * 1024 * 1024  # a 50 MP 16-bit PNG is ~150 MiB; more is no photo
    max_pixels: int = 50_000_000  # from the header; 50 MP covers phones and most cameras
    min_side: int = 256  # px on the short side; SD 1.5 trains at 512, so less is too blurry
    max_aspect: float = 4.0  # long side / short side; a 5:1 strip crops to a fifth of itself

    # 2. One photo at a time. Sharpness is the variance of the Laplacian of the grey image
    # scaled to 512 px on its short side and stretched to the full tonal range, in the
    # second-sharpest of 8×8 tiles (97th percentile): a small sharp product counts, a smooth
    # backdrop or a shallow depth of field doesn't, nor does exposure. Sharp DreamBench
    # photos score 1200 or more (1090 or more when made 2.6 stops darker), sharp synthetic
    # ones (tests/photo_corpus.py) 2500 or more; blurred by a Gaussian of 1.5 px (at 512 px) they
    # score 340 or less.
    blur_threshold: float = 500.0
    # Also blurry: under this fraction of the set's median sharpness (sets of 4 or more),
    # unless sharp in absolute terms (over 3 × blur_threshold). DreamBench's softest photo
    # is at 0.4 × its set's median.
    blur_relative: float = 0.15
    # Under-exposed: the brightest 1% of the photo's strongest channel (so a deep red counts
    # as bright) stays below this (0–255): nothing in it reaches mid-grey. DreamBench: 177 or
    # more (a low-key teapot shot on black included), synthetic sets 150 or more; the same
    # photos 3 stops darker: 97 or less.
    dark_p99: float = 120.0
    # Over-exposed: this share of the product is clipped to white (luminance ≥ 250), in the
    # inner 80% of the product's box (from the mask or the estimated foreground), else in the
    # centre of the photo. DreamBench photos: 0.22 at most (a white clock face in sunlight);
    # products on a blown-out white backdrop: 0.06 at most; DreamBench made 3× brighter:
    # median 0.39 (saturated colours, like a red backpack, never reach 250 and are missed).
    bright_clipped_share: float = 0.35

    # 3. Duplicates: exact by sha256 of the bytes; near by a 63-bit DCT perceptual hash.
    # Re-encoded, resized or recoloured copies differ in 0–2 bits; distinct DreamBench photos
    # in 16 or more.
    near_duplicate_distance: int = 10
    # …and their 64×64 grey thumbnails (normalised) must agree in every 8×8 block to within
    # this many standard deviations. The hash alone can't tell a product on a plain backdrop
    # turned by 30° (0–6 bits apart) from a copy; blocks can: copies differ by 0.03 or less,
    # the product turned by 10° by 0.44 (still "nearly the same photo"), by 15° by 0.64,
    # distinct DreamBench photos by 1.4 or more.
    near_duplicate_block_diff: float = 0.5

    # 4. The set as a whole.
    min_photos: int = 5  # fewer distinct photos: "not enough"
    good_photos: int = 13  # 13–15 already work: "ready" from here on (without warnings)
    better_photos: int = 30  # 30–40 give better results
    max_useful_photos: int = 40  # more rarely helps and makes training slower
    # "Most photos": a feature shared by at least this share of the distinct photos (and by
    # 3 or more) is called out. DreamBench's largest shared-background group is 3 of 6.
    shared_share: float = 0.6
    # Two photos share a background when the colour palettes of their border regions (4
    # k-means colours in CIELAB) are this close (earth mover's distance, in ΔE) and their
    # texture (median gradient) is within `background_texture_ratio` of each other. The same
    # synthetic backdrop measures 0.1–1.7, DreamBench photos on the same bed or sky 3.3,
    # different DreamBench scenes mostly 10 and more.
    background_distance: float = 8.0
    background_texture_ratio: float = 2.0
    # A border region is "plain" with a median gradient (of L, at 256 px) under
    # `plain_gradient` and a lightness spread (std of L) under `plain_spread`: seamless
    # backdrops measure 1.1–1.5 and 0.3, a grey wall 2.3–3.6 and 6; a white wall over a dark
    # table, 1.4 and 40; grass or a forest floor, 7–33.
    plain_gradient: float = 4.0
    plain_spread: float = 10.0
    # Same angle: product outlines (normalised to their bounding box, 32×32) overlap by at
    # least this IoU, and the grey product crops correlate by at least this much. Synthetic
    # same-angle sets: IoU ≥ 0.95 and correlation ≥ 0.80 (median 0.96); DreamBench pairs: at
    # most 0.87 and 0.59, never both over 0.6; the synthetic product turned by 25° still
    # counts (0.92 and 0.87), by 45° or more it doesn't (correlation 0.78 or less).
    same_angle_iou: float = 0.85
    same_angle_appearance: float = 0.85
    # Where no product outline is found, the whole photos' low-frequency structure (16×16
    # grey) must correlate by this much instead; distinct DreamBench photos reach 0.84.
    same_angle_structure: float = 0.9

    # 5. Preparing the training set.
    crop_margin: float = 0.1  # room around the product when it's wider than the photo's short side
    matte: tuple[int, int, int] = (255, 255, 255)  # what transparent areas are filled with

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "matte":
                ok = len(value) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in value)
                if not ok:
                    raise UsageError(f"`matte` must be three integers 0–255, got {value!r}.")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UsageError(f"`{f.name}` must be a number, got {value!r}.")
            if not math.isfinite(value) or value <= 0:
                raise UsageError(f"`{f.name}` must be positive, got {value!r}.")
        if self.max_pixels > PILLOW_PIXEL_LIMIT:
            raise UsageError(
                f"`max_pixels` must be at most {PILLOW_PIXEL_LIMIT} (Pillow's own safety "
                f"limit), got {self.max_pixels}."
            )
        if self.max_aspect < 1:
            raise UsageError(f"`max_aspect` must be at least 1, got {self.max_aspect}.")
        for name in ("blur_relative", "bright_clipped_share", "shared_share", "crop_margin"):
            if getattr(self, name) > 1:
                raise UsageError(f"`{name}` must be at most 1, got {getattr(self, name)}.")
        if not self.min_photos <= self.good_photos <= self.better_photos <= self.max_useful_photos:
            raise UsageError(
                "Photo counts must grow: min_photos ≤ good_photos ≤ better_photos ≤ "
                f"max_useful_photos, got {self.min_photos}, {self.good_photos}, "
                f"{self.better_photos}, {self.max_useful_photos}."
            )

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-ready values."""
        data = asdict(self)
        data["matte"] = list(self.matte)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntakeConfig:
        """The inverse of `to_dict`; unknown keys (from a newer packshot) are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "matte" in values:
            values["matte"] = tuple(values["matte"])
        return cls(**values)
