"""`packshot demo`: the main job, end to end, on the sample product bundled in the repo."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from packshot.errors import UsageError
from packshot.flows.judged import shoot_and_judge
from packshot.intake import check_photos, prepare_training_set
from packshot.judge import JudgeConfig
from packshot.models.describe import describe_model
from packshot.models.device import pick_device
from packshot.models.families import TRAINING_MODEL
from packshot.models.load import resolve_model
from packshot.models.standins import STAND_IN_SAMPLE_STEPS
from packshot.progress import ProgressCallback
from packshot.shoot import ShootRequest
from packshot.train import TrainConfig, train

SAMPLE_PRODUCT = {"name": "backpack", "class_word": "backpack", "token": "sks"}
DEMO_DESCRIPTION = "{product} on a wooden bench in a sunny park"
TINY_TRAIN_STEPS = 20  # with the tiny stand-in: enough to show checkpoints and samples


def sample_photos_dir() -> Path:
    """The bundled sample product (DreamBench backpack, CC-BY 4.0) in a source checkout."""
    return Path(__file__).resolve().parents[3] / "examples" / "backpack"


def run_demo(
    *,
    out_dir: Path,
    photos: Path | None,
    model: str | None,
    console: Console,
    progress_bar: Callable[[str], AbstractContextManager[ProgressCallback]],
    show_report: Callable[[Any], None],
) -> dict[str, Any]:
    """Run intake → training set → training → shoot → judging, printing each step."""

    photos = photos or sample_photos_dir()
    if not photos.is_dir():
        raise UsageError(
            f"No photos at {photos}: the sample product ships in a source checkout under "
            "examples/backpack. Pass --photos DIR with your own photos."
        )
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. Pick the model: the real default on a GPU, the tiny stand-in without one.
    device = pick_device()
    if model is None:
        model = TRAINING_MODEL if device == "cuda" else "tiny"
    resolved = resolve_model(model)
    tiny = resolved.stand_in
    if tiny:
        # Tiny models spend their time in per-op overhead: one thread is fastest, and on a
        # busy machine several threads spin against each other (100x slower measured here).
        torch.set_num_threads(1)
        console.print(
            f"[bold yellow]No GPU here ({device}):[/] using packshot's built-in tiny model "
            f"`{model}`. It has random weights, so its images are noise, but every step of "
            "the flow is the real one. On a machine with a GPU the demo uses "
            f"{TRAINING_MODEL}."
        )
    else:
        console.print(f"Device: {device}; model: {model}")

    # 2. Intake: judge every photo and the set as a whole.
    console.rule("1. Photo intake")
    with progress_bar("Checking photos") as progress:
        report = check_photos(photos, progress=progress)
    report.save(out_dir / "report.json")

    show_report(report)

    # 3. The training set: crops centred on the product at their aspect buckets, masks,
    #    captions.
    console.rule("2. Training set")
    resolution = describe_model(resolved).resolution  # the model's own: 64 for the stand-ins
    with progress_bar("Preparing training set") as progress:
        manifest = prepare_training_set(
            report,
            out_dir / "training-set",
            resolution=resolution,
            token=SAMPLE_PRODUCT["token"],
            class_word=SAMPLE_PRODUCT["class_word"],
            size_multiple=resolved.family.size_multiple,
            progress=progress,
        )
    console.print(
        f"Wrote {len(manifest.items)} crops at {resolution} px to {out_dir / 'training-set'}"
    )

    # 4. A short training run (DreamBooth-LoRA) on those crops.
    console.rule("3. Training")
    config = TrainConfig.from_preset(
        resolved.family.name,
        "quick",
        model=model,
        class_word=SAMPLE_PRODUCT["class_word"],
        token=SAMPLE_PRODUCT["token"],
        product=SAMPLE_PRODUCT["name"],
        resolution=resolution,
        # The tiny stand-in learns nothing useful anyway: a few steps show the flow.
        max_train_steps=TINY_TRAIN_STEPS if tiny else None,
        checkpointing_steps=TINY_TRAIN_STEPS // 2 if tiny else None,
        validation_inference_steps=STAND_IN_SAMPLE_STEPS if tiny else None,
    )
    with progress_bar("Training") as progress:
        trained = train(
            config, out_dir / "training-set", out_dir / "model", progress=progress, force=True
        )
    console.print(
        f"Trained {trained.final_step} steps (final loss {trained.final_loss:.4f}); LoRA files: "
        + ", ".join(f"{path.name} ({name})" for name, path in trained.export_paths.items())
    )

    # 5. The shoot: the merchant's words through two shot presets, the best 2 of 4
    # candidates each, every shot judged against the product's photos and flagged when the
    # product is missing.
    console.rule("4. Shoot and judge")
    request = ShootRequest(
        model_dir=trained.model_dir,
        descriptions=[DEMO_DESCRIPTION],
        presets=["studio", "lifestyle"],
        seed=0,
        num_inference_steps=STAND_IN_SAMPLE_STEPS if tiny else None,
    )
    judge = JudgeConfig.for_models(
        None,
        None,
        stand_in=tiny,
        token=SAMPLE_PRODUCT["token"],
        class_word=SAMPLE_PRODUCT["class_word"],
    )
    if (out_dir / "shots").is_dir():  # the demo's own shots from an earlier `make demo`
        shutil.rmtree(out_dir / "shots")
    with progress_bar("Shooting") as progress:
        judged = shoot_and_judge(
            request,
            out_dir / "shots",
            judge=judge,
            reference_dir=photos,
            best=2,
            progress=progress,
        )
    shot = judged.result
    for warning in judged.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    missing = judged.flagged
    console.print(
        f"{len(shot.shots)} shots kept of {len(shot.shots) + len(judged.set_aside)} candidates; "
        f"product found in {len(shot.shots) - len(missing)}"
        + (" (tiny random judges: the scores are meaningless here)" if tiny else "")
    )

    console.rule("Done")
    console.print(f"Contact sheet: {shot.contact_sheet}")
    console.print(f"Report:        {judged.report_html}")
    console.print(f"Model:         {trained.model_dir}")
    summary = {
        "photos": str(photos),
        "verdict": report.verdict,
        "training_images": len(manifest.items),
        "model": describe_model(resolved).to_dict(),
        "trained_steps": trained.final_step,
        "final_loss": trained.final_loss,
        "shots": [str(s.path) for s in shot.shots],
        "contact_sheet": str(shot.contact_sheet),
        "report": str(judged.report_html),
        "product_missing": missing,
        "cost": shot.cost,
        "out": str(out_dir),
    }
    (out_dir / "demo.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
