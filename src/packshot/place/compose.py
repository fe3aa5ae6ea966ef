"""Put the real product on a canvas, and put it back, untouched, over the generated scene.

The guarantee: every pixel of the *core* (the product's mask eroded by GUARANTEE_BAND_PX with
a square, i.e. every pixel whose (2·band+1)² neighbourhood lies wholly inside the mask) is the
product's own pixel as placed; with --keep-framing (scale 1, no move) the photo's own pixel.
Only the band, between the core and the mask's edge, is blended with the scene: feathered
edges and a little of the scene's light wrapped onto them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from packshot.errors import UsageError

# px: the edge band that may be blended. The mask's edge is where a cut-out is least sure of
# itself (hair-thin fringe, anti-aliasing); 2 px hides that without touching the product.
GUARANTEE_BAND_PX = 2
LIGHT_WRAP = 0.35  # how much of the blurred scene's colour the outermost band pixels take
PLACEMENTS_FILE = Path(__file__).resolve().parents[1] / "presets" / "placements.json"
DEFAULT_COMPOSITION = "hero"
MAX_UPSCALE = 2.0  # a product enlarged more than this looks soft: it is placed smaller instead
MIN_PLACED_SHARE = 0.02  # a product smaller than this share of the canvas gets a warning


@dataclass(frozen=True)
class Composition:
    """Where the product goes on the canvas, how large, and which shadow it casts."""

    name: str
    label: str
    centre: tuple[float, float]  # fractions of width and height
    fill: float  # share of the canvas's width or height the product's box takes
    shadow: str  # "contact" or "drop"


def load_compositions() -> tuple[dict[str, Composition], dict[str, str]]:
    """The compositions and which shot preset uses which, from presets/placements.json."""
    data = json.loads(PLACEMENTS_FILE.read_text(encoding="utf-8"))
    compositions = {
        name: Composition(
            name=name,
            label=str(v["label"]),
            centre=(float(v["centre"][0]), float(v["centre"][1])),
            fill=float(v["fill"]),
            shadow=str(v["shadow"]),
        )
        for name, v in data["compositions"].items()
    }
    return compositions, {k: str(v) for k, v in data["presets"].items()}


def get_composition(name: str) -> Composition:
    compositions, _ = load_compositions()
    if name not in compositions:
        raise UsageError(f"Unknown composition `{name}`. Choose one of: {', '.join(compositions)}.")
    return compositions[name]


def composition_for_preset(preset: str | None) -> Composition:
    """The composition a shot preset places the product in; UsageError for presets that need
    something drawn around the product (a hand, a person)."""
    compositions, by_preset = load_compositions()
    if preset is None:
        return compositions[DEFAULT_COMPOSITION]
    if preset not in by_preset:
        raise UsageError(
            f"The shot preset `{preset}` can't be shot in pixel-true mode: it needs the product "
            "held or worn, which means drawing it. Use one of "
            f"{', '.join(by_preset)} here, or `packshot shoot` with a trained model."
        )
    return compositions[by_preset[preset]]


@dataclass
class Placement:
    """The product on the canvas: its pixels, its mask, its box and the scale applied."""

    canvas: tuple[int, int]  # (width, height) of the output
    rgb: np.ndarray  # (H, W, 3) uint8: the product where it is placed, zeros elsewhere
    mask: np.ndarray  # (H, W) uint8 0/1: where the product is
    box: tuple[int, int, int, int]  # (x, y, width, height) of the product's box on the output
    scale: float  # output px per photo px

    def to_dict(self) -> dict[str, Any]:
        x, y, w, h = self.box
        return {"x": x, "y": y, "width": w, "height": h, "scale": round(self.scale, 6)}


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the non-zero pixels."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0


def keep_framing(photo: np.ndarray, mask: np.ndarray) -> Placement:
    """The product exactly where and as large as it is in the photo (scale 1)."""
    h, w = mask.shape
    rgb = np.where(mask[..., None] > 0, photo, 0).astype(np.uint8)
    return Placement((w, h), rgb, mask.astype(np.uint8), mask_box(mask), 1.0)


def place_product(
    photo: np.ndarray,
    mask: np.ndarray,
    canvas: tuple[int, int],
    composition: Composition,
) -> tuple[Placement, list[str]]:
    """The product cut from `photo` (H, W, 3) by `mask`, scaled and moved onto `canvas`."""
    width, height = canvas
    warnings: list[str] = []
    x, y, bw, bh = mask_box(mask)

    # 1. Scale: the product's box takes `fill` of the canvas, never enlarged past MAX_UPSCALE.
    scale = min(composition.fill * width / bw, composition.fill * height / bh)
    if scale > MAX_UPSCALE:
        warnings.append(
            f"The product is only {bw}x{bh} px in the photo: it is placed at {MAX_UPSCALE:g}x "
            "its size, smaller than the composition asks. Use a larger photo for a bigger product."
        )
        scale = MAX_UPSCALE
    pw, ph = max(1, round(bw * scale)), max(1, round(bh * scale))
    if pw * ph < MIN_PLACED_SHARE * width * height:
        warnings.append(
            f"The product takes only {pw * ph / (width * height):.1%} of the {width}x{height} "
            "canvas (its shape doesn't suit this aspect ratio): choose an aspect closer to the "
            "product's own."
        )

    # 2. Resample the product's box (area averaging down, Lanczos up) and its mask.
    crop = photo[y : y + bh, x : x + bw]
    crop_mask = mask[y : y + bh, x : x + bw].astype(np.float32)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4
    rgb_small = cv2.resize(crop, (pw, ph), interpolation=interpolation)
    mask_small = cv2.resize(crop_mask, (pw, ph), interpolation=cv2.INTER_AREA) >= 0.5

    # 3. Where it goes: its box's middle at the composition's centre, kept inside the canvas.
    left = int(round(composition.centre[0] * width - pw / 2))
    top = int(round(composition.centre[1] * height - ph / 2))
    left, top = min(max(0, left), max(0, width - pw)), min(max(0, top), max(0, height - ph))
    pw, ph = min(pw, width - left), min(ph, height - top)
    rgb = np.zeros((height, width, 3), np.uint8)
    placed_mask = np.zeros((height, width), np.uint8)
    inside = mask_small[:ph, :pw]
    rgb[top : top + ph, left : left + pw][inside] = rgb_small[:ph, :pw][inside]
    placed_mask[top : top + ph, left : left + pw] = inside
    if not placed_mask.any():
        raise UsageError(
            f"The product vanished when scaled onto the {width}x{height} canvas: it is too thin "
            "in the photo. Use a closer photo of it."
        )
    return Placement(canvas, rgb, placed_mask, mask_box(placed_mask), scale), warnings


def core(mask: np.ndarray, band: int = GUARANTEE_BAND_PX) -> np.ndarray:
    """The guaranteed region: `mask` eroded by `band` px with a square (bool (H, W))."""
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    return cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) > 0


def generation_mask(placement: Placement, band: int = GUARANTEE_BAND_PX) -> np.ndarray:
    """What the inpainting model paints (255) and keeps (0): everything but the core."""
    return np.where(core(placement.mask, band), 0, 255).astype(np.uint8)


def add_shadow(scene: np.ndarray, placement: Placement, kind: str) -> np.ndarray:
    """`scene` (H, W, 3) uint8 darkened where the product would shade it."""
    height, width = scene.shape[:2]
    x, y, w, h = placement.box
    shade = np.zeros((height, width), np.float32)
    if kind == "drop":
        # Soft overhead light: the outline, offset down and right, blurred.
        dx, dy = max(1, round(0.02 * w)), max(1, round(0.03 * h))
        matrix = np.float32([[1, 0, dx], [0, 1, dy]])
        shade = cv2.warpAffine(placement.mask.astype(np.float32), matrix, (width, height))
        sigma, opacity = max(1.0, 0.03 * max(w, h)), 0.35
    else:
        # Where the product meets the ground: a flat ellipse under its bottom edge.
        centre = (x + w // 2, min(height - 1, y + h - max(1, h // 40)))
        axes = (max(1, int(0.45 * w)), max(1, int(0.06 * h)))
        cv2.ellipse(shade, centre, axes, 0, 0, 360, 1.0, thickness=-1)
        sigma, opacity = max(1.0, 0.5 * axes[1] + 0.01 * w), 0.45
    shade = _soft_blur(shade, sigma)
    darkened = scene.astype(np.float32) * (1.0 - opacity * shade[..., None])
    return np.clip(darkened + 0.5, 0, 255).astype(np.uint8)


def _soft_blur(field: np.ndarray, sigma: float, max_sigma: float = 4.0) -> np.ndarray:
    """A Gaussian blur of a smooth (H, W) field; wide ones are done on a smaller copy.

    A shadow's blur is tens of px wide on a 12 MP photo: blurring at full size costs seconds
    per shot, while blurring a copy shrunk until sigma is `max_sigma` px and scaling it back
    gives the same soft field to a fraction of a level.
    """
    if sigma <= max_sigma:
        return cv2.GaussianBlur(field, (0, 0), sigma)
    h, w = field.shape
    factor = sigma / max_sigma
    small = cv2.resize(
        field, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), max_sigma)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def composite(scene: np.ndarray, placement: Placement, band: int = GUARANTEE_BAND_PX) -> np.ndarray:
    """The product over `scene` (H, W, 3 uint8, the canvas's size), with the guarantee kept.

    Only the product's box (and a margin for the blur) is worked on; elsewhere the scene is
    left as it is.
    1. Alpha: 1 on the core, rising across the band from the mask's edge, 0 outside.
    2. Light wrap: band pixels take a little of the blurred scene's colour, most at the edge.
    3. Blend, then paste the core back byte for byte (the guarantee; blending alone could be
       a level off after rounding).
    """
    height, width = placement.mask.shape
    sigma = max(1.0, band * 2.0)
    margin = band + int(4 * sigma) + 2
    x, y, w, h = placement.box
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(width, x + w + margin), min(height, y + h + margin)
    region = (slice(y0, y1), slice(x0, x1))
    mask = placement.mask[region].astype(np.uint8)
    rgb, sub_scene = placement.rgb[region], scene[region]
    inner = core(mask, band)
    # 1. (h, w) alpha from the distance to the nearest pixel outside the mask.
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    alpha = np.clip(distance / (band + 1), 0.0, 1.0)
    alpha[inner] = 1.0
    alpha[mask == 0] = 0.0
    # 2. The scene's light at the edges.
    product = rgb.astype(np.float32)
    blurred = cv2.GaussianBlur(sub_scene.astype(np.float32), (0, 0), sigma)
    wrap = (LIGHT_WRAP * (1.0 - alpha))[..., None]
    product = product * (1.0 - wrap) + blurred * wrap
    # 3. Blend and paste back.
    a = alpha[..., None]
    blended = np.clip(sub_scene.astype(np.float32) * (1.0 - a) + product * a + 0.5, 0, 255)
    blended = blended.astype(np.uint8)
    blended[inner] = rgb[inner]
    out = scene.copy()
    out[region] = blended
    return out
