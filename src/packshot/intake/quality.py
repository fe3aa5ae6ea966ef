"""Measurements of one photo: sharpness, exposure, perceptual hash, background, product outline."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from packshot.intake.config import IntakeConfig
from packshot.intake.decode import NormalisedPhoto
from packshot.intake.foreground import (
    border_band,
    bounding_box,
    downscale,
    estimate_foreground,
    mask_from_alpha,
    to_lab,
)

SHARPNESS_SIDE = 512  # px on the short side: sharpness is measured at training-like scale
CLIPPED_WHITE, CLIPPED_BLACK = 250, 5  # luminance (0–255) counted as blown out / crushed


@dataclass
class Background:
    """The colours and texture of a photo's border region (the outer 8%)."""

    palette: np.ndarray  # (4, 4) float32 rows of [weight, L, a, b]: k-means colours in CIELAB
    lab: tuple[float, float, float]  # the mean colour
    gradient: float  # median gradient magnitude of L: fine texture
    spread: float  # standard deviation of L: one surface (small) or several (large)


@dataclass
class PhotoFeatures:
    """Everything the set-level checks need from one photo; the pixels themselves are dropped."""

    sharpness: float
    brightness: float  # mean luminance, 0–1
    p99: float  # the brightest 1% of the strongest channel (0–255): a deep red counts as bright
    highlights_clipped: float  # share of the product's box (or the centre) at luminance ≥ 250
    shadows_clipped: float  # share of the whole photo at luminance ≤ 5
    phash: int  # 63-bit DCT perceptual hash
    thumbnail: np.ndarray  # (64, 64) float32 grey, zero mean, unit variance
    structure: np.ndarray  # (256,) float64: 16×16 grey, zero mean, unit norm
    background: Background | None  # None when the photo has an alpha mask
    silhouette: np.ndarray | None  # (32, 32) bool product outline in its bounding box
    appearance: np.ndarray | None  # (256,) float64: 16×16 grey product crop, unit norm


def measure(photo: NormalisedPhoto) -> PhotoFeatures:
    """Measure one normalised photo (a few tens of milliseconds at 256–512 px)."""
    small = downscale(photo.image)  # (h, w, 3), long side 256
    grey_small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    luminance = _luminance(small)

    # 1. Where the product is: the alpha mask, else an estimate (None when unsure).
    if photo.mask is not None:
        product = mask_from_alpha(photo.mask, grey_small.shape)
    else:
        product = estimate_foreground(small)

    # 2. Exposure, on the product's box when it was found, else on the centre of the photo.
    # The box, not the outline: blown-out parts of a product look like a white backdrop.
    h, w = luminance.shape
    if product is not None:
        x0, y0, x1, y1 = bounding_box(product)
        dx, dy = (x1 - x0) // 10, (y1 - y0) // 10  # its inner 80%: fewer backdrop corners
        region = luminance[y0 + dy : y1 - dy, x0 + dx : x1 - dx]
    else:
        region = luminance[h // 4 : h - h // 4, w // 4 : w - w // 4]

    # 3. The product's outline and look, for the same-angle check.
    silhouette = appearance = None
    if product is not None:
        x0, y0, x1, y1 = bounding_box(product)
        crop = product[y0:y1, x0:x1].astype(np.float32)
        silhouette = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA) >= 0.5
        grey_crop = grey_small[y0:y1, x0:x1].astype(np.float32)
        inside = product[y0:y1, x0:x1] > 0
        grey_crop[~inside] = grey_crop[inside].mean()  # the backdrop mustn't count
        appearance = _unit(cv2.resize(grey_crop, (16, 16), interpolation=cv2.INTER_AREA))

    return PhotoFeatures(
        sharpness=sharpness(photo),
        brightness=float(luminance.mean() / 255.0),
        p99=float(np.percentile(small.max(axis=2), 99)),
        highlights_clipped=float((region >= CLIPPED_WHITE).mean()) if region.size else 0.0,
        shadows_clipped=float((luminance <= CLIPPED_BLACK).mean()),
        phash=phash(grey_small),
        thumbnail=_thumbnail(grey_small),
        structure=_unit(
            cv2.resize(grey_small.astype(np.float32), (16, 16), interpolation=cv2.INTER_AREA)
        ),
        background=None if photo.mask is not None else background(small),
        silhouette=silhouette,
        appearance=appearance,
    )


