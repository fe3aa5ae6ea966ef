"""Run one job in one folder: `run_job(kind, params, workdir, progress, should_cancel)`.

This is the seam between the studio's job queue and the model code. It touches no database
and no HTTP: a runner (the local worker process by default, Ray for a cluster) takes a job
from the store, calls `run_job` wherever the GPU is, relays its progress events back and
records its result. Everything a job needs is in `params` (a record of plain values) and
everything it writes is under `workdir`, so a runner can ship both across machines.

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
4. Results: the return value is the kind's result record (`packshot.jobs.kinds`), JSON
   only at the store's boundary; paths in it are relative to `workdir`.
   `PackshotError` means the job failed for a reason its owner can act on (str() is the
   message for them); any other exception is a bug, reported as an internal error.

Job kinds ("training", "shoot", "placement": pixel-true mode) are the records of
`packshot.jobs.kinds.KINDS`, the one table every runner dispatches through; their executors
are here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from packshot.artifacts.product_model import (
    SAMPLES_DIR,
    TRAINING_SET_DIR,
    ProductModel,
    work_dir_for,
)
from packshot.artifacts.shots import ShotRecord
from packshot.errors import PackshotError, UsageError
from packshot.jobs.kinds import (
    KINDS,
    CatalogueParams,
    ShootParams,
    ShootResult,
    TrainingParams,
    TrainingResult,
    kind_of,
    to_json,
)
from packshot.judge import JudgeConfig
from packshot.models.families import stand_in_aliases
from packshot.progress import ProgressCallback, ProgressEvent
from packshot.shoot.plan import draw_seed
from packshot.train import PRESET_NAMES, TrainConfig

RESULT_FILE = "result.json"  # a finished job's result, inside its workdir
SEED_FILE = "seed.txt"  # the random first seed of a job given none, inside its workdir


class JobCanceled(Exception):  # noqa: N818 - it is not an error: the owner asked for it
    """Raised inside a job when `should_cancel()` said so; the runner marks the job canceled."""


# -- training --------------------------------------------------------------------------------


def build_train_config(params: TrainingParams, *, cache_dir: Path | None = None) -> Any:
    """The TrainConfig of a training job: its preset, and the fields it sets over it.

    The same for the CLI and the service: the tiny stand-ins train at their own small size
    unless a resolution is given, and render their samples in a few steps.
    """
    from packshot.models.describe import describe_model
    from packshot.models.load import resolve_model
    from packshot.models.standins import STAND_IN_SAMPLE_STEPS

    if params.preset not in PRESET_NAMES:
        raise UsageError(f"unknown preset {params.preset!r}; choose {', '.join(PRESET_NAMES)}")
    resolved = resolve_model(params.model, cache_dir=cache_dir)
    values = params.config_overrides()
    if values.get("resolution") is None and resolved.stand_in:
        # The tiny stand-ins are built for their own small size, not the family's 512/1024.
        values["resolution"] = describe_model(resolved).resolution
    if resolved.stand_in:
        values["validation_inference_steps"] = STAND_IN_SAMPLE_STEPS
    return TrainConfig.from_preset(
        resolved.family.name,
        params.preset,  # type: ignore[arg-type]
        model=params.model,
        class_word=params.class_word,
        product=params.product,
        **values,
    )


def run_training(
    params: TrainingParams, workdir: Path, progress: ProgressCallback, cache_dir: Path | None
) -> TrainingResult:
    from packshot.train import train

    config = build_train_config(params, cache_dir=cache_dir)
    out = workdir / KINDS["training"].out_dir
    resume = work_dir_for(out).exists()  # an interrupted run of this job: continue it
    result = train(
        config,
        Path(params.photos_dir),
        out,
        progress=progress,
        resume=resume,
        force=params.force,
        cache_dir=cache_dir,
    )
    return _training_result(result, workdir)


def _training_result(model: ProductModel, workdir: Path) -> TrainingResult:
    """The job's result from the model `train` returned (no second read of its folder)."""
    model_dir = model.model_dir
    folder = model_dir.relative_to(workdir).as_posix()
    files = sorted(
        str(p.relative_to(workdir))
        for p in model_dir.rglob("*")
        if p.is_file() and TRAINING_SET_DIR not in p.relative_to(model_dir).parts
    )
    return TrainingResult(
        model_dir=folder,
        base_model=model.base_model,
        token=model.token,
        class_word=model.class_word,
        final_step=model.final_step,
        final_loss=model.final_loss,
        resumed_from=model.resumed_from,
        nan_rollbacks=model.nan_rollbacks,
        timings=model.timings,
        samples=[f for f in files if f.startswith(f"{folder}/{SAMPLES_DIR}/")],
        files=files,
    )


