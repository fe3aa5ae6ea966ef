"""The "product present" decision on a shot's DINO scores, and its calibration.

A shot shows the product when its DINO score against the product's own photos reaches
`JudgeConfig.present_threshold` and, when photos of other products of the same class are
given, when it is closer to this product than to the nearest other one by `other_margin`.
`calibrate` picks the threshold from scores known to be positives and negatives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from packshot.errors import UsageError
from packshot.judge.config import JudgeConfig

PRODUCT_MISSING = "product_missing"  # below the threshold, or closer to another product
CLOSER_TO_OTHER = "closer_to_other_product"  # the second reason, when others were given


def decide_present(
    dino: float, dino_other: float | None, config: JudgeConfig
) -> tuple[bool, list[str]]:
    """(present, flags) for one shot; `dino_other` is its best DINO against other products."""
    flags: list[str] = []
    present = dino >= config.present_threshold
    if dino_other is not None and dino - dino_other < config.other_margin:
        present = False
        flags.append(CLOSER_TO_OTHER)
    if not present:
        flags.insert(0, PRODUCT_MISSING)
    return present, flags


@dataclass(frozen=True)
class Calibration:
    """A threshold picked from labelled scores, and how well it separates them."""

    threshold: float
    balanced_accuracy: float  # (true-positive rate + true-negative rate) / 2 at the threshold
    true_positive_rate: float  # share of positives at or above the threshold
    false_positive_rate: float  # share of negatives at or above it
    positives: int
    negatives: int
    positive_mean: float
    negative_mean: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(positives: Sequence[float], negatives: Sequence[float]) -> Calibration:
    """The threshold that best separates `positives` (product shown) from `negatives`.

    Every cut half-way between two neighbouring distinct scores is tried; the one with the
    highest balanced accuracy wins (Youden's J, so unequal class sizes don't bias it); among
    equally good cuts, the one in the middle of the widest gap. "Present" means score >= cut.
    """
    # 1. Check the input.
    pos = [float(x) for x in positives]
    neg = [float(x) for x in negatives]
    if not pos or not neg:
        raise UsageError(
            f"Calibration needs scores of both kinds: got {len(pos)} positive(s) (photos of the "
            f"product) and {len(neg)} negative(s) (photos of other products)."
        )
    if not all(math.isfinite(x) for x in pos + neg):
        raise UsageError("Calibration scores must be finite numbers.")

    # 2. Candidate cuts: below everything, between neighbours, above everything.
    values = sorted(set(pos + neg))
    cuts = [values[0] - 1e-6] + [(a + b) / 2 for a, b in zip(values, values[1:], strict=False)]
    cuts.append(values[-1] + 1e-6)

    # 3. Score each cut; keep the best, ties broken by the width of the gap it sits in.
    def rates(cut: float) -> tuple[float, float]:
        tpr = sum(x >= cut for x in pos) / len(pos)
        fpr = sum(x >= cut for x in neg) / len(neg)
        return tpr, fpr

    def gap(i: int) -> float:
        if i == 0 or i == len(cuts) - 1:
            return 0.0
        return values[i] - values[i - 1]

    best = max(range(len(cuts)), key=lambda i: (1 + rates(cuts[i])[0] - rates(cuts[i])[1], gap(i)))
    tpr, fpr = rates(cuts[best])
    return Calibration(
        threshold=round(cuts[best], 6),
        balanced_accuracy=(tpr + 1 - fpr) / 2,
        true_positive_rate=tpr,
        false_positive_rate=fpr,
        positives=len(pos),
        negatives=len(neg),
        positive_mean=sum(pos) / len(pos),
        negative_mean=sum(neg) / len(neg),
    )