def sharpness(photo: NormalisedPhoto) -> float:
    """97th percentile over an 8×8 grid of the variance of the Laplacian, at 512 px.

    The grey image is first stretched to the full tonal range, so sharpness doesn't depend
    on exposure.
    """
    grey = cv2.cvtColor(np.asarray(photo.image), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    scale = SHARPNESS_SIDE / min(h, w)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    grey = cv2.resize(grey, size, interpolation=interpolation).astype(np.float32)
    # Stretch the tones to 0–255 (at most 8×), so that a dark or flat photo isn't "blurry".
    lo, hi = np.percentile(grey, (1, 99))
    grey = ((grey - lo) * (255.0 / max(float(hi - lo), 32.0))).astype(np.float32)
    laplacian = cv2.Laplacian(grey, cv2.CV_32F)
    rows = np.array_split(np.arange(laplacian.shape[0]), 8)
    cols = np.array_split(np.arange(laplacian.shape[1]), 8)
    tiles = [laplacian[r[0] : r[-1] + 1, c[0] : c[-1] + 1].var() for r in rows for c in cols]
    # The 97th percentile is the second-sharpest of the 64 tiles: a small product is enough.
    return float(np.percentile(tiles, 97))


def phash(grey: np.ndarray) -> int:
    """The classic DCT perceptual hash: 32×32 grey, the 8×8 lowest frequencies but DC, vs median."""
    small = cv2.resize(grey.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].flatten()[1:]  # 63 coefficients; DC is just the brightness
    bits = low > np.median(low)
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    """The number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def block_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest mean absolute difference over the 8×8 blocks of two (64, 64) thumbnails."""
    return float(np.abs(a - b).reshape(8, 8, 8, 8).mean(axis=(1, 3)).max())


def background(small: np.ndarray) -> Background:
    """The border region's palette and texture, from a small RGB image."""
    lab = to_lab(small)
    band = border_band(*lab.shape[:2], 0.08)
    pixels = lab[band].reshape(-1, 3).astype(np.float32)
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(pixels, 4, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    weights = np.bincount(labels.ravel(), minlength=4) / len(labels)
    palette = np.concatenate([weights[:, None], centres], axis=1).astype(np.float32)
    lightness = lab[..., 0]
    gradient = np.hypot(
        cv2.Sobel(lightness, cv2.CV_32F, 1, 0), cv2.Sobel(lightness, cv2.CV_32F, 0, 1)
    )
    mean = pixels.mean(axis=0)
    return Background(
        palette=palette,
        lab=(float(mean[0]), float(mean[1]), float(mean[2])),
        gradient=float(np.median(gradient[band])),
        spread=float(pixels[:, 0].std()),
    )


def is_plain(background: Background, config: IntakeConfig) -> bool:
    """One smooth surface: little fine texture and one lightness."""
    return background.gradient < config.plain_gradient and background.spread < config.plain_spread


def palette_distance(a: Background, b: Background) -> float:
    """Earth mover's distance between two border palettes, in ΔE (CIELAB units)."""
    distance, _, _ = cv2.EMD(a.palette, b.palette, cv2.DIST_L2)
    return float(distance)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two unit-norm, zero-mean vectors: 1 is the same picture."""
    return float(a @ b)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of 8-bit sRGB values (0–255), (H, W) float32."""
    return rgb.astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def _thumbnail(grey: np.ndarray) -> np.ndarray:
    small = cv2.resize(grey.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    return (small - small.mean()) / (small.std() + 1e-6)


def _unit(pixels: np.ndarray) -> np.ndarray:
    vector = pixels.astype(np.float64).ravel()
    vector -= vector.mean()
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 1e-9 else vector