# -- shoot -----------------------------------------------------------------------------------


def run_shoot(
    params: ShootParams, workdir: Path, progress: ProgressCallback, cache_dir: Path | None
) -> ShootResult:
    from packshot.flows.instant import instant
    from packshot.flows.judged import shoot_and_judge
    from packshot.shoot import shoot

    request = params.request()
    if request.seed is None:
        request = replace(request, seed=job_seed(workdir))
    folder = KINDS["shoot"].out_dir
    out = workdir / folder
    resume = out.exists()  # an interrupted shoot of this job: keep what it rendered
    if params.photos_dir is not None:
        # instant shots: intake picks the references, every shot judged against the photos
        tiny = (request.base or "").strip() in stand_in_aliases()
        judge = JudgeConfig.for_models(params.dino_model, params.clip_model, stand_in=tiny)
        done = instant(
            params.photos_dir,
            request,
            out,
            judge=judge,
            best=params.best,
            progress=progress,
            cache_dir=cache_dir,
            resume=resume,
        )
        result, flagged = done.judged.result, done.judged.flagged
    elif not params.judge:
        result = shoot(request, out, progress=progress, cache_dir=cache_dir, resume=resume)
        flagged: list[str] = []
    else:
        # A product model trained on a tiny stand-in goes with the tiny stand-in judges
        # (offline demo, tests); a shoot of a base alone names its judges (the CLI does).
        model_dir = Path(str(request.model_dir))
        tiny = request.base is None and ProductModel.load(model_dir).trained_on_stand_in
        judge = JudgeConfig.for_models(params.dino_model, params.clip_model, stand_in=tiny)
        judged = shoot_and_judge(
            request,
            out,
            judge=judge,
            reference_dir=params.reference_dir,
            best=params.best,
            progress=progress,
            cache_dir=cache_dir,
            resume=resume,
        )
        result, flagged = judged.result, judged.flagged
    summary = json.loads(result.summary_path.read_text(encoding="utf-8"))
    delivery, badges = None, {}
    if params.profiles:  # marketplace-ready: every shot against every profile
        from packshot.deliver.run import deliver_run

        shots = [out / image["file"] for image in summary["images"]]
        report = deliver_run(out, params.profiles, shots, progress=progress)
        delivery, badges = report.record(out), report.badges(relative_to=out)
    return ShootResult(
        out_dir=folder,
        images=[
            ShotRecord.listed(image, f"{folder}/{image['file']}", badges=badges.get(image["file"]))
            for image in summary["images"]
        ],
        contact_sheet=f"{folder}/{result.contact_sheet.name}",
        product_missing=[f"{folder}/{name}" for name in flagged],
        warnings=list(result.warnings),
        cost=result.cost,
        delivery=delivery,
    )


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


