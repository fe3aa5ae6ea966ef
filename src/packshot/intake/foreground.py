"""Where the product is in a photo: its alpha mask, or an estimate from the border colours."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

ANALYSIS_SIDE = 256  # px on the long side: enough to find a product, fast on a CPU
_MIN_SHARE, _MAX_SHARE = 0.005, 0.85  # a foreground outside this share of the photo is no product


def downscale(image: Image.Image, long_side: int = ANALYSIS_SIDE) -> np.ndarray:
    """The image as a numpy array with its long side scaled (down) to `long_side`."""
    pixels = np.asarray(image)
    h, w = pixels.shape[:2]
    scale = long_side / max(h, w)
    if scale >= 1:
        return pixels.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def border_band(height: int, width: int, fraction: float) -> np.ndarray:
    """A boolean mask of the outer `fraction` of the short side, all around."""
    band = max(2, round(fraction * min(height, width)))
    mask = np.zeros((height, width), bool)
    mask[:band] = mask[-band:] = True
    mask[:, :band] = mask[:, -band:] = True
    return mask


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB (H, W, 3) to CIELAB floats: L 0–100, a and b about ±100."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def mask_from_alpha(mask: Image.Image, shape: tuple[int, int]) -> np.ndarray | None:
    """The alpha mask at `shape` (h, w) as 0/1, or None when it holds no usable product."""
    alpha = cv2.resize(np.asarray(mask), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    binary = (alpha >= 128).astype(np.uint8)
    return binary if _plausible(binary) else None


def estimate_foreground(rgb: np.ndarray, *, refine: bool = False) -> np.ndarray | None:
    """A 0/1 mask of the product in a small RGB image (H, W, 3), or None when unsure.

    The background is modelled by the colours of the border (the outer 5%): 4 k-means colours
    in CIELAB. Pixels far from all of them (more than ΔE 12, or 1.5 × what the border itself
    spreads) are foreground; the biggest blobs are kept. With `refine`, GrabCut seeded with
    that estimate (and the outer 2% as certain background) sharpens the outline. Enclosed
    holes are filled. Textured or
    busy backgrounds give None (or a rough blob), and callers fall back to the centre.
    """
    h, w = rgb.shape[:2]
    if min(h, w) < 16:
        return None
    lab = to_lab(rgb)

    # 1. The background's colours, from the border.
    band = border_band(h, w, 0.05)
    border = lab[band].reshape(-1, 3)
    cv2.setRNGSeed(0)  # k-means and GrabCut draw from OpenCV's RNG: keep them repeatable
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, _, centres = cv2.kmeans(border, 4, None, criteria, 2, cv2.KMEANS_PP_CENTERS)

    # 2. Distance of every pixel to the nearest background colour: (H, W).
    distance = np.min(np.linalg.norm(lab[:, :, None, :] - centres[None, None], axis=-1), axis=-1)
    threshold = max(12.0, 1.5 * float(np.percentile(distance[band], 95)))
    fg = (distance > threshold).astype(np.uint8)

    # 3. Clean up: drop specks, close gaps, keep the big blobs (20% of the biggest or more).
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= 0.2 * areas.max())
    fg = fill_holes(np.isin(labels, keep).astype(np.uint8))
    if not _plausible(fg):
        return None

    # 4. Optionally refine the outline with GrabCut.
    if refine:
        seeds = np.where(fg > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        seeds[border_band(h, w, 0.02)] = cv2.GC_BGD
        background_model = np.zeros((1, 65), np.float64)  # GrabCut's GMM state, 5 × 13
        foreground_model = np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(
                np.ascontiguousarray(rgb),  # its colour models don't mind RGB vs BGR
                seeds,
                None,
                background_model,
                foreground_model,
                3,
                cv2.GC_INIT_WITH_MASK,
            )
        except cv2.error:
            return fg  # e.g. a single-colour foreground GrabCut can't model: keep step 3
        refined = fill_holes(np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8))
        if _plausible(refined):
            fg = refined
    return fg


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """A 0/1 mask with every background region that doesn't reach the border filled in.

    A clock's white face on a white bed matches the background's colour, but it is enclosed
    by the product, so it is product.
    """
    h, w = mask.shape
    outside = np.ones((h + 2, w + 2), np.uint8)  # a 1 px frame of background all around
    outside[1:-1, 1:-1] = 1 - mask
    flood = np.zeros((h + 4, w + 4), np.uint8)  # floodFill wants a mask 2 px larger
    cv2.floodFill(outside, flood, (0, 0), 2)
    return (outside[1:-1, 1:-1] != 2).astype(np.uint8)


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the non-zero pixels of a 0/1 mask, exclusive at the end."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _plausible(mask: np.ndarray) -> bool:
    share = float(mask.mean())
    return _MIN_SHARE <= share <= _MAX_SHARE
