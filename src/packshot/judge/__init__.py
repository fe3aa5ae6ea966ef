"""Judge the shots: DINO, CLIP-I and CLIP-T as in the DreamBooth paper, and "product missing".

from packshot.judge import JudgeConfig, score_shots, rank_candidates, write_report

report = score_shots("shots/", "photos/", config=JudgeConfig(class_word="teapot", token="sks"))
best = rank_candidates(report, k=4)  # .shots best first, .warnings
write_report(report, "shots/report/")  # index.html and contact-sheet.png

Importing this package is light; torch and transformers load with the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packshot.judge.config import (
    DEFAULT_CLIP_MODEL,
    DEFAULT_DINO_MODEL,
    DEFAULT_OTHER_MARGIN,
    DEFAULT_PRESENT_THRESHOLD,
    JudgeConfig,
)
from packshot.judge.presence import Calibration, calibrate, decide_present

if TYPE_CHECKING:
    from packshot.judge.models import Embedders, resolve_judge
    from packshot.judge.report import contact_sheet, write_report
    from packshot.judge.score import (
        Ranking,
        ScoreReport,
        ShotScore,
        calibrate_on_photos,
        rank_candidates,
        score_shots,
    )

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_DINO_MODEL",
    "DEFAULT_OTHER_MARGIN",
    "DEFAULT_PRESENT_THRESHOLD",
    "Calibration",
    "Embedders",
    "JudgeConfig",
    "Ranking",
    "ScoreReport",
    "ShotScore",
    "calibrate",
    "calibrate_on_photos",
    "contact_sheet",
    "decide_present",
    "rank_candidates",
    "resolve_judge",
    "score_shots",
    "write_report",
]

_LAZY = {
    "Embedders": "models",
    "resolve_judge": "models",
    "contact_sheet": "report",
    "write_report": "report",
    "Ranking": "score",
    "ScoreReport": "score",
    "ShotScore": "score",
    "calibrate_on_photos": "score",
    "rank_candidates": "score",
    "score_shots": "score",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"packshot.judge.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