def run_placement(
    params: Any, workdir: Path, progress: ProgressCallback, cache_dir: Path | None
) -> Any:
    """params: a `PlaceRequest`; the result: its `PlaceResult`, paths relative to `workdir`,
    with the delivery to `params.profiles` when it names any."""
    from packshot.place import place

    kind = KINDS["placement"]
    if params.seed is None:
        params = replace(params, seed=job_seed(workdir))
    out = workdir / kind.out_dir
    result = place(params, out, progress=progress, cache_dir=cache_dir)
    if params.profiles:  # marketplace-ready: a pixel-true shot on white may be a main image
        from packshot.deliver.run import deliver_run

        shots = [shot.path for shot in result.shots]
        report = deliver_run(out, params.profiles, shots, progress=progress)
        badges = report.badges(relative_to=out)
        placed = [
            replace(shot, badges=badges.get(str(shot.path.relative_to(out))))
            for shot in result.shots
        ]
        result = replace(result, shots=placed, delivery=report.record(out))
    return kind.load_result(result.to_dict(relative_to=workdir))


# -- catalogue ---------------------------------------------------------------------------------


def run_catalogue(
    params: CatalogueParams, workdir: Path, progress: ProgressCallback, cache_dir: Path | None
) -> Any:
    """A catalogue shoot in `workdir/catalogue`; the result: the flow's `CatalogueSummary`, its
    paths relative to `workdir`."""
    from packshot.flows.catalogue import shoot_catalogue

    folder = KINDS["catalogue"].out_dir
    seed = params.seed if params.seed is not None else job_seed(workdir)
    summary = shoot_catalogue(
        params.products,
        params.shot_list(),
        workdir / folder,
        train_config=lambda product: build_train_config(
            params.training(product), cache_dir=cache_dir
        ),
        seed=seed,
        instant_model=params.base_model() if params.instant else None,
        num_inference_steps=params.num_inference_steps,
        judge=params.judge,
        dino_model=params.dino_model,
        clip_model=params.clip_model,
        gpu_price_per_hour=params.gpu_price_per_hour,
        studio_price_per_photo=params.studio_price_per_photo,
        profiles=params.profiles,
        request={**to_json(params), "seed": seed},
        progress=progress,
        cache_dir=cache_dir,
    )
    return replace(
        summary,
        out_dir=folder,
        images=[replace(image, file=f"{folder}/{image.file}") for image in summary.images],
        contact_sheet=f"{folder}/{summary.contact_sheet}" if summary.contact_sheet else None,
    )


# -- the seam --------------------------------------------------------------------------------


def run_job(
    kind: str,
    params: Any,
    workdir: Path | str,
    progress: ProgressCallback,
    should_cancel: Callable[[], bool],
    *,
    cache_dir: Path | None = None,
) -> Any:
    """Run (or continue, or just return) one job of `kind` in `workdir`; see the module doc.

    `params` is the kind's params record; the result is its result record."""
    job_kind = kind_of(kind)
    workdir = Path(workdir).resolve()
    before = finished_result(kind, workdir)
    if before is not None:  # finished before: a runner that lost the news runs it again
        return before
    done = workdir / RESULT_FILE

    def guarded(event: ProgressEvent) -> None:
        # A failing run's last word is passed on as it is: it must not be cut short.
        if event.data.get("event") != "failed" and should_cancel():
            raise JobCanceled(f"{kind} job canceled")
        progress(event)

    if should_cancel():
        raise JobCanceled(f"{kind} job canceled")
    result = job_kind.run(params, workdir, guarded, cache_dir)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(to_json(result), indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(done)
    return result


def finished_result(kind: str, workdir: Path) -> Any | None:
    """The result a job of `kind` left in `workdir` when it finished, or None (never ran, or
    was cut short); makes `workdir` if it is not there yet."""
    workdir.mkdir(parents=True, exist_ok=True)
    done = workdir / RESULT_FILE
    if not done.is_file():
        return None
    return kind_of(kind).load_result(json.loads(done.read_text(encoding="utf-8")))


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
    "JobCanceled",
    "PackshotError",
    "build_train_config",
    "job_seed",
    "relative_event",
    "run_job",
]
