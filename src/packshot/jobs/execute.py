"""Run one job in one folder: `run_job(kind, params, workdir, progress, should_cancel)`.

This is the seam between the studio's job queue and the model code. It touches no database
and no HTTP: a runner (the local worker process by default, Ray for a cluster) takes a job
from the store, calls `run_job` wherever the GPU is, relays its progress events back and
records its result. Everything a job needs is in `params` (plain JSON) and everything it
writes is under `workdir`, so a runner can ship both across machines.

A runner is expected to behave like this:

1. Events: every `ProgressEvent` passed to `progress` is stored in order (a runner may drop
   `step`/`shot` events that come faster than it cares to keep, never the others:
   `event` in `data` names them: start, step, checkpoint, sample, resume, shot, warning,
   done, failed). Paths in events' `data` are absolute paths inside `workdir`; the runner
   makes them relative (`relative_to(workdir)`) before they leave the machine.
2. Cancel: `should_cancel()` is called before every event is passed on; when it returns
   True `run_job` raises `JobCanceled` within one step or shot. The runner then marks the job
   canceled; `workdir` is kept, so nothing a canceled job wrote is lost.
3. Resume: calling `run_job` again with the same params and the same `workdir` continues
   an interrupted job: a training run from its last complete checkpoint (`resumed_from` in
   the result), a shoot without re-rendering the shots already written, and a finished job
   returns its result again without any work. A runner that loses a worker (a kill, an
   out-of-memory crash, a lost node) simply runs the job again in the same folder.
4. Results: the return value is JSON-ready; paths in it are relative to `workdir`.
   `PackshotError` means the job failed for a reason its owner can act on (str() is the
   message for them); any other exception is a bug, reported as an internal error.

Job kinds (`JOB_KINDS`, the keys of `EXECUTORS`, the one table every runner dispatches
through): "training", "shoot" and "placement" (pixel-true mode, `packshot.place`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packshot.artifacts.product_model import (
    SAMPLES_DIR,
    TRAINING_SET_DIR,
    ProductModel,
    work_dir_for,
)
from packshot.errors import PackshotError, UsageError
from packshot.progress import ProgressCallback, ProgressEvent
from packshot.shoot.plan import draw_seed

MODEL_DIR = "model"  # a training job's model folder, inside its workdir
SHOTS_DIR = "shots"  # a shoot job's shots, inside its workdir
PLACEMENTS_DIR = "placements"  # a placement job's shots, inside its workdir
RESULT_FILE = "result.json"  # a finished job's result, inside its workdir
SEED_FILE = "seed.txt"  # the random first seed of a job given none, inside its workdir
SEEDED_KINDS = ("shoot", "placement")  # kinds that plan their images from a first seed

Executor = Callable[[dict[str, Any], Path, ProgressCallback, Path | None], dict[str, Any]]


class JobCanceled(Exception):  # noqa: N818 - it is not an error: the owner asked for it
    """Raised inside a job when `should_cancel()` said so; the runner marks the job canceled."""


# -- training --------------------------------------------------------------------------------

TRAINING_OPTIONS = {
    # API / params name: TrainConfig name (the `packshot train` options)
    "steps": "max_train_steps",
    "resolution": "resolution",
    "rank": "rank",
    "learning_rate": "learning_rate",
    "seed": "seed",
    "token": "token",
    "checkpoint_every": "checkpointing_steps",
    "sample_every": "validation_steps",
    "prior_preservation": "with_prior_preservation",
    "train_text_encoder": "train_text_encoder",
    "background_weight": "background_weight",
    "precision": "mixed_precision",
}


def build_train_config(
    model: str,
    class_word: str,
    *,
    preset: str = "standard",
    product: str | None = None,
    cache_dir: Path | None = None,
    **options: Any,
) -> Any:
    """The TrainConfig for `model`, a preset and the options given (None: the preset's value).

    The same for the CLI and the service: the tiny stand-ins train at their own small size
    unless a resolution is given. `options` use the names of `TRAINING_OPTIONS`.
    """
    from packshot.models.describe import describe_model
    from packshot.models.load import resolve_model
    from packshot.train import PRESET_NAMES, TrainConfig

    if preset not in PRESET_NAMES:
        raise UsageError(f"unknown preset {preset!r}; choose {', '.join(PRESET_NAMES)}")
    unknown = sorted(set(options) - set(TRAINING_OPTIONS))
    if unknown:
        raise UsageError(f"unknown training option(s): {', '.join(unknown)}")
    resolved = resolve_model(model, cache_dir=cache_dir)
    values = {TRAINING_OPTIONS[k]: v for k, v in options.items()}
    if values.get("resolution") is None and resolved.stand_in:
        # The tiny stand-ins are built for their own small size, not the family's 512/1024.
        values["resolution"] = describe_model(resolved).resolution
    return TrainConfig.from_preset(
        resolved.family.name,
        preset,  # type: ignore[arg-type]
        model=model,
        class_word=class_word,
        product=product,
        **values,
    )


def _run_training(
    params: dict[str, Any], workdir: Path, progress: ProgressCallback, cache_dir: Path | None
) -> dict[str, Any]:
    """params: photos_dir, model, class_word, product?, preset?, force?, and TRAINING_OPTIONS."""
    from packshot.train import train

    options = {k: params[k] for k in TRAINING_OPTIONS if params.get(k) is not None}
    config = build_train_config(
        params["model"],
        params["class_word"],
        preset=params.get("preset") or "standard",
        product=params.get("product"),
        cache_dir=cache_dir,
        **options,
    )
    out = workdir / MODEL_DIR
    resume = work_dir_for(out).exists()  # an interrupted run of this job: continue it
    result = train(
        config,
        Path(params["photos_dir"]),
        out,
        progress=progress,
        resume=resume,
        force=bool(params.get("force", False)),
        cache_dir=cache_dir,
    )
    return _training_result(result.model_dir, workdir)


def _training_result(model_dir: Path, workdir: Path) -> dict[str, Any]:
    model = ProductModel.load(model_dir)
    files = sorted(
        str(p.relative_to(workdir))
        for p in model_dir.rglob("*")
        if p.is_file() and TRAINING_SET_DIR not in p.relative_to(model_dir).parts
    )
    return {
        "model_dir": MODEL_DIR,
        "base_model": model.base_model,
        "token": model.token,
        "class_word": model.class_word,
        "final_step": model.final_step,
        "final_loss": model.final_loss,
        "resumed_from": model.resumed_from,
        "nan_rollbacks": model.nan_rollbacks,
        "timings": model.timings,
        "samples": [f for f in files if f.startswith(f"{MODEL_DIR}/{SAMPLES_DIR}/")],
        "files": files,
    }


# -- shoot -----------------------------------------------------------------------------------

SHOOT_OPTIONS = {
    # API / params name: ShootRequest name (the `packshot shoot` options)
    "descriptions": "descriptions",
    "presets": "presets",
    "n": "count",
    "aspect": "aspect",
    "seed": "seed",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "negative_prompt": "negative_prompt",
    "lora_scale": "lora_scale",
    "fast": "fast",
}


def _run_shoot(
    params: dict[str, Any], workdir: Path, progress: ProgressCallback, cache_dir: Path | None
) -> dict[str, Any]:
    """params: model_dir, judge? (default True), best?, reference_dir?, and SHOOT_OPTIONS."""
    from packshot.flows.judged import shoot_and_judge
    from packshot.judge import JudgeConfig
    from packshot.shoot import ShootRequest, shoot

    model_dir = Path(params["model_dir"])
    values = {SHOOT_OPTIONS[k]: params[k] for k in SHOOT_OPTIONS if params.get(k) is not None}
    if values.get("seed") is None:
        values["seed"] = job_seed(workdir)
    request = ShootRequest(model_dir=model_dir, **values)
    out = workdir / SHOTS_DIR
    resume = out.exists()  # an interrupted shoot of this job: keep what it rendered
    if not params.get("judge", True):
        result = shoot(request, out, progress=progress, cache_dir=cache_dir, resume=resume)
        flagged: list[str] = []
    else:
        # The tiny stand-in models go with the tiny stand-in judges (offline demo, tests).
        tiny = ProductModel.load(model_dir).trained_on_stand_in
        judge = JudgeConfig(**({"dino_model": "tiny", "clip_model": "tiny"} if tiny else {}))
        judged = shoot_and_judge(
            request,
            out,
            judge=judge,
            reference_dir=params.get("reference_dir"),
            best=params.get("best"),
            progress=progress,
            cache_dir=cache_dir,
            resume=resume,
        )
        result, flagged = judged.result, judged.flagged
    summary = json.loads(result.summary_path.read_text(encoding="utf-8"))
    return {
        "out_dir": SHOTS_DIR,
        "images": [
            {
                "file": f"{SHOTS_DIR}/{image['file']}",
                "preset": image.get("preset"),
                "description": image.get("description"),
                "prompt": image.get("prompt"),
                "seed": image.get("seed"),
                "width": image.get("width"),
                "height": image.get("height"),
                "scores": image.get("scores"),
            }
            for image in summary["images"]
        ],
        "contact_sheet": f"{SHOTS_DIR}/{result.contact_sheet.name}",
        "product_missing": [f"{SHOTS_DIR}/{name}" for name in flagged],
        "warnings": list(result.warnings),
        "cost": result.cost,
    }


def job_seed(workdir: Path) -> int:
    """The random first seed of a shoot or placement given none, chosen once and kept in its
    folder (`SEED_FILE`): a resumed job, here or on another machine, plans the same images."""
    seed_file = Path(workdir) / SEED_FILE
    if not seed_file.is_file():
        seed_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = seed_file.with_suffix(".tmp")
        tmp.write_text(str(draw_seed()), encoding="utf-8")
        tmp.replace(seed_file)
    return int(seed_file.read_text(encoding="utf-8"))


# -- placement (pixel-true mode) ---------------------------------------------------------------

PLACEMENT_OPTIONS = {
    # API name: PlaceRequest name (the `packshot place` options the studio offers): the
    # shoot's scene options, less the LoRA's, plus its own
    **{k: v for k, v in SHOOT_OPTIONS.items() if k not in ("lora_scale", "fast")},
    "keep_framing": "keep_framing",
    "model": "model",
}


def _run_placement(
    params: dict[str, Any], workdir: Path, progress: ProgressCallback, cache_dir: Path | None
) -> dict[str, Any]:
    """params: a `PlaceRequest` as a dict (photo, descriptions, product_model?, …)."""
    from packshot.place import PlaceRequest, place

    values = dict(params)
    if values.get("seed") is None:
        values["seed"] = job_seed(workdir)
    request = PlaceRequest.from_dict(values)
    result = place(request, workdir / PLACEMENTS_DIR, progress=progress, cache_dir=cache_dir)
    return result.to_dict(relative_to=workdir)


EXECUTORS: dict[str, Executor] = {
    "training": _run_training,
    "shoot": _run_shoot,
    "placement": _run_placement,
}
JOB_KINDS = tuple(EXECUTORS)


# -- the seam --------------------------------------------------------------------------------


def run_job(
    kind: str,
    params: dict[str, Any],
    workdir: Path | str,
    progress: ProgressCallback,
    should_cancel: Callable[[], bool],
    *,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Run (or continue, or just return) one job of `kind` in `workdir`; see the module doc."""
    if kind not in EXECUTORS:
        raise UsageError(f"unknown job kind {kind!r}; known: {', '.join(EXECUTORS)}")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    done = workdir / RESULT_FILE
    if done.is_file():  # finished before: a runner that lost the news runs it again
        return json.loads(done.read_text(encoding="utf-8"))

    def guarded(event: ProgressEvent) -> None:
        # A failing run's last word is passed on as it is: it must not be cut short.
        if event.data.get("event") != "failed" and should_cancel():
            raise JobCanceled(f"{kind} job canceled")
        progress(event)

    if should_cancel():
        raise JobCanceled(f"{kind} job canceled")
    result = EXECUTORS[kind](params, workdir, guarded, cache_dir)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(done)
    return result


def relative_event(event: ProgressEvent, workdir: Path) -> dict[str, Any]:
    """The event as JSON with paths inside `workdir` made relative (what leaves the machine)."""
    root = str(Path(workdir).resolve())

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(root):
            return value[len(root) :].lstrip("/")
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value

    return {
        "stage": event.stage,
        "done": event.done,
        "total": event.total,
        "message": fix(event.message),
        "data": fix(dict(event.data)),
    }


def remove_workdir(workdir: Path) -> None:
    """Delete a job's folder (its product was deleted)."""
    shutil.rmtree(workdir, ignore_errors=True)


__all__ = [
    "EXECUTORS",
    "JOB_KINDS",
    "JobCanceled",
    "PackshotError",
    "build_train_config",
    "job_seed",
    "relative_event",
    "run_job",
]
