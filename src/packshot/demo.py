"""`packshot demo`: the main job, end to end, on the sample product bundled in the repo."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from rich.console import Console

from packshot.errors import UsageError
from packshot.progress import ProgressCallback

# The real default model for real work (needs a GPU and a download of ~7 GB).
DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
SAMPLE_PRODUCT = {"name": "backpack", "class_word": "backpack", "token": "sks"}


def sample_photos_dir() -> Path:
    """The bundled sample product (DreamBench backpack, CC-BY 4.0) in a source checkout."""
    return Path(__file__).resolve().parents[2] / "examples" / "backpack"


def run_demo(
    *,
    out_dir: Path,
    photos: Path | None,
    model: str | None,
    console: Console,
    progress_bar: Callable[[str], AbstractContextManager[ProgressCallback]],
) -> dict[str, Any]:
    """Run intake → training set → model check, printing what happens; return a summary."""
    from packshot.intake import check_photos, prepare_training_set
    from packshot.runtime import describe_model, load_pipeline, pick_device, resolve_model

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
        model = DEFAULT_MODEL if device == "cuda" else "tiny"
    if model.startswith("tiny"):
        import torch

        # Tiny models spend their time in per-op overhead: one thread is fastest, and on a
        # busy machine several threads spin against each other (100x slower measured here).
        torch.set_num_threads(1)
        console.print(
            f"[bold yellow]No GPU here ({device}):[/] using packshot's built-in tiny model "
            f"`{model}`. It has random weights, so its images are noise, but every step of "
            "the flow is the real one. On a machine with a GPU the demo uses "
            f"{DEFAULT_MODEL}."
        )
    else:
        console.print(f"Device: {device}; model: {model}")

    # 2. Intake: judge every photo and the set as a whole.
    console.rule("1. Photo intake")
    with progress_bar("Checking photos") as progress:
        report = check_photos(photos, progress=progress)
    report.save(out_dir / "report.json")
    from packshot.cli import print_report

    print_report(report)

    # 3. The training set: square crops centred on the product, masks, captions.
    console.rule("2. Training set")
    resolved = resolve_model(model)
    info = describe_model(resolved)
    resolution = int(info["resolution"])  # the model's own: 64 for the tiny stand-ins
    with progress_bar("Preparing training set") as progress:
        manifest = prepare_training_set(
            report,
            out_dir / "training-set",
            resolution=resolution,
            token=SAMPLE_PRODUCT["token"],
            class_word=SAMPLE_PRODUCT["class_word"],
            progress=progress,
        )
    console.print(
        f"Wrote {len(manifest.items)} crops at {resolution} px to {out_dir / 'training-set'}"
    )

    # 4. The base model, loaded through the same from_pretrained path as a real one.
    console.rule("3. Base model")
    load_pipeline(model)
    console.print(", ".join(f"{k}: {v}" for k, v in info.items()))

    console.rule("Next")
    console.print(
        "Training (DreamBooth-LoRA) and shooting land in the next issues; the demo will then "
        "train on these crops and write a contact sheet of shots."
    )
    summary = {
        "photos": str(photos),
        "verdict": report.verdict,
        "training_images": len(manifest.items),
        "model": info,
        "out": str(out_dir),
    }
    (out_dir / "demo.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
