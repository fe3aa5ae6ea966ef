"""The `packshot` command line: every command is a thin shell over a library function.

Exit codes: 0 success, 2 usage error (a wrong flag or value), 1 any other failure, with a
one-line reason on stderr. `--debug` (or PACKSHOT_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from packshot import __version__
from packshot.api.schemas import TrainingCreate
from packshot.api.settings import ApiSettings
from packshot.artifacts.catalogue import read_catalogue
from packshot.artifacts.folders import claim_work_dir
from packshot.artifacts.product_model import ProductModel
from packshot.deliver import export_delivery, get_profiles, load_profiles, read_report
from packshot.deliver.report import DELIVERY_DIR, HTML_FILE
from packshot.deliver.upscale import LANCZOS, diffusion_upscaler, dino_similarity
from packshot.errors import PackshotError
from packshot.jobs.execute import build_train_config, run_job
from packshot.jobs.kinds import (
    KINDS,
    CatalogueParams,
    ShootParams,
    TrainingParams,
    to_json,
)
from packshot.jobs.ray.driver import RaySettings, run_on_ray
from packshot.jobs.runner import make_runner
from packshot.jobs.settings import ServiceSettings
from packshot.judge import JudgeConfig
from packshot.models.families import INSTANT_MODEL, TRAINING_MODEL, stand_in_aliases
from packshot.progress import ProgressCallback, ProgressEvent
from packshot.shoot import load_presets
from packshot.shoot.shotlist import load_shot_list
from packshot.train.config import PRESET_NAMES
from packshot.train.hub import push_to_hub as push

# Human output goes to stderr so that `--json` output on stdout stays machine-readable.
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class PackshotGroup(typer.core.TyperGroup):
    """Turns errors into one line and an exit code, for every command and sub-command."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise  # usage errors (exit 2), --help, explicit exits: typer prints these itself
        except PackshotError as exc:
            if _debug(ctx):
                raise
            # escaped: a message may hold brackets ("FLUX.2 [klein]") that aren't markup
            err.print(f"[bold red]Error:[/] {escape(_one_line(str(exc)))}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[bold red]Interrupted.[/]")
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug in packshot, not the user's fault
            if _debug(ctx):
                raise
            err.print(
                f"[bold red]Error:[/] unexpected {type(exc).__name__}: "
                f"{escape(_one_line(str(exc)))}. "
                "This is a bug in packshot: run again with --debug and report the traceback.",
                soft_wrap=True,
            )
            raise typer.Exit(1) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _debug(ctx: typer.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or os.environ.get("PACKSHOT_DEBUG") == "1"


app = typer.Typer(
    cls=PackshotGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="packshot: product photography from a handful of photos and a text description.",
)
photos_app = typer.Typer(
    cls=PackshotGroup, no_args_is_help=True, help="Check and prepare a product's photos."
)
models_app = typer.Typer(
    cls=PackshotGroup, no_args_is_help=True, help="Find, build and inspect base models."
)
catalogue_app = typer.Typer(
    cls=PackshotGroup, no_args_is_help=True, help="Shoot a whole catalogue with one shot list."
)
app.add_typer(photos_app, name="photos")
app.add_typer(models_app, name="models")
app.add_typer(catalogue_app, name="catalogue")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"packshot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one line."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """packshot: product photography from a handful of photos and a text description."""
    ctx.obj = {"debug": debug}


# Events worth a line of their own even when the bar is drawn (see train's events).
NOTABLE_EVENTS = {"resume", "checkpoint", "sample", "rollback", "failed", "done", "retry"}


def _describe(event: ProgressEvent) -> str:
    """The event's message plus its speed, e.g. "loss 0.1234 · 1.52 it/s"."""
    text = event.message
    rate = event.data.get("it_s")
    if isinstance(rate, int | float) and rate > 0:
        text += f" · {rate:.2f} it/s" if rate >= 0.1 else f" · {1 / rate:.1f} s/it"
    return text


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[ProgressCallback]:
    """A rich progress bar on stderr, driven by core ProgressEvents.

    Without a terminal (CI, pipes, log files) it prints plain lines instead: one per stage,
    one per notable event, and one per tenth of the work.
    """
    if not enabled:
        yield lambda event: None
        return
    if not err.is_terminal:
        last_tenth: dict[str, int] = {}

        def plain(event: ProgressEvent) -> None:
            tenth = 10 * event.done // event.total if event.total else 0
            notable = event.data.get("event") in NOTABLE_EVENTS
            if event.stage not in last_tenth or tenth > last_tenth[event.stage] or notable:
                last_tenth[event.stage] = tenth
                count = f" {event.done}/{event.total}" if event.total else ""
                err.print(f"{description} · {event.stage}{count} {_describe(event)}".rstrip())

        yield plain
        return

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[message]}"),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(event: ProgressEvent) -> None:
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(
                    f"{description} · {event.stage}", total=event.total, message=""
                )
            if event.data.get("event") in NOTABLE_EVENTS - {"done"}:
                bar.console.print(f"  {event.message}")
            bar.update(
                tasks[event.stage],
                completed=event.done,
                total=event.total,
                message=_describe(event)[:60],
            )

        yield update


RUNNER_HELP = "Where the work runs: local (this process) or ray (RAY_ADDRESS, else a local Ray)."


def _check_runner(runner: str) -> str:
    """--runner's check, made while the command line is read (before any work)."""
    if runner not in ("local", "ray"):
        raise typer.BadParameter(
            f"unknown runner {runner!r}; choose local or ray", param_hint="--runner"
        )
    return runner


def _job_on_ray(
    kind: str, params: Any, out_dir: Path, progress: ProgressCallback, *, resume: bool, force: bool
) -> Any:
    """Run a job on Ray with the studio's driver, for a command whose output goes to `out_dir`.

    The job's folder is `<out_dir>.job` (what reached this machine so far: checkpoints, shots;
    what `--resume` continues); when the job is done its output moves to `out_dir`.
    """

    job_dir = out_dir.with_name(f"{out_dir.name}.job")
    claim_work_dir(out_dir, job_dir, resume=resume, force=force, what=f"{kind} job")
    settings = RaySettings.from_env()
    try:
        result = run_on_ray(kind, params, job_dir, progress, lambda: False, settings=settings)
    except BaseException:
        # As a local run: keep the job's folder only when it holds something to resume from.
        if not any(job_dir.rglob("step-*")) and not any(job_dir.rglob("*.png")):
            shutil.rmtree(job_dir, ignore_errors=True)
        raise
    if out_dir.exists():  # empty, or --force
        shutil.rmtree(out_dir)
    os.replace(job_dir / KINDS[kind].out_dir, out_dir)
    shutil.rmtree(job_dir)
    return result


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# ---------------------------------------------------------------------------------------
# Marketplace delivery, shared by deliver, shoot, instant, place and catalogue shoot

PROFILES_HELP = (
    "Then deliver every image to these marketplace profiles, comma-separated: "
    f"{', '.join(load_profiles())} (as `packshot deliver` does)."
)


def _profiles(profile: str | None) -> list[str]:
    """The --profile names, checked before any work (an unknown one: exit 2, naming those
    there are)."""
    return [p.name for p in get_profiles(profile)] if profile is not None else []


