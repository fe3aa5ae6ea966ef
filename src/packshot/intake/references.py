"""Which of a merchant's photos show the product best, as reference images for a model that
takes them at generation time (FLUX.2 [klein]): intake's own judgement of a checked set.

A good reference is sharp, well exposed, shows the product large, and adds an angle the
others don't show: so near-duplicates count once, blurry or badly exposed photos come last, and
among the rest the product's share of the frame (intake's foreground estimate) and the
sharpness decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from packshot.errors import PhotoSetError
from packshot.intake.decode import load_photo
from packshot.intake.foreground import downscale, estimate_foreground
from packshot.intake.report import PhotoSetReport

MAX_REFERENCES = 4  # FLUX.2 [klein]'s pipelines take a few; each adds a full image of tokens


@dataclass(frozen=True)
class Reference:
    """A photo picked as a reference, and why."""

    file: str  # relative to the checked folder
    product_share: float  # of the frame, from the foreground estimate (0 when unsure)
    sharpness: float
    reasons: tuple[str, ...]  # why it ranks lower, for people: ("blurry",), ()


def _product_share(path: Path) -> float:
    rgb = downscale(load_photo(path).image)
    mask = estimate_foreground(rgb)
    return float(mask.mean()) if mask is not None else 0.0


def pick_references(
    report: PhotoSetReport, count: int = MAX_REFERENCES, folder: Path | str | None = None
) -> list[Reference]:
    """Up to `count` of the report's accepted photos, best first: one per group of
    near-duplicates, sharp and well exposed before the rest, then the largest product and the
    sharpest. `folder` is where the files are (default: the report's folder)."""
    base = Path(folder or report.directory or ".")
    if not report.accepted:
        raise PhotoSetError(
            "None of the photos can be used as a reference: " + " ".join(report.advice)
        )
    copies = {f for group in report.duplicates for f in group.files[1:]}
    picked: list[tuple[tuple[float, ...], Reference]] = []
    for photo in report.accepted:
        if photo.file in copies:
            continue
        reasons = tuple(
            reason
            for reason, bad in (
                ("blurry", photo.scores.blurry),
                (f"{photo.scores.exposure} exposure", photo.scores.exposure != "ok"),
            )
            if bad
        )
        share = _product_share(base / photo.file)
        reference = Reference(photo.file, round(share, 3), photo.scores.sharpness, reasons)
        # A product that fills most of the frame is as good as one that fills it all: shares
        # are compared in steps of 10% so that sharpness decides between them.
        key = (-len(reasons), float(np.floor(min(share, 0.6) * 10)), photo.scores.sharpness)
        picked.append((key, reference))
    picked.sort(key=lambda item: item[0], reverse=True)
    return [reference for _, reference in picked[: max(1, count)]]
