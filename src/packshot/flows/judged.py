"""A judged shoot: render, score every shot against the product's photos, flag the shots
without the product, and with `best` keep the K best of twice as many candidates.

A shot without the product is worthless, so none is handed over silently: each sidecar and
`shoot.json` carry the shot's scores and flags, and every flagged shot is named in a warning.
Candidates that are not kept are moved to `candidates/`, never deleted.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packshot.artifacts.product_model import TRAINING_SET_DIR, ProductModel
from packshot.artifacts.shots import add_scores
from packshot.errors import UsageError
from packshot.judge import Embedders, JudgeConfig, rank_candidates, score_shots, write_report
from packshot.judge.score import ScoreReport, ShotScore
from packshot.progress import ProgressCallback, no_progress
from packshot.shoot.plan import CANDIDATES_PER_KEPT
from packshot.shoot.request import ShootRequest
from packshot.shoot.run import SUMMARY_FILE, ShootResult, Shot, shoot
from packshot.shoot.sheet import save_contact_sheet

CANDIDATES_DIR = "candidates"  # where candidates not kept go (inside the shoot folder)


@dataclass
class JudgedShoot:
    """What a judged shoot delivered, how it scored, and what it set aside."""

    result: ShootResult  # .shots are the delivered shots only
    scores: ScoreReport  # the delivered shots' scores
    set_aside: list[Path] = field(default_factory=list)  # candidates not kept
    flagged: list[str] = field(default_factory=list)  # delivered shots flagged product missing
    warnings: list[str] = field(default_factory=list)
    report_html: Path | None = None


def reference_dir_for(request: ShootRequest, reference_dir: Path | str | None) -> Path:
    """The product photos to judge against: given, else the model's own training crops."""
    if reference_dir is not None:
        return Path(reference_dir)
    if request.model_dir is not None:
        crops = ProductModel.load(request.model_dir).training_set_dir
        if crops.is_dir():
            return crops
        raise UsageError(
            f"{request.model_dir} has no {TRAINING_SET_DIR}/ to judge the shots against. Pass "
            "--reference with the product's photos, or --no-judge."
        )
    raise UsageError(
        "Shooting with a base model alone: pass --reference with photos of the product to "
        "judge the shots against, or --no-judge."
    )


def shoot_and_judge(
    request: ShootRequest,
    out_dir: Path | str,
    *,
    judge: JudgeConfig,
    reference_dir: Path | str | None = None,
    best: int | None = None,
    progress: ProgressCallback = no_progress,
    cache_dir: Path | None = None,
    resume: bool = False,
) -> JudgedShoot:
    """Render `request`, score each shot, flag the ones without the product; keep the `best`.

    `resume` continues an interrupted shoot in `out_dir` without rendering again the shots it
    already wrote (candidates set aside are taken back and ranked again).
    """

    # 1. Check the inputs and load the judges before rendering anything: a wrong judge
    # model must fail in seconds, not after the shoot.
    if best is not None and (isinstance(best, bool) or best < 1):
        raise UsageError(f"--best must be a whole number of at least 1, got {best!r}.")
    references = reference_dir_for(request, reference_dir)
    if not references.is_dir():
        raise UsageError(f"Reference photos not found: {references}.")
    embedders = Embedders(judge, cache_dir=cache_dir)
    if best is not None:
        request = replace(request, count=best * CANDIDATES_PER_KEPT)

    # 2. Render (on resume, candidates an earlier run set aside are candidates again).
    aside = Path(out_dir) / CANDIDATES_DIR
    if resume and aside.is_dir():
        for path in sorted(aside.iterdir()):
            os.replace(path, Path(out_dir) / path.name)
        aside.rmdir()
    result = shoot(request, out_dir, progress=progress, cache_dir=cache_dir, resume=resume)

    # 3. Score every shot against the product's photos.
    scores = score_shots(
        result.out_dir, references, config=judge, progress=progress, embedders=embedders
    )
    by_file = {s.file: s for s in scores.shots}
    warnings = list(result.warnings) + list(scores.warnings)

    # 4. With --best: keep the K best of each description x preset group, set the rest aside.
    kept: list[Shot] = list(result.shots)
    set_aside: list[Shot] = []
    if best is not None:
        kept = []
        for group in _groups(result.shots):
            ranking = rank_candidates([by_file[s.path.name] for s in group], best)
            chosen = {s.file for s in ranking.shots}
            kept += [s for s in group if s.path.name in chosen]
            set_aside += [s for s in group if s.path.name not in chosen]
            warnings += ranking.warnings
        kept.sort(key=lambda s: s.path.name)
    moved = _set_aside(result.out_dir, set_aside)

    # 5. Never silently: every delivered shot without the product is named.
    flagged = [s.path.name for s in kept if not by_file[s.path.name].present]
    for name in flagged:
        shot_score = by_file[name]
        warnings.append(
            f"{name}: product missing (DINO {_fmt(shot_score.dino)} below "
            f"{judge.present_threshold}); don't use it without checking it."
        )

    # 6. Scores into every sidecar, shoot.json, the contact sheet and the HTML report.
    for shot_ in kept:
        add_scores(shot_.path, by_file[shot_.path.name].verdict())
    for shot_, (png, _sidecar) in zip(set_aside, moved, strict=True):
        add_scores(png, by_file[shot_.path.name].verdict())
    delivered_scores = replace(scores, shots=[by_file[s.path.name] for s in kept])
    delivered_scores.save(result.out_dir / "scores.json")
    _update_summary(result, kept, moved, by_file, best, flagged, warnings, embedders.describe())
    _redraw_sheet(result, kept, by_file)
    files = write_report(delivered_scores)
    judged_result = replace(result, shots=kept, warnings=warnings)
    return JudgedShoot(
        result=judged_result,
        scores=delivered_scores,
        set_aside=[png for png, _ in moved],
        flagged=flagged,
        warnings=warnings,
        report_html=files.html,
    )