def _deliver_run(out_dir: Path, profiles: list[str], progress: ProgressCallback) -> None:
    """A command's shots in `out_dir` delivered into `out_dir/delivery/` (none: nothing)."""
    from packshot.deliver import deliver_run  # OpenCV: not for every command's start

    if profiles:
        deliver_run(out_dir, profiles, progress=progress)


def _print_delivery(folder: Path) -> None:
    """A delivery's verdicts: each shot against each profile (with its first reason), the
    counts per profile, and the page."""
    report = read_report(folder)
    for image in report["images"]:
        for name, result in image["results"].items():
            reasons = [p["reason"] for p in result["problems"] + result["warnings"]]
            why = f": {reasons[0]}" if reasons else ""
            out.print(f"{Path(image['source']).name} · {name}: {result['status']}{why}")
    for name, counts in report["counts"].items():
        out.print(f"{name}: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n))
    out.print(f"Report: {folder / HTML_FILE}")


# ---------------------------------------------------------------------------------------
# packshot photos …


@photos_app.command("check")
def photos_check(
    directory: Path = typer.Argument(..., help="Folder with the product's photos."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    min_side: int = typer.Option(256, help="Reject photos whose short side is below this (px)."),
    max_megapixels: float = typer.Option(
        50.0, help="Refuse photos above this many megapixels before decoding them."
    ),
    save: Path | None = typer.Option(None, help="Also write the report as JSON to this file."),
) -> None:
    """Check a folder of product photos and judge the set.

    Every file is decoded safely and judged on its own (accepted, or rejected with a
    reason); the set is then judged as a whole: duplicates, blur, exposure, and features
    shared by most photos (same background, same angle) that would leak into every shot.
    The verdict is "ready", "usable" (with warnings) or "not enough".
    """
    from packshot.intake import IntakeConfig, check_photos

    if min_side < 1:
        raise typer.BadParameter(f"must be at least 1, got {min_side}", param_hint="--min-side")
    if max_megapixels <= 0:
        raise typer.BadParameter(
            f"must be positive, got {max_megapixels}", param_hint="--max-megapixels"
        )
    config = IntakeConfig(min_side=min_side, max_pixels=int(max_megapixels * 1_000_000))
    with progress_bar("Checking photos", enabled=not as_json) as progress:
        report = check_photos(directory, config=config, progress=progress)
    if save is not None:
        report.save(save)
    if as_json:
        _print_json(report.to_dict())
    else:
        print_report(report)


def print_report(report: Any) -> None:
    """The photo-set report as tables and sentences, for people."""
    data = report.to_dict()
    table = Table(title=f"{len(data['accepted'])} accepted", title_justify="left")
    table.add_column("photo")
    table.add_column("size", justify="right")
    table.add_column("warnings")
    for photo in data["accepted"]:
        table.add_row(
            photo["file"], f"{photo['width']}×{photo['height']}", "; ".join(photo["warnings"])
        )
    out.print(table)
    if data["rejected"]:
        rejected = Table(title=f"{len(data['rejected'])} rejected", title_justify="left")
        rejected.add_column("file")
        rejected.add_column("reason")
        for item in data["rejected"]:
            rejected.add_row(item["file"], item.get("message") or item["reason"])
        out.print(rejected)
    for group in data["duplicates"]:
        files = group["files"] if isinstance(group, dict) else group
        kind = group.get("kind", "duplicate") if isinstance(group, dict) else "duplicate"
        out.print(f"[yellow]{kind} duplicates:[/] {', '.join(files)}")
    colour = {"ready": "green", "usable": "yellow"}.get(data["verdict"], "red")
    out.print(f"\nVerdict: [bold {colour}]{data['verdict']}[/]")
    for sentence in data["advice"]:
        out.print(f" • {sentence}")


@photos_app.command("prepare")
def photos_prepare(
    directory: Path = typer.Argument(..., help="Folder with the product's photos."),
    out_dir: Path = typer.Option(..., "--out", help="Where to write the training set."),
    class_word: str = typer.Option(..., "--class", help='The kind of product, e.g. "headphones".'),
    token: str = typer.Option("sks", help="The rare token that will stand for this product."),
    resolution: int = typer.Option(
        512, help="Training resolution (px): the crops hold about its square's pixels."
    ),
    buckets: bool = typer.Option(
        True,
        "--buckets/--no-buckets",
        help="Crop each photo at the aspect bucket nearest its own (1:2 to 2:1), or square.",
    ),
    size_multiple: int | None = typer.Option(
        None,
        "--size-multiple",
        help="Crop sides in multiples of this (px): 8 fits SD 1.5 and SDXL, 16 FLUX.2 too "
        "(default: what every family able to train at the resolution takes).",
    ),
    captioner: str | None = typer.Option(
        None, help="A captioning model (Hub id or folder) for automatic captions."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Check the photos, then write crops centred on the product, masks and captions.

    Each photo is cropped at the aspect bucket nearest its own shape (a landscape photo stays
    landscape), or square with --no-buckets.
    """
    from packshot.intake import HFCaptioner, check_photos, prepare_training_set

    if resolution < 64 or resolution % 8:
        raise typer.BadParameter(
            f"must be a multiple of 8 and at least 64, got {resolution}",
            param_hint="--resolution",
        )
    with progress_bar("Preparing", enabled=not as_json) as progress:
        report = check_photos(directory, progress=progress)
        model = HFCaptioner(captioner) if captioner else None
        manifest = prepare_training_set(
            report,
            out_dir,
            resolution=resolution,
            token=token,
            class_word=class_word,
            captioner=model,
            buckets=buckets,
            size_multiple=size_multiple,
            progress=progress,
        )
    if as_json:
        _print_json(manifest.to_dict())
    else:
        sizes = Counter((item.size[0], item.size[1]) for item in manifest.items)
        out.print(
            f"Wrote {len(manifest.items)} training images to {out_dir} ("
            + ", ".join(f"{count} at {w}x{h}" for (w, h), count in sorted(sizes.items()))
            + ")"
        )


# ---------------------------------------------------------------------------------------
# packshot models …


@models_app.command("info")
def models_info(
    model: str = typer.Argument(
        ...,
        help="A Hugging Face Hub id, a local diffusers folder, or tiny / tiny-sdxl / tiny-inpaint.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
) -> None:
    """Find a base model (downloading it from the Hub if needed) and say what it is."""
    from packshot.models.describe import describe_model
    from packshot.models.load import resolve_model

    info = describe_model(resolve_model(model)).to_dict()
    if as_json:
        _print_json(info)
    else:
        for key, value in info.items():
            out.print(f"{key}: {value}")


# ---------------------------------------------------------------------------------------
# packshot train


@app.command("train")
def train_command(
    photos: Path = typer.Argument(
        ..., help="Folder of product photos, or a training set from `packshot photos prepare`."
    ),
    class_word: str = typer.Option(..., "--class", help='The kind of product, e.g. "headphones".'),
    out_dir: Path = typer.Option(..., "--out", help="Where to write the model folder."),
    model: str = typer.Option(
        TRAINING_MODEL,
        help="Base model: Hub id, local diffusers folder, or a built-in stand-in ("
        + ", ".join(sorted(a for a, f in stand_in_aliases().items() if f.trainable))
        + ").",
    ),
    product: str | None = typer.Option(None, help='The product\'s name, e.g. "bose headphones".'),
    preset: str = typer.Option("standard", help="quick, standard or best."),
    steps: int | None = typer.Option(None, "--steps", help="Training steps (max_train_steps)."),
    resolution: int | None = typer.Option(None, help="Training resolution (px, multiple of 8)."),
    buckets: bool | None = typer.Option(
        None,
        "--buckets/--no-buckets",
        help="Train each photo at the aspect bucket nearest its shape (default), or square.",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Photos per step (train_batch_size), each batch one bucket."
    ),
    rank: int | None = typer.Option(None, help="LoRA rank."),
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="Learning rate."),
    seed: int | None = typer.Option(None, help="Random seed."),
    token: str | None = typer.Option(None, help="The rare token bound to the product (sks)."),
    checkpoint_every: int | None = typer.Option(
        None, "--checkpoint-every", help="Write a resumable checkpoint every N steps (0: never)."
    ),
    sample_every: int | None = typer.Option(
        None, "--sample-every", help="Render sample shots every N steps (0: only at the end)."
    ),
    prior_preservation: bool | None = typer.Option(
        None,
        "--prior-preservation/--no-prior-preservation",
        help="Regularise with class images generated by the base model.",
    ),
    train_text_encoder: bool | None = typer.Option(
        None, "--train-text-encoder/--no-train-text-encoder", help="LoRA on the text encoder(s)."
    ),
    background_weight: float | None = typer.Option(
        None, help="Loss weight outside the product mask (1: no masking)."
    ),
    precision: str | None = typer.Option(None, help="auto, no, fp16 or bf16."),
    compile_: bool = typer.Option(
        False, "--compile", help="GPU: torch.compile the denoiser's blocks (faster steps)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run."),
    force: bool = typer.Option(
        False, "--force", help="Replace an existing model folder; train on a thin photo set."
    ),
    push_to_hub: str | None = typer.Option(
        None, "--push-to-hub", help="Also upload the model to this Hub repo (OWNER/NAME)."
    ),
    public: bool = typer.Option(False, "--public", help="With --push-to-hub: a public repo."),
    runner: str = typer.Option(
        "local", "--runner", envvar="PACKSHOT_RUNNER", help=RUNNER_HELP, callback=_check_runner
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a product model: DreamBooth-LoRA of the base model on the product's photos.

    Checks the photos first and refuses a set judged "not enough" unless --force. Writes
    checkpoints as it goes (resume an interrupted run with --resume), sample shots, the LoRA
    in diffusers and kohya/A1111 formats, packshot.json and a model card.
    """
    from packshot.train import train

    _check_preset(preset)
    params = TrainingParams(
        photos_dir=str(photos.resolve()),
        model=model,
        class_word=class_word,
        product=product,
        preset=preset,
        force=force,
        token=token,
        seed=seed,
        resolution=resolution,
        buckets=buckets,
        train_batch_size=batch_size,
        rank=rank,
        learning_rate=learning_rate,
        max_train_steps=steps,
        checkpointing_steps=checkpoint_every,
        validation_steps=sample_every,
        with_prior_preservation=prior_preservation,
        train_text_encoder=train_text_encoder,
        background_weight=background_weight,
        mixed_precision=precision,
        compile=compile_ or None,
    )
    config = build_train_config(params)  # checked here, before anything travels
    with progress_bar("Training", enabled=not as_json) as progress:
        if runner == "ray":
            _job_on_ray("training", params, out_dir, progress, resume=resume, force=force)
            result = ProductModel.load(out_dir)
        else:
            result = train(config, photos, out_dir, progress=progress, resume=resume, force=force)
    summary = {
        "model_dir": str(result.model_dir),
        "lora": str(result.lora_path),
        "exports": {name: str(path) for name, path in result.export_paths.items()},
        "final_step": result.final_step,
        "final_loss": result.final_loss,
        "resumed_from": result.resumed_from,
        "samples": [str(p) for p in result.sample_paths],
        "nan_rollbacks": result.nan_rollbacks,
        "hub_url": None,
    }
    if push_to_hub:
        summary["hub_url"] = push(result.model_dir, push_to_hub, private=not public)
    if as_json:
        _print_json(summary)
    else:
        out.print(
            f"Trained {result.final_step} steps (final loss {result.final_loss:.4f})"
            + (f", resumed from step {result.resumed_from}" if result.resumed_from else "")
            + f". Model: {result.model_dir}"
        )


# ---------------------------------------------------------------------------------------
# Judges, shared by shoot, score and bench

DINO_HELP = "DINO backbone: Hub id, local folder, or tiny (default facebook/dino-vits16)."
CLIP_HELP = "CLIP backbone: Hub id, local folder, or tiny (default openai/clip-vit-base-patch32)."


def _shoots_with_stand_in(base: str | None, model_dir: str | Path | None) -> bool:
    """Whether a shoot's base model is a tiny stand-in: `--base` naming a stand-in alias, else
    what the product model recorded of its base when it was resolved for training."""

    if base is not None:
        return base.strip() in stand_in_aliases()
    return ProductModel.load(Path(str(model_dir))).trained_on_stand_in


def _judge_config(
    dino_model: str | None,
    clip_model: str | None,
    threshold: float | None = None,
    token: str | None = None,
    class_word: str | None = None,
    *,
    stand_in: bool = False,
) -> Any:
    return JudgeConfig.for_models(
        dino_model,
        clip_model,
        stand_in=stand_in,
        present_threshold=threshold,
        token=token,
        class_word=class_word,
    )


def _check_preset(preset: str) -> None:
    if preset not in PRESET_NAMES:
        raise typer.BadParameter(
            f"unknown preset {preset!r}; choose {', '.join(PRESET_NAMES)}", param_hint="--preset"
        )


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


# ---------------------------------------------------------------------------------------
# packshot instant


@app.command("instant")
def instant_command(
    photos: Path = typer.Argument(..., help="Folder of the product's photos."),
    descriptions: list[str] = typer.Argument(
        ..., help='What to shoot, e.g. "{product} on a marble kitchen counter".'
    ),
    out_dir: Path = typer.Option(..., "--out", help="Where to write the shots."),
    model: str | None = typer.Option(
        None,
        "--model",
        help=f"A base model that takes reference images (default {INSTANT_MODEL}; tiny-flux2 "
        "offline).",
    ),
    model_dir: Path | None = typer.Option(
        None, "--product-model", help="A trained product model: its LoRA joins the references."
    ),
    product: str | None = typer.Option(
        None, help='What {product} means, e.g. "leather backpack" (default "product").'
    ),
    preset: list[str] = typer.Option(
        [], "--preset", help="A shot preset (repeatable); see `packshot presets`."
    ),
    count: int | None = typer.Option(None, "-n", "--count", help="Shots per description."),
    aspect: str | None = typer.Option(None, help="1:1, 4:5, 3:4, 16:9 or 9:16."),
    seed: int | None = typer.Option(None, help="First seed; shot i gets seed + i."),
    steps: int | None = typer.Option(None, "--steps", help="Sampling steps (the model's)."),
    guidance: float | None = typer.Option(None, "--guidance", help="CFG scale (the model's)."),
    best: int | None = typer.Option(
        None, "--best", help="Render 2K candidates per description and preset, keep the K best."
    ),
    dino_model: str | None = typer.Option(None, "--dino-model", help=DINO_HELP),
    clip_model: str | None = typer.Option(None, "--clip-model", help=CLIP_HELP),
    profile: str | None = typer.Option(None, "--profile", help=PROFILES_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the shoot summary as JSON."),
) -> None:
    """Instant shots, no training: the best 1-4 of the photos (sharp, distinct angles, the
    product large) go to a model that takes reference images as it draws (FLUX.2 [klein]).

    Every shot is judged against all the photos, and a shot without the product is flagged.
    With --product-model, the trained LoRA and the references work together. With --profile,
    the shots are then made marketplace-ready into OUT/delivery/ (a drawn shot is never
    Amazon's main image).
    """
    from packshot.flows.instant import instant
    from packshot.shoot.run import SUMMARY_FILE

    profiles = _profiles(profile)
    request = ShootParams(
        model_dir=str(model_dir) if model_dir is not None else None,
        descriptions=list(descriptions),
        presets=list(preset),
        count=count,
        aspect=aspect,
        seed=seed,
        num_inference_steps=steps,
        guidance_scale=guidance,
        base=model,
        product=product,
    ).request()
    if model is not None:
        tiny = model.strip() in stand_in_aliases()
    else:
        tiny = model_dir is not None and _shoots_with_stand_in(None, model_dir)
    judges = _judge_config(dino_model, clip_model, stand_in=tiny)
    with progress_bar("Shooting", enabled=not as_json) as progress:
        done = instant(photos, request, out_dir, judge=judges, best=best, progress=progress)
        _deliver_run(out_dir, profiles, progress)
    if as_json:
        _print_json(json.loads((out_dir / SUMMARY_FILE).read_text()))
        return
    result = done.judged.result
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    out.print("References: " + ", ".join(r.file for r in done.references))
    out.print(f"{len(result.shots)} shots in {out_dir}")
    out.print(f"Contact sheet: {result.contact_sheet}")
    flagged = done.judged.flagged
    if flagged:
        out.print(f"[bold red]Product missing in {len(flagged)} shot(s):[/] {', '.join(flagged)}")
    if profiles:
        _print_delivery(out_dir / DELIVERY_DIR)


# ---------------------------------------------------------------------------------------
# packshot shoot · packshot presets


@app.command("shoot")
def shoot_command(
    model_dir: Path | None = typer.Argument(
        None, help="A model folder written by `packshot train` (omit with --base)."
    ),
    descriptions: list[str] = typer.Argument(
        None, help='What to shoot, e.g. "a female model wearing {product}, walking in the park".'
    ),
    out_dir: Path = typer.Option(..., "--out", help="Where to write the shots."),
    prompts_file: Path | None = typer.Option(
        None, "--prompts-file", help="A text file with one description per line."
    ),
    preset: list[str] = typer.Option(
        [], "--preset", help="A shot preset (repeatable); see `packshot presets`."
    ),
    presets_file: Path | None = typer.Option(
        None, "--presets-file", help="Your own shot presets (JSON), merged on top."
    ),
    count: int | None = typer.Option(None, "-n", "--count", help="Shots per description."),
    aspect: str | None = typer.Option(None, help="1:1, 4:5, 3:4, 16:9 or 9:16."),
    seed: int | None = typer.Option(None, help="First seed; shot i gets seed + i."),
    steps: int | None = typer.Option(None, "--steps", help="Sampling steps (default 25)."),
    guidance: float | None = typer.Option(None, "--guidance", help="CFG scale (default 7)."),
    negative_prompt: str | None = typer.Option(None, help="Things to keep out of the shots."),
    lora_scale: float = typer.Option(1.0, "--lora-scale", help="Strength of the product LoRA."),
    scheduler: str | None = typer.Option(None, help="Sampler (default DPM++ 2M Karras)."),
    fast: bool = typer.Option(False, "--fast", help="Few-step previews (LCM-LoRA or turbo)."),
    fast_lora: str | None = typer.Option(None, "--fast-lora", help="The LCM-LoRA to use."),
    compile_: bool = typer.Option(
        False, "--compile", help="GPU: merged LoRA, fused attention and torch.compile."
    ),
    fp8: bool = typer.Option(False, "--fp8", help="GPU: fp8 weights (torchao; Ada/Hopper)."),
    base: str | None = typer.Option(
        None, "--base", help="Shoot with this base model alone, for comparison."
    ),
    product: str | None = typer.Option(
        None, help="What {product} means without a model folder (with --base)."
    ),
    gpu_price: float | None = typer.Option(
        None, "--gpu-price", help="GPU price per hour (GBP) for the cost estimate."
    ),
    judge: bool = typer.Option(
        True, "--judge/--no-judge", help="Score every shot and flag those without the product."
    ),
    best: int | None = typer.Option(
        None, "--best", help="Render 2K candidates per description and preset, keep the K best."
    ),
    reference: Path | None = typer.Option(
        None, "--reference", help="Product photos to judge against (default: the model's)."
    ),
    dino_model: str | None = typer.Option(None, "--dino-model", help=DINO_HELP),
    clip_model: str | None = typer.Option(None, "--clip-model", help=CLIP_HELP),
    profile: str | None = typer.Option(None, "--profile", help=PROFILES_HELP),
    runner: str = typer.Option(
        "local", "--runner", envvar="PACKSHOT_RUNNER", help=RUNNER_HELP, callback=_check_runner
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the shoot summary as JSON."),
) -> None:
    """Shoot product photos from descriptions with a trained product model.

    `{product}` in a description stands for the product (its token and class word); a
    description that doesn't mention it gets it added. Every PNG carries its recipe in the
    AUTOMATIC1111 `parameters` format and a JSON sidecar; a contact sheet and shoot.json
    (with the cost per image) are written beside them.

    Every shot is then scored against the product's photos (DINO, CLIP-I, CLIP-T) and a
    shot without the product is flagged, never handed over silently; --best K keeps the K
    best of twice as many candidates and moves the rest to candidates/. With --profile, the
    shots are then made marketplace-ready into OUT/delivery/ (a drawn shot is never Amazon's
    main image).
    """
    from packshot.flows.judged import shoot_and_judge
    from packshot.shoot import shoot
    from packshot.shoot.run import SUMMARY_FILE

    values: dict[str, Any] = {
        "model_dir": str(model_dir) if model_dir is not None else None,
        "descriptions": list(descriptions or []),
        "prompts_file": str(prompts_file.resolve()) if prompts_file is not None else None,
        "presets": list(preset),
        "presets_file": str(presets_file.resolve()) if presets_file is not None else None,
        "count": count,
        "aspect": aspect,
        "seed": seed,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "negative_prompt": negative_prompt,
        "lora_scale": lora_scale,
        "scheduler": scheduler,
        "fast": fast,
        "fast_lora": fast_lora,
        "compile": compile_,
        "fp8": fp8,
        "base": base,
        "product": product,
        "judge": judge,
        "best": best,
        "reference_dir": str(reference.resolve()) if reference is not None else None,
        "profiles": _profiles(profile),
    }
    if gpu_price is not None:
        values["gpu_price_per_hour"] = gpu_price
    if model_dir is not None and base is not None and not descriptions:
        # `packshot shoot --base MODEL "description"`: the one positional is a description.
        values["descriptions"], values["model_dir"] = [str(model_dir)], None
    if best is not None and not judge:
        raise typer.BadParameter("--best needs the judges; drop --no-judge", param_hint="--best")
    params = ShootParams(**values)
    request = params.request()
    judges = None
    if judge:
        # The tiny stand-in models go with the tiny stand-in judges (offline demo, tests).
        tiny = _shoots_with_stand_in(base, values["model_dir"])
        judges = _judge_config(dino_model, clip_model, stand_in=tiny)
        params = replace(params, dino_model=judges.dino_model, clip_model=judges.clip_model)
    flagged: list[str] = []
    with progress_bar("Shooting", enabled=not as_json) as progress:
        if runner == "ray":
            if params.model_dir is not None:  # a path the driver ships: absolute
                params = replace(params, model_dir=str(Path(params.model_dir).resolve()))
            done = _job_on_ray("shoot", params, out_dir, progress, resume=True, force=False)
            shots, sheet = len(done.images), out_dir / Path(done.contact_sheet).name
            warnings, cost = done.warnings, done.cost
            flagged = [Path(name).name for name in done.product_missing]
        else:
            if judges is None:
                result = shoot(request, out_dir, progress=progress)
            else:
                judged = shoot_and_judge(
                    request,
                    out_dir,
                    judge=judges,
                    reference_dir=reference,
                    best=best,
                    progress=progress,
                )
                result, flagged = judged.result, judged.flagged
            shots, sheet = len(result.shots), result.contact_sheet
            warnings, cost = result.warnings, result.cost
            _deliver_run(out_dir, params.profiles, progress)  # the Ray job delivers its own
    if as_json:
        _print_json(json.loads((out_dir / SUMMARY_FILE).read_text()))
        return
    for warning in warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    out.print(f"{shots} shots in {out_dir}")
    out.print(f"Contact sheet: {sheet}")
    if flagged:
        out.print(f"[bold red]Product missing in {len(flagged)} shot(s):[/] {', '.join(flagged)}")
    if cost:
        out.print(", ".join(f"{k}: {v}" for k, v in cost.items()))
    if params.profiles:
        _print_delivery(out_dir / DELIVERY_DIR)


@app.command("place")
def place_command(
    photo: Path = typer.Argument(..., help="A photo of the product (a transparent PNG is fine)."),
    descriptions: list[str] = typer.Argument(
        None, help='The scene, e.g. "on a marble kitchen counter, soft morning light".'
    ),
    out_dir: Path = typer.Option(..., "--out", help="Where to write the shots."),
    preset: list[str] = typer.Option(
        [], "--preset", help="A shot preset (repeatable): studio, lifestyle, flat-lay, …"
    ),
    count: int | None = typer.Option(None, "-n", "--count", help="Shots per description."),
    aspect: str | None = typer.Option(None, help="1:1, 4:5, 3:4, 16:9 or 9:16."),
    seed: int | None = typer.Option(None, help="First seed; shot i gets seed + i."),
    steps: int | None = typer.Option(None, "--steps", help="Sampling steps (default 25)."),
    guidance: float | None = typer.Option(None, "--guidance", help="CFG scale (default 7.5)."),
    negative_prompt: str | None = typer.Option(None, help="Things to keep out of the scene."),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Inpainting model: Hub id, folder or tiny-inpaint (default: SDXL inpainting).",
    ),
    product_model: Path | None = typer.Option(
        None, "--product-model", help="A folder `packshot train` wrote: its LoRA and words."
    ),
    product: str | None = typer.Option(
        None, help='What the product is, for the prompt (e.g. "teapot"; default "product").'
    ),
    keep_framing: bool = typer.Option(
        False, "--keep-framing", help="Keep the photo's framing: replace only the background."
    ),
    mask: Path | None = typer.Option(
        None, "--mask", help="Your own mask of the product (white), the photo's size."
    ),
    cutout_model: str | None = typer.Option(
        None,
        "--cutout-model",
        help="Background removal: auto, grabcut, a .onnx file, URL, Hub repo, or u2net / "
        "isnet-general-use / birefnet-general.",
    ),
    composition: str | None = typer.Option(
        None, help="hero, thirds or flat-lay (default: the preset's)."
    ),
    judge: bool = typer.Option(
        True, "--judge/--no-judge", help="Score every shot and flag those without the product."
    ),
    reference: Path | None = typer.Option(
        None, "--reference", help="Product photos to judge against (default: the photo)."
    ),
    dino_model: str | None = typer.Option(None, "--dino-model", help=DINO_HELP),
    clip_model: str | None = typer.Option(None, "--clip-model", help=CLIP_HELP),
    compile_: bool = typer.Option(
        False, "--compile", help="GPU: merged LoRA, fused attention and torch.compile."
    ),
    fp8: bool = typer.Option(False, "--fp8", help="GPU: fp8 weights (torchao; Ada/Hopper)."),
    profile: str | None = typer.Option(None, "--profile", help=PROFILES_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Pixel-true shots: the real product cut out of PHOTO, a scene generated around it.

    The product is cut out (your --mask, else the photo's transparency, else a background
    removal model, else GrabCut), placed on the canvas by the preset's composition (or where
    it is, with --keep-framing), and an inpainting model paints the scene around it, with a
    soft contact shadow and blended edges. Inside the product's mask, less a 2 px edge band,
    every pixel is the product's own. Run the same command again after a crash: shots
    already written are kept. With --profile, the shots are then made marketplace-ready into
    OUT/delivery/ (on white, a pixel-true shot may be Amazon's main image).
    """
    from packshot.place import PlaceRequest, place

    request = PlaceRequest(
        photo=str(photo),
        descriptions=list(descriptions or []),
        presets=list(preset),
        count=count,
        aspect=aspect,
        seed=seed,
        num_inference_steps=steps,
        guidance_scale=guidance,
        negative_prompt=negative_prompt,
        model=model,
        product_model=str(product_model) if product_model else None,
        product=product,
        keep_framing=keep_framing,
        mask=str(mask) if mask else None,
        cutout_model=cutout_model,
        composition=composition,
        judge=judge,
        reference=str(reference) if reference else None,
        dino_model=dino_model,
        clip_model=clip_model,
        compile=compile_,
        fp8=fp8,
        profiles=_profiles(profile),
    )
    with progress_bar("Placing", enabled=not as_json) as progress:
        result = place(request, out_dir, progress=progress)
        _deliver_run(out_dir, request.profiles, progress)
    if as_json:
        _print_json(json.loads(result.summary_path.read_text()))
        return
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    reused = sum(s.reused for s in result.shots)
    kept = f" ({reused} kept from before)" if reused else ""
    out.print(f"{len(result.shots)} shots in {result.out_dir}{kept}")
    out.print(f"Cut out by: {result.cutout['source']} · mask: {result.cutout['mask']}")
    out.print(f"Contact sheet: {result.contact_sheet}")
    if result.flagged:
        out.print(
            f"[bold red]Product missing in {len(result.flagged)} shot(s):[/] "
            + ", ".join(result.flagged)
        )
    if request.profiles:
        _print_delivery(out_dir / DELIVERY_DIR)


@app.command("deliver")
def deliver_command(
    shots: list[Path] = typer.Argument(
        ..., help="Shot folders (`packshot shoot` / `place` output) or image files."
    ),
    profile: str = typer.Option(
        ...,
        "--profile",
        help="Marketplace profiles, comma-separated: amazon-main, amazon-additional, shopify, "
        "google, ebay, etsy.",
    ),
    out_dir: Path = typer.Option(..., "--out", help="Where to write the delivery."),
    upscaler: str = typer.Option(
        "lanczos",
        "--upscaler",
        help="lanczos (any machine), or a diffusers x4 upscaler for shots the model drew: a "
        "Hub id (stabilityai/stable-diffusion-x4-upscaler), a folder, or tiny-upscaler.",
    ),
    device: str | None = typer.Option(None, help="Device for the upscaler: cuda, mps or cpu."),
    as_json: bool = typer.Option(False, "--json", help="Print the delivery report as JSON."),
) -> None:
    """Make SHOTS marketplace-ready: check each against each --profile and fix what can be
    fixed honestly.

    Crops or pads to the profile's aspect and fill ratio, makes the background exactly white
    from the cut-out mask (pixel-true shots only), resizes or upscales to the recommended size
    and writes sRGB JPEGs under the size limit, labelled as made with AI. What can't be fixed
    is reported with the rule and its source: a shot the model drew is not eligible for
    Amazon's main image. Writes DIR/<product>/<profile>/*.jpg, delivery.json and report.html.
    """
    from packshot.deliver import deliver

    chosen = _profiles(profile)
    model = None if upscaler == LANCZOS else diffusion_upscaler(upscaler, device=device)
    similarity = None if model is None else dino_similarity(upscaler, device=device)
    with progress_bar("Delivering", enabled=not as_json) as progress:
        report = deliver(
            list(shots),
            chosen,
            out_dir,
            upscaler=model,
            upscaler_name=upscaler,
            similarity=similarity,
            progress=progress,
        )
    if as_json:
        _print_json(json.loads(report.report_path.read_text()))
        return
    _print_delivery(report.out_dir)


@app.command("export")
def export_command(
    delivery: Path = typer.Argument(..., help="A folder `packshot deliver` wrote."),
    fmt: str = typer.Option(..., "--format", help="shopify, woocommerce, google or zip."),
    out_dir: Path = typer.Option(..., "--out", help="Where to write the export."),
    image_base_url: str | None = typer.Option(
        None,
        "--image-base-url",
        help="The http(s) address the delivery folder is uploaded to (CSV and feed formats).",
    ),
    profile: str | None = typer.Option(
        None, "--profile", help="Whose images to export (default: the format's own profile)."
    ),
) -> None:
    """Export a delivery for the shop: a Shopify or WooCommerce product CSV, a Google Merchant
    Center feed (image_link, additional_image_link, lifestyle_image_link), or a zip of the
    images in per-product folders with the report. Main images come first; shots that fail
    the profile are left out (and listed)."""
    result = export_delivery(delivery, fmt, out_dir, image_base_url=image_base_url, profile=profile)
    for line in result.left_out:
        out.print(f"[yellow]left out:[/] {line}")
    out.print(f"{result.images} images of {result.products} products: {result.path}")


# ---------------------------------------------------------------------------------------
# packshot catalogue shoot


@catalogue_app.command("shoot")
def catalogue_shoot(
    catalogue_dir: Path = typer.Argument(
        ..., help="A folder of product folders, each with its photos and a product.json."
    ),
    shots: Path = typer.Option(
        ..., "--shots", help="The shot list (YAML or JSON; see examples/shot-list.yaml)."
    ),
    out_dir: Path = typer.Option(..., "--out", help="Where to write (run again to continue)."),
    model: str | None = typer.Option(
        None,
        help=f"Base model of the products trained here (default {TRAINING_MODEL}), or with "
        f"--instant of their instant shots (default {INSTANT_MODEL}): Hub id, local folder, "
        "or tiny / tiny-flux2.",
    ),
    instant: bool = typer.Option(
        False,
        "--instant",
        help="No training: a product without a model is shot from its best 1-4 photos as "
        "reference images, as `packshot instant` does (a model that takes them: FLUX.2 [klein]).",
    ),
    preset: str | None = typer.Option(
        None, help="Training preset: quick, standard (the default) or best."
    ),
    train_steps: int | None = typer.Option(
        None, "--train-steps", help="Training steps of each product trained (max_train_steps)."
    ),
    seed: int | None = typer.Option(None, help="First seed of every shot."),
    steps: int | None = typer.Option(None, "--steps", help="Sampling steps (default 25)."),
    judge: bool = typer.Option(
        True, "--judge/--no-judge", help="Score every shot and flag those without the product."
    ),
    dino_model: str | None = typer.Option(None, "--dino-model", help=DINO_HELP),
    clip_model: str | None = typer.Option(None, "--clip-model", help=CLIP_HELP),
    gpu_price: float | None = typer.Option(
        None, "--gpu-price", help="Your GPU's price per hour in GBP, for the cost per image."
    ),
    profile: str | None = typer.Option(None, "--profile", help=PROFILES_HELP),
    runner: str = typer.Option(
        "local", "--runner", envvar="PACKSHOT_RUNNER", help=RUNNER_HELP, callback=_check_runner
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Shoot every product of a catalogue with one shot list.

    Each product's photos are judged; a product without a model is trained first (with
    --instant: shot from its best photos as reference images, no training); then every shot
    of the list is shot and judged. One product's failure (photos not enough, a refused
    training) is reported for that product and never stops the others. Run the same command
    again after a crash or a kill: finished products are kept, a training continues from its
    last checkpoint, a shoot from its last shot. With --profile, every image is then made
    marketplace-ready as `packshot deliver` does, into DIR/catalogue/delivery/. Exits 1 when
    some product failed.
    """
    from packshot.flows.instant import reference_model

    if preset is not None:
        _check_preset(preset)
    if instant:
        for value, hint in ((train_steps, "--train-steps"), (preset, "--preset")):
            if value is not None:
                raise typer.BadParameter(
                    "is for trainings, and --instant trains nothing", param_hint=hint
                )
    shot_list = load_shot_list(shots)
    products = read_catalogue(catalogue_dir)
    profiles = _profiles(profile)
    values: dict[str, Any] = {}
    if gpu_price is not None:
        values["gpu_price_per_hour"] = gpu_price
    if preset is not None:
        values["preset"] = preset
    params = CatalogueParams(
        products=products,
        shots=list(shot_list.shots),
        model=model,
        instant=instant,
        max_train_steps=train_steps,
        seed=seed,
        num_inference_steps=steps,
        judge=judge,
        dino_model=dino_model,
        clip_model=clip_model,
        profiles=profiles,
        **values,
    )
    if instant:  # the instant shots' model checked here, before any work
        reference_model(params.base_model())
    else:  # every training checked here, before any work
        for product in products:
            if product.model_dir is None:
                build_train_config(params.training(product))
    with progress_bar("Catalogue", enabled=not as_json) as progress:
        if runner == "ray":
            summary = run_on_ray(  # the products fan out over the workers
                "catalogue",
                params,
                out_dir,
                progress,
                lambda: False,
                settings=RaySettings.from_env(),
            )
        else:
            summary = run_job("catalogue", params, out_dir, progress, lambda: False)
    if as_json:
        _print_json(to_json(summary))
    else:
        print_catalogue(summary, out_dir)
    if summary.failed:
        raise typer.Exit(1)


# How each product of a catalogue shoot was drawn (ProductOutcome.route), for people.
ROUTES = {
    "trained": "model trained here",
    "instant": "instant: its photos",
    "model": "its own model",
}


def print_catalogue(summary: Any, out_dir: Path) -> None:
    """Each product's outcome, then the cost per image against a studio's photo."""
    table = Table(title=f"{len(summary.products)} products", title_justify="left")
    for column in ("product", "photos", "drawn by", "images", "product missing", "outcome"):
        table.add_column(column)
    for product in summary.products:
        table.add_row(
            product.name,
            product.verdict or "—",
            ROUTES.get(product.route or "", "—"),
            str(len(product.images or [])),
            str(len(product.product_missing or [])),
            "[green]done[/]" if product.status == "done" else "[red]failed[/]",
        )
    out.print(table)
    for product in summary.failed:
        out.print(f"[red]{product.name} failed:[/] {product.error}")
    delivery = summary.delivery
    if delivery:
        for handle, profiles in delivery["products"].items():
            for name, counts in profiles.items():
                said = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
                out.print(f"{handle} · {name}: {said}")
        out.print(f"Delivery: {out_dir / summary.out_dir / delivery['html']}")
    cost = summary.cost
    if cost.get("images"):
        training = " (training included)" if cost.get("training_device_seconds") else ""
        out.print(
            f"{cost['images']} images; £{cost['cost_per_image']:.4f} per image on the GPU"
            f"{training} against £{cost['studio_price_per_photo']:.2f} a studio photo."
        )
    out.print(f"Catalogue in {out_dir / summary.out_dir}")


@app.command("presets")
def presets_command(
    presets_file: Path | None = typer.Option(
        None, "--presets-file", help="Your own shot presets (JSON), merged on top."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the presets as JSON."),
) -> None:
    """List the shot presets: studio on white, lifestyle, on a model, flat lay, …"""

    presets = load_presets(presets_file)
    if as_json:
        _print_json({name: p.to_dict() for name, p in presets.items()})
        return
    table = Table()
    for column in ("preset", "what it is", "aspect", "count"):
        table.add_column(column)
    for name, p in presets.items():
        table.add_row(name, f"{p.label}: {p.description}", p.aspect, str(p.count))
    out.print(table)


# ---------------------------------------------------------------------------------------
# packshot score · packshot bench …

bench_app = typer.Typer(
    cls=PackshotGroup, no_args_is_help=True, help="Measure packshot on standard benchmarks."
)
app.add_typer(bench_app, name="bench")


@app.command("score")
def score_command(
    shots: Path = typer.Argument(..., help="Folder of shots (PNG files with their metadata)."),
    reference: Path = typer.Option(..., "--reference", help="Folder of the product's photos."),
    others: list[Path] = typer.Option(
        [], "--other", help="Photos of another product of the same class (repeatable)."
    ),
    dino_model: str | None = typer.Option(None, "--dino-model", help=DINO_HELP),
    clip_model: str | None = typer.Option(None, "--clip-model", help=CLIP_HELP),
    threshold: float | None = typer.Option(
        None, help="DINO score under which a shot is flagged 'product missing'."
    ),
    token: str | None = typer.Option(None, help="The product token in the prompts (sks)."),
    class_word: str | None = typer.Option(
        None, "--class", help="The class word that replaces the token for CLIP-T."
    ),
    html: bool = typer.Option(True, "--html/--no-html", help="Write report/index.html."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
) -> None:
    """Score shots against the product's photos: DINO, CLIP-I, CLIP-T and product present.

    The scores are those of the DreamBooth paper. A shot whose product fidelity is below the
    threshold is flagged "product missing". The prompt of each shot is read from its JSON
    sidecar or its PNG metadata.
    """
    from packshot.judge import score_shots, write_report

    config = _judge_config(dino_model, clip_model, threshold, token, class_word)
    with progress_bar("Scoring", enabled=not as_json) as progress:
        report = score_shots(
            shots, reference, config=config, progress=progress, other_reference_dirs=others
        )
    report.save(shots / "scores.json")
    files = write_report(report) if html else None
    if as_json:
        _print_json(report.to_dict())
        return
    table = Table(title=f"{len(report.shots)} shots", title_justify="left")
    for column in ("shot", "DINO", "CLIP-I", "CLIP-T", "present", "flags"):
        table.add_column(column)
    for shot in report.shots:
        table.add_row(
            shot.file,
            _fmt(shot.dino),
            _fmt(shot.clip_i),
            _fmt(shot.clip_t),
            "yes" if shot.present else "[red]NO[/]",
            ", ".join(shot.flags),
        )
    means = report.means
    table.add_row(
        "[bold]mean[/]",
        _fmt(means.get("dino")),
        _fmt(means.get("clip_i")),
        _fmt(means.get("clip_t")),
        _fmt(means.get("present_share")),
        "",
    )
    out.print(table)
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    if files is not None:
        out.print(f"Report: {files.html}")


@bench_app.command("dreambench")
def bench_dreambench(
    data_dir: Path = typer.Argument(..., help="The DreamBench folder (prompts_and_classes.txt)."),
    out_dir: Path = typer.Option(..., "--out", help="Where to write results (resumable)."),
    model: str = typer.Option(..., help="Base model: Hub id, local folder, or tiny."),
    subjects: str | None = typer.Option(None, help="Comma-separated subjects (default: all)."),
    prompts_per_subject: int = typer.Option(25, help="Prompts per subject (the paper: 25)."),
    images_per_prompt: int = typer.Option(4, help="Images per prompt (the paper: 4)."),
    steps: int = typer.Option(500, help="Training steps per subject."),
    resolution: int = typer.Option(512, help="Training and shooting resolution (px)."),
    inference_steps: int | None = typer.Option(None, "--inference-steps", help="Sampling steps."),
    dino_model: str | None = typer.Option(None, "--dino-model", help=DINO_HELP),
    clip_model: str | None = typer.Option(None, "--clip-model", help=CLIP_HELP),
    keep_models: bool = typer.Option(False, help="Keep each subject's trained model."),
    place_model: str | None = typer.Option(
        None,
        "--place-model",
        help="Also the pixel-true row: place each subject's photo with this inpainting model.",
    ),
    cutout_model: str | None = typer.Option(
        None, "--cutout-model", help="The pixel-true row's background removal (see place)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run the DreamBench protocol: train per subject, shoot its prompts, score, tabulate.

    Writes results.csv, summary.json, results.md (the paper's table format, with the
    real-images row computed from the data and the paper's SD row beside ours) and plots.
    Subjects already done in --out are skipped, so an interrupted run resumes. With
    --place-model, each subject's first photo is also placed in every prompt's scene
    (`packshot place`) and scored: the pixel-true row of the table.
    """
    from packshot.flows.dreambench import run_dreambench

    chosen = [s.strip() for s in subjects.split(",") if s.strip()] if subjects else None
    with progress_bar("DreamBench", enabled=not as_json) as progress:
        result = run_dreambench(
            data_dir,
            chosen,
            prompts_per_subject,
            images_per_prompt,
            steps,
            resolution,
            model,
            out_dir,
            judge=_judge_config(dino_model, clip_model),
            num_inference_steps=inference_steps,
            keep_models=keep_models,
            place_model=place_model,
            cutout_model=cutout_model,
            progress=progress,
        )
    if as_json:
        _print_json(json.loads(result.summary_json.read_text()))
        return
    out.print(result.table_md.read_text())
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    out.print(f"Results in {result.out_dir}")


# ---------------------------------------------------------------------------------------
# packshot serve · packshot merchants …

merchants_app = typer.Typer(
    cls=PackshotGroup, no_args_is_help=True, help="Create, list and revoke studio merchants."
)
app.add_typer(merchants_app, name="merchants")
DATA_HELP = "The studio's data folder (default: $PACKSHOT_DATA, else ~/.local/share/packshot)."


def _service(data: Path | None) -> Any:
    from packshot.jobs import store

    settings = ServiceSettings.from_env(data)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store.migrate(settings.database_url)
    return settings, store.Database(settings.database_url)


def check_studio_models(settings: ApiSettings) -> list[str]:
    """`packshot serve`'s start-up check: each model merchants get without naming one (or
    each of PACKSHOT_MODELS) is in the local cache or on a Hub that answers. Returns, and
    logs as a warning, the operator's fix for each that isn't (a merchant's job with it would
    fail with "the studio can't run this right now")."""
    from packshot.models.hub import availability_problem
    from packshot.place import default_inpaint_model

    defaults = (
        TrainingCreate.model_fields["model"].default,
        default_inpaint_model(None),
        INSTANT_MODEL,
    )
    names = [n for n in (settings.models or defaults) if n and n not in stand_in_aliases()]
    with ThreadPoolExecutor(max(1, len(names))) as pool:  # each waits seconds at most
        problems = [p for p in pool.map(availability_problem, names) if p is not None]
    for problem in problems:
        logging.getLogger("packshot.serve").warning("model check: %s", problem)
    return problems


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every one)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    web_workers: int = typer.Option(
        1,
        "--web-workers",
        min=1,
        max=64,
        help="Web processes answering the API, over the one database (PostgreSQL advised "
        "past 1); the job worker and the webhook sender stay one.",
    ),
) -> None:
    """Run the studio: the web page and REST API, and one worker process that owns the GPU.

    The database (SQLite in the data folder, or PACKSHOT_DATABASE_URL) is migrated on start.
    Queued and running jobs survive a restart of either process: a training resumes from its
    last checkpoint, a shoot keeps the shots it already rendered. API docs: /docs.
    With --web-workers N, N web processes share the port; the rate limits and the stream caps
    live in the database, so they hold across them.
    """

    import uvicorn

    from packshot.api.app import create_app
    from packshot.jobs.webhooks import WebhookSender

    if not 0 < port < 65536:
        raise typer.BadParameter(f"must be 1–65535, got {port}", param_hint="--port")
    service, db = _service(data)
    settings = ApiSettings.from_env(service)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    api = create_app(settings, migrate=False) if web_workers == 1 else None
    check_studio_models(settings)
    runner = make_runner(service)
    sender = WebhookSender(db, allow_private=service.webhook_allow_private)
    runner.start()
    sender.start()
    err.print(f"packshot studio on http://{host}:{port} · data in {service.data_dir}")
    try:
        if api is not None:
            uvicorn.run(api, host=host, port=port, log_level="info", server_header=False)
        else:
            # Each web process builds its app from the environment: these settings, there.
            os.environ.update(service.environ())
            uvicorn.run(
                "packshot.api.app:app_from_env",
                factory=True,
                workers=web_workers,
                host=host,
                port=port,
                log_level="info",
                server_header=False,
            )
    finally:
        sender.stop()
        runner.stop()
        db.dispose()


@merchants_app.command("create")
def merchants_create(
    name: str = typer.Argument(..., help="The merchant's name."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the merchant as JSON."),
) -> None:
    """Create a merchant and print its API key, once: only a hash of it is stored."""
    from packshot.jobs import store

    _settings, db = _service(data)
    with db.session() as session:
        merchant, key = store.create_merchant(session, name)
    if as_json:
        _print_json(
            {
                "id": merchant.id,
                "name": merchant.name,
                "api_key": key,
                "webhook_secret": merchant.webhook_secret,
            }
        )
        return
    out.print(f"Merchant {merchant.name} ({merchant.id})")
    typer.echo(f"API key (shown once, store it now): {key}")
    typer.echo(f"Webhook signing secret: {merchant.webhook_secret}")


@merchants_app.command("list")
def merchants_list(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the merchants as JSON."),
) -> None:
    """List the merchants: id, name, the start of their key, created, revoked."""
    from sqlalchemy import select

    from packshot.jobs.models import Merchant

    _settings, db = _service(data)
    with db.session() as session:
        rows = session.scalars(select(Merchant).order_by(Merchant.created_at)).all()
    items = [
        {
            "id": m.id,
            "name": m.name,
            "key_prefix": m.key_prefix + "…",
            "created_at": m.created_at.isoformat(timespec="seconds"),
            "revoked": m.revoked_at is not None,
        }
        for m in rows
    ]
    if as_json:
        _print_json(items)
        return
    table = Table()
    for column in ("id", "name", "key", "created", "revoked"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item["id"],
            item["name"],
            item["key_prefix"],
            item["created_at"],
            "yes" if item["revoked"] else "",
        )
    out.print(table)


@merchants_app.command("revoke")
def merchants_revoke(
    merchant: str = typer.Argument(..., help="The merchant's id or name."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Revoke a merchant's API key (and its page sessions) at once."""
    from sqlalchemy import delete

    from packshot.jobs import store
    from packshot.jobs.models import WebSession

    _settings, db = _service(data)
    with db.session() as session:
        row = store.revoke_merchant(session, merchant)
        session.execute(delete(WebSession).where(WebSession.merchant_id == row.id))
        session.commit()
    out.print(f"Revoked the key of {row.name} ({row.id}).")


# ---------------------------------------------------------------------------------------
# packshot demo


@app.command("demo")
def demo(
    out_dir: Path = typer.Option(Path("demo-out"), "--out", help="Where to write the results."),
    photos: Path | None = typer.Option(
        None, help="Photos to use instead of the bundled sample product."
    ),
    model: str | None = typer.Option(
        None, help="Base model; default: the real default on a GPU, `tiny` without one."
    ),
) -> None:
    """Run the main job end to end on the bundled sample product."""
    from packshot.flows.demo import run_demo

    run_demo(
        out_dir=out_dir,
        photos=photos,
        model=model,
        console=err,
        progress_bar=progress_bar,
        show_report=print_report,
    )


def main() -> None:
    """Entry point of the `packshot` script."""
    app(prog_name="packshot")


if __name__ == "__main__":
    main()