def _groups(shots: list[Shot]) -> list[list[Shot]]:
    """Shots grouped by (description, preset), in shoot order."""
    groups: dict[tuple[str, str | None], list[Shot]] = {}
    for shot_ in shots:
        groups.setdefault((shot_.description, shot_.preset), []).append(shot_)
    return list(groups.values())


def _set_aside(out: Path, shots: list[Shot]) -> list[tuple[Path, Path]]:
    """Move candidates not kept (image and sidecar) into `candidates/`."""
    if not shots:
        return []
    folder = out / CANDIDATES_DIR
    folder.mkdir(exist_ok=True)
    moved = []
    for shot_ in shots:
        png = Path(shutil.move(shot_.path, folder / shot_.path.name))
        sidecar = Path(shutil.move(shot_.sidecar, folder / shot_.sidecar.name))
        moved.append((png, sidecar))
    return moved


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _update_summary(
    result: ShootResult,
    kept: list[Shot],
    moved: list[tuple[Path, Path]],
    by_file: dict[str, ShotScore],
    best: int | None,
    flagged: list[str],
    warnings: list[str],
    judges: dict[str, Any],
) -> None:
    path = result.out_dir / SUMMARY_FILE
    summary = json.loads(path.read_text(encoding="utf-8"))
    kept_names = {s.path.name for s in kept}
    images = []
    for image in summary["images"]:
        image["scores"] = by_file[image["file"]].verdict()
        if image["file"] in kept_names:
            images.append(image)
    summary["images"] = images
    summary["set_aside"] = [
        {"file": f"{CANDIDATES_DIR}/{png.name}", "scores": by_file[png.name].verdict()}
        for png, _ in moved
    ]
    summary["best"] = best
    summary["product_missing"] = flagged
    summary["judges"] = judges
    summary["scores_file"] = "scores.json"
    summary["warnings"] = warnings
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")


def _redraw_sheet(result: ShootResult, kept: list[Shot], by_file: dict[str, ShotScore]) -> None:
    """The contact sheet of the delivered shots, each captioned with its score and flag."""

    captions = []
    for shot_ in kept:
        score = by_file[shot_.path.name]
        flag = "  MISSING?" if not score.present else ""
        caption = f"{shot_.preset or 'shot'} · seed {shot_.seed} · DINO {_fmt(score.dino)}{flag}"
        captions.append((shot_.path, caption))
    if captions:
        save_contact_sheet(result.contact_sheet, captions)
