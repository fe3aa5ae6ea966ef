"""Training and shooting as Ray tasks: the same `train`/`shoot`, run on a cluster's GPU workers.

No shared disk is assumed. The driver (the CLI, or the studio's API node) puts the photos and
the product model into Ray's object store; the task works in a temporary folder on its worker
and sends back what it makes, as it makes it, through a mailbox actor pinned to the driver's
node: progress events, every checkpoint, every sample, every shot. The driver writes what
arrives into the same folders a local run writes (`<out>.partial/checkpoints/step-N`, the shoot
folder), so what reached it is never lost, and a local `--resume` can continue from it too.

When a worker dies (process killed, node lost), the driver starts the task again with what has
reached it: a training resumes from the last checkpoint that arrived, a shoot renders only the
shots not yet delivered. A task that fails for its own reasons (a `PackshotError`: bad input,
NaN twice) is not retried; its error is raised as is.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packshot.artifacts.product_model import (
    CHECKPOINTS_DIR,
    RUN_FILE,
    SAMPLES_DIR,
    ProductModel,
    work_dir_for,
)
from packshot.errors import PackshotError, UsageError
from packshot.jobs.execute import JobCanceled
from packshot.jobs.runner import register_runner
from packshot.progress import ProgressCallback, ProgressEvent, no_progress

if TYPE_CHECKING:
    from packshot.judge import JudgeConfig
    from packshot.shoot import ShootRequest, ShootResult
    from packshot.train import TrainConfig

log = logging.getLogger("packshot.jobs")

# Environment variables the surfaces read into RaySettings (documented in the README).
ENV_ADDRESS = "RAY_ADDRESS"  # an existing cluster ("ray://head:10001" or "auto"); none: local
ENV_TRAIN_GPUS = "PACKSHOT_RAY_TRAIN_GPUS"  # GPUs a training task asks for (default: auto)
ENV_SHOOT_GPUS = "PACKSHOT_RAY_SHOOT_GPUS"  # GPUs a shooting task asks for (default: auto)
ENV_TASK_CPUS = "PACKSHOT_RAY_CPUS"  # CPUs a task asks for (default 1)
ENV_MAX_ATTEMPTS = "PACKSHOT_RAY_MAX_ATTEMPTS"  # tries per job when workers die (default 3)


class WorkersLost(PackshotError):
    """The job's worker died on every try."""


@dataclass(frozen=True)
class RaySettings:
    """Where and how jobs run on Ray.

    `train_gpus`/`shoot_gpus` None means "1 when the cluster has GPUs, else 0" (a CPU-only
    local Ray runs the same code on its CPU workers).
    """

    address: str | None = None  # RAY_ADDRESS; None starts a local Ray instance
    train_gpus: float | None = None
    shoot_gpus: float | None = None
    task_cpus: float = 1.0  # also the torch threads the task uses
    max_attempts: int = 3  # tries per job when workers die; a PackshotError is never retried
    poll_s: float = 0.05  # how often the driver collects events
    local_cpus: int | None = None  # num_cpus of a local Ray instance (None: all cores)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> RaySettings:
        env = dict(os.environ if env is None else env)

        def number(name: str, default: float | None) -> float | None:
            value = env.get(name)
            if value in (None, "", "auto"):
                return default
            try:
                parsed = float(value)
            except ValueError:
                raise UsageError(f"{name} must be a number or `auto`, but is {value!r}.") from None
            if parsed < 0:
                raise UsageError(f"{name} must not be negative, but is {value!r}.")
            return parsed

        attempts = number(ENV_MAX_ATTEMPTS, 3)
        if attempts is None or attempts < 1 or attempts != int(attempts):
            raise UsageError(f"{ENV_MAX_ATTEMPTS} must be a whole number of at least 1.")
        values: dict[str, Any] = {
            "address": env.get(ENV_ADDRESS) or None,
            "train_gpus": number(ENV_TRAIN_GPUS, None),
            "shoot_gpus": number(ENV_SHOOT_GPUS, None),
            "task_cpus": number(ENV_TASK_CPUS, 1.0) or 1.0,
            "max_attempts": int(attempts),
        }
        values.update(overrides)
        return cls(**values)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(
            "The ray runner needs Ray: pip install 'packshot[ray]' (ray[serve]), or use the "
            "local runner."
        ) from None
    return ray


def connect(settings: RaySettings) -> None:
    """Join the cluster at `settings.address`, or start a local Ray instance; once a process."""
    ray = _ray()
    if ray.is_initialized():
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if settings.address:
        options["address"] = settings.address
    else:
        options["num_cpus"] = settings.local_cpus
    try:
        ray.init(**options)
    except ConnectionError as error:
        raise UsageError(
            f"Can't reach the Ray cluster at {settings.address} ({error}). Check RAY_ADDRESS "
            "and that the head node runs `ray start --head`."
        ) from None


def gpus_for(kind: str, settings: RaySettings) -> float:
    """The GPUs a "train" or "shoot" task asks for: as set, else 1 when the cluster has any."""
    chosen = settings.train_gpus if kind == "train" else settings.shoot_gpus
    if chosen is not None:
        return chosen
    return 1.0 if _ray().cluster_resources().get("GPU", 0) >= 1 else 0.0


# -- bytes in and out of folders ----------------------------------------------------------------


def pack_folder(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under `folder` as {relative posix path: bytes}, but top-level names in `skip`."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and relative.parts[0] not in skip:
            files[relative.as_posix()] = path.read_bytes()
    return files


def _safe_target(folder: Path, name: str) -> Path:
    target = (folder / name).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise PackshotError(f"A Ray task sent back a file outside its folder: {name!r}.")
    return target


def write_atomic(path: Path, data: bytes) -> None:
    """Write `path` as a whole or not at all (a temporary sibling, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def unpack_folder(files: dict[str, bytes], folder: Path) -> None:
    for name, data in files.items():
        write_atomic(_safe_target(folder, name), data)


def _json_text(value: str) -> str:
    return json.dumps(value)[1:-1]  # the string as it appears inside JSON, escapes included


def _rename_paths(files: dict[str, bytes], renames: dict[str, str]) -> dict[str, bytes]:
    """The worker's folder paths in JSON files replaced by the driver's (sidecars, shoot.json)."""
    fixed = {}
    for name, data in files.items():
        if name.endswith(".json"):
            text = data.decode("utf-8")
            for old, new in renames.items():
                text = text.replace(_json_text(old), _json_text(new))
            data = text.encode("utf-8")
        fixed[name] = data
    return fixed


# -- the mailbox: events from the task to the driver ---------------------------------------------


class Mailbox:
    """A Ray actor holding the events a task sent until the driver collects them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def put(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def drain(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events


def _mailbox() -> Any:
    """A mailbox on the driver's node: a lost GPU node never takes what was delivered with it."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    strategy = NodeAffinitySchedulingStrategy(node_id=here, soft=False)
    return ray.remote(Mailbox).options(num_cpus=0, scheduling_strategy=strategy).remote()


def _event_dict(event: ProgressEvent) -> dict[str, Any]:
    return {
        "stage": event.stage,
        "done": event.done,
        "total": event.total,
        "message": event.message,
        "data": dict(event.data),
    }


def _to_event(payload: dict[str, Any]) -> ProgressEvent:
    return ProgressEvent(
        payload["stage"], payload["done"], payload["total"], payload["message"], payload["data"]
    )


def _task_started(mailbox: Any, stage: str, attempt: int) -> None:
    """The first event of every try: where it runs (the chaos test kills this pid)."""
    ray = _ray()
    context = ray.get_runtime_context()
    ray.get(
        mailbox.put.remote(
            {
                "stage": stage,
                "done": 0,
                "total": None,
                "message": f"running on Ray (try {attempt})",
                "data": {
                    "event": "ray_task",
                    "attempt": attempt,
                    "pid": os.getpid(),
                    "node_id": context.get_node_id(),
                    "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                },
            }
        )
    )


def _use_task_threads() -> None:
    import torch

    # Ray sets OMP_NUM_THREADS to the task's CPUs; torch reads it only at import.
    threads = int(float(os.environ.get("OMP_NUM_THREADS") or 1))
    torch.set_num_threads(max(1, threads))


# -- the driver's loop -------------------------------------------------------------------------


def _is_worker_loss(error: BaseException) -> bool:
    from ray import exceptions

    lost = (
        exceptions.WorkerCrashedError,
        exceptions.NodeDiedError,
        exceptions.ObjectLostError,
        exceptions.LocalRayletDiedError,
    )
    return isinstance(error, lost)


def _drive(
    ref: Any,
    mailbox: Any,
    on_event: Callable[[dict[str, Any]], None],
    should_cancel: Callable[[], bool] | None,
    poll_s: float,
) -> Any:
    """Wait for `ref`, handing every event that arrives to `on_event`; cancel when asked."""
    ray = _ray()

    def collect() -> None:
        for payload in ray.get(mailbox.drain.remote()):
            on_event(payload)

    while True:
        ready, _ = ray.wait([ref], timeout=poll_s)
        collect()
        if should_cancel is not None and not ready and should_cancel():
            # force: the worker process is killed, so its GPU and memory are free at once
            ray.cancel(ref, force=True)
            # what ray.get raises now is the cancellation itself (TaskCancelledError)
            with contextlib.suppress(Exception):
                ray.get(ref, timeout=60)
            raise JobCanceled("The job was canceled; its Ray task was stopped.")
        if ready:
            try:
                return ray.get(ref)
            finally:
                collect()  # what the task sent just before it ended (or died)


def _with_retries(
    stage: str,
    settings: RaySettings,
    submit: Callable[[int], Any],
    on_event: Callable[[dict[str, Any]], None],
    progress: ProgressCallback,
    should_cancel: Callable[[], bool] | None,
    mailbox: Any,
    retry_note: Callable[[], dict[str, Any]],
) -> Any:
    """Run `submit(attempt)` until it returns: a dead worker means another try, a failure not."""
    ray = _ray()
    last: BaseException | None = None
    for attempt in range(1, settings.max_attempts + 1):
        ref = submit(attempt)
        try:
            return _drive(ref, mailbox, on_event, should_cancel, settings.poll_s)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, PackshotError):
                raise cause from None  # the job's own failure: bad input, NaN twice, ...
            if isinstance(cause, BaseException) and not _is_worker_loss(cause):
                raise cause from None  # a bug: the same error on every try
            last = error
        except ray.exceptions.RayError as error:
            if not _is_worker_loss(error):
                raise
            last = error
        if attempt < settings.max_attempts:
            note = retry_note()
            progress(
                ProgressEvent(
                    stage,
                    0,
                    None,
                    f"the worker was lost ({type(last).__name__}); trying again",
                    {"event": "retry", "attempt": attempt + 1, "reason": str(last)[:300], **note},
                )
            )
    raise WorkersLost(
        f"The {stage} job's Ray worker died on all {settings.max_attempts} tries (last: "
        f"{type(last).__name__}: {str(last)[:200]}). Check the workers' logs (`ray logs`) for "
        f"out-of-memory kills, or raise {ENV_MAX_ATTEMPTS}."
    )


# -- training ----------------------------------------------------------------------------------


def _train_task(
    config_json: str,
    photos: dict[str, bytes],
    checkpoint: dict[str, Any] | None,
    force: bool,
    mailbox: Any,
    attempt: int,
    out_name: str,
) -> dict[str, Any]:
    """On the worker: train in a temporary folder, mail back checkpoints and samples, return the
    model folder's files."""
    ray = _ray()
    from packshot.train import TrainConfig
    from packshot.train.checkpoints import checkpoint_name
    from packshot.train.loop import train

    _use_task_threads()
    _task_started(mailbox, "train", attempt)
    config = TrainConfig.model_validate_json(config_json)
    with tempfile.TemporaryDirectory(prefix="packshot-ray-train-") as tmp:
        root = Path(tmp)
        photos_dir, out = root / "photos", root / out_name
        unpack_folder(photos, photos_dir)
        work = work_dir_for(out)
        if checkpoint is not None:
            # 1. Resume from the checkpoint the driver sent: the same folder a local run leaves.
            folder = work / CHECKPOINTS_DIR / checkpoint_name(checkpoint["step"])
            unpack_folder(checkpoint["files"], folder)
            (work / RUN_FILE).write_text(json.dumps(config.run_signature(), indent=2), "utf-8")

        def forward(event: ProgressEvent) -> None:
            payload = _event_dict(event)
            kind = event.data.get("event")
            if kind == "checkpoint":
                # Synchronous: once put() returns, this checkpoint has reached the driver's node.
                path = Path(event.data["path"])
                payload["files"] = pack_folder(path)
                ray.get(mailbox.put.remote(payload))
            elif kind == "sample":
                paths = [Path(p) for p in event.data.get("paths", [])]
                payload["files"] = {p.name: p.read_bytes() for p in paths}
                ray.get(mailbox.put.remote(payload))
            else:
                mailbox.put.remote(payload)

        # 2. The same training run as on one machine.
        train(config, photos_dir, out, progress=forward, resume=checkpoint is not None, force=force)
        ray.get(mailbox.put.remote({"stage": "train", "done": 0, "total": None, "message": "",
                                    "data": {"event": "ray_flush"}}))  # fmt: skip
        return {"files": pack_folder(out)}  # the model folder: packshot.json says the rest


def train_on_ray(
    config: TrainConfig,
    photos_dir: Path | str,
    out_dir: Path | str,
    *,
    progress: ProgressCallback = no_progress,
    resume: bool = False,
    force: bool = False,
    settings: RaySettings | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> ProductModel:
    """`train` as a Ray task: the same arguments, the same model folder in `out_dir`.

    Checkpoints that reach the driver go to `<out_dir>.partial/checkpoints/` as a local run's
    do; a try whose worker dies is followed by one that resumes from the latest of them.
    """
    from packshot.train.checkpoints import (
        checkpoint_name,
        latest_checkpoint,
        prune_checkpoints,
    )
    from packshot.train.loop import open_work_dir

    settings = settings or RaySettings()
    photos_dir, out_dir = Path(photos_dir), Path(out_dir)
    work = work_dir_for(out_dir)
    checkpoints_dir = work / CHECKPOINTS_DIR

    # 1. The same checks as a local run, before anything travels.
    open_work_dir(config, photos_dir, out_dir, resume=resume, force=force)

    # 2. The photos into the object store, once for every try.
    ray = _ray()
    connect(settings)
    photos_ref = ray.put(pack_folder(photos_dir))
    mailbox = _mailbox()
    task = ray.remote(_train_task).options(
        num_gpus=gpus_for("train", settings),
        num_cpus=settings.task_cpus,
        max_retries=0,  # the driver retries, with the latest checkpoint
    )
    held: list[ProgressEvent] = []

    def on_event(payload: dict[str, Any]) -> None:
        data = payload["data"]
        kind = data.get("event")
        if kind == "ray_flush":
            return
        if kind == "checkpoint":
            # 3. A checkpoint arrived: into place atomically, the newest K kept.
            step = int(data["step"])
            final = checkpoints_dir / checkpoint_name(step)
            tmp = checkpoints_dir / f"{checkpoint_name(step)}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            unpack_folder(payload["files"], tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            prune_checkpoints(checkpoints_dir, config.checkpoints_total_limit)
            data["path"] = str(final)
        elif kind == "sample":
            unpack_folder(payload["files"], work / SAMPLES_DIR)
            data["paths"] = [str(work / SAMPLES_DIR / name) for name in payload["files"]]
        elif kind == "done":
            data["path"] = str(out_dir)
            held.append(_to_event(payload))  # told once the model folder is in place
            return
        progress(_to_event(payload))

    def submit(attempt: int) -> Any:
        latest = latest_checkpoint(checkpoints_dir) if (resume or attempt > 1) else None
        sent = None if latest is None else {"step": latest.step, "files": pack_folder(latest.path)}
        return task.remote(
            config.model_dump_json(), photos_ref, sent, force, mailbox, attempt, out_dir.name
        )

    def retry_note() -> dict[str, Any]:
        latest = latest_checkpoint(checkpoints_dir)
        return {"resume_step": latest.step if latest else None}

    try:
        value = _with_retries(
            "train", settings, submit, on_event, progress, should_cancel, mailbox, retry_note
        )
    except BaseException:
        # As a local run: keep the work folder only when a checkpoint in it can be resumed.
        if latest_checkpoint(checkpoints_dir) is None:
            shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        ray.kill(mailbox)

    # 4. The model folder, written beside and renamed into place in one step.
    incoming = out_dir.parent / f"{out_dir.name}.incoming"
    if incoming.exists():
        shutil.rmtree(incoming)
    unpack_folder(value["files"], incoming)
    if out_dir.exists():  # only with force
        shutil.rmtree(out_dir)
    os.replace(incoming, out_dir)
    shutil.rmtree(work, ignore_errors=True)
    for event in held:
        progress(event)
    return ProductModel.load(out_dir)


# -- shooting ----------------------------------------------------------------------------------

MODEL_FILES = ("packshot.json", "pytorch_lora_weights.safetensors")  # what shooting reads


def _shoot_task(
    fields: dict[str, Any],
    inputs: dict[str, dict[str, bytes]],
    delivered: dict[str, bytes],
    judge: JudgeConfig | None,
    best: int | None,
    mailbox: Any,
    attempt: int,
    names: dict[str, str],
) -> dict[str, Any]:
    """On the worker: shoot into a temporary folder, mail back each shot as it is written,
    return the finished folder's files."""
    ray = _ray()
    from packshot.flows.judged import shoot_and_judge
    from packshot.shoot import ShootRequest, shoot

    _use_task_threads()
    _task_started(mailbox, "shoot", attempt)
    with tempfile.TemporaryDirectory(prefix="packshot-ray-shoot-") as tmp:
        root = Path(tmp)
        # 1. The inputs where the request expects them; the model folder under its own name,
        #    which the shots' recipes record.
        renames: dict[str, str] = {}
        for key in ("model_dir", "reference_dir"):
            if key in inputs:
                folder = root / key / names[key]
                unpack_folder(inputs[key], folder)
                renames[str(folder)] = names[f"{key}_original"]
                if key == "model_dir":
                    fields["model_dir"] = folder
        for key in ("prompts_file", "presets_file"):
            if key in inputs:
                path = root / key / names[key]
                unpack_folder(inputs[key], path.parent)
                fields[key] = path
        out = root / names["out"]
        unpack_folder(delivered, out)
        request = ShootRequest(**fields)

        def forward(event: ProgressEvent) -> None:
            payload = _event_dict(event)
            path = event.data.get("path")
            if event.data.get("event") == "shot" and path and Path(path).name not in delivered:
                png = Path(path)
                sidecar = png.with_suffix(".json")
                files = {png.name: png.read_bytes(), sidecar.name: sidecar.read_bytes()}
                payload["files"] = _rename_paths(files, renames)
                ray.get(mailbox.put.remote(payload))  # delivered once this returns
            else:
                mailbox.put.remote(payload)

        # 2. The same shoot as on one machine, continuing from what was delivered.
        resume = bool(delivered)
        if judge is None:
            shoot(request, out, progress=forward, resume=resume)
        else:
            reference = (
                root / "reference_dir" / names["reference_dir"]
                if names.get("reference_dir")
                else None
            )
            shoot_and_judge(
                request,
                out,
                judge=judge,
                reference_dir=reference,
                best=best,
                progress=forward,
                resume=resume,
            )
        ray.get(mailbox.put.remote({"stage": "shoot", "done": 0, "total": None, "message": "",
                                    "data": {"event": "ray_flush"}}))  # fmt: skip
        return {"files": _rename_paths(pack_folder(out), renames)}


@dataclass
class RayShoot:
    """What a shoot on Ray delivered: the same result as a local shoot, plus flagged shots."""

    result: ShootResult
    flagged: list[str]


def shoot_on_ray(
    request: ShootRequest,
    out_dir: Path | str,
    *,
    judge: JudgeConfig | None = None,
    reference_dir: Path | str | None = None,
    best: int | None = None,
    progress: ProgressCallback = no_progress,
    settings: RaySettings | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> RayShoot:
    """`shoot` (or, with `judge`, `shoot_and_judge`) as a Ray task, into `out_dir`.

    Each shot is written into `out_dir` as soon as it reaches the driver; a try whose worker
    dies is followed by one that renders only the shots not yet delivered. A shoot folder left
    half-done by an earlier run continues the same way.
    """
    from packshot.flows.judged import reference_dir_for
    from packshot.shoot.plan import draw_seed
    from packshot.shoot.run import SUMMARY_FILE

    settings = settings or RaySettings()
    out = Path(out_dir)

    # 1. Check what can be checked here; fix the seed so that every try plans the same shots.
    if (out / SUMMARY_FILE).exists():
        raise UsageError(
            f"{out} already holds a shoot ({SUMMARY_FILE}). Choose another output folder."
        )
    if request.seed is None:
        request = replace(request, seed=draw_seed())
    inputs: dict[str, dict[str, bytes]] = {}
    names: dict[str, str] = {"out": out.name}
    if request.model_dir is not None:
        model_dir = Path(request.model_dir)
        ProductModel.load(model_dir)
        files = {n: (model_dir / n).read_bytes() for n in MODEL_FILES}
        if judge is not None and reference_dir is None:
            reference = reference_dir_for(request, None)  # the model's own training crops
            files.update({f"{reference.name}/{k}": v for k, v in pack_folder(reference).items()})
        inputs["model_dir"] = files
        names["model_dir"] = model_dir.resolve().name
        names["model_dir_original"] = str(request.model_dir)
    if judge is not None and reference_dir is not None:
        reference = Path(reference_dir)
        if not reference.is_dir():
            raise UsageError(f"Reference photos not found: {reference}.")
        inputs["reference_dir"] = pack_folder(reference)
        names["reference_dir"] = reference.resolve().name
        names["reference_dir_original"] = str(reference_dir)
    for key in ("prompts_file", "presets_file"):
        path = getattr(request, key)
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise UsageError(f"`{key}` not found: {path}.")
            inputs[key] = {path.name: path.read_bytes()}
            names[key] = path.name
    fields = asdict(request)
    for key in ("model_dir", "prompts_file", "presets_file"):
        fields[key] = None

    # 2. What an earlier, interrupted run delivered already.
    delivered: dict[str, bytes] = {}
    if out.is_dir():
        for png in out.glob("*.png"):
            sidecar = png.with_suffix(".json")
            if sidecar.is_file() and png.name != "contact-sheet.png":
                delivered[png.name] = png.read_bytes()
                delivered[sidecar.name] = sidecar.read_bytes()

    ray = _ray()
    connect(settings)
    inputs_ref = ray.put(inputs)
    mailbox = _mailbox()
    task = ray.remote(_shoot_task).options(
        num_gpus=gpus_for("shoot", settings), num_cpus=settings.task_cpus, max_retries=0
    )
    held: list[ProgressEvent] = []

    def on_event(payload: dict[str, Any]) -> None:
        data = payload["data"]
        kind = data.get("event")
        if kind == "ray_flush":
            return
        if kind == "shot" and data.get("path"):
            name = Path(data["path"]).name
            if "files" in payload and name not in delivered:
                # 3. A shot arrived: sidecar first, the PNG last (the pair counts as delivered).
                files = payload["files"]
                sidecar = Path(name).with_suffix(".json").name
                write_atomic(out / sidecar, files[sidecar])
                write_atomic(out / name, files[name])
                delivered[name], delivered[sidecar] = files[name], files[sidecar]
            data["path"] = str(out / name)
        elif kind == "done":
            data["path"] = str(out)
            held.append(_to_event(payload))
            return
        progress(_to_event(payload))

    def submit(attempt: int) -> Any:
        return task.remote(
            fields, inputs_ref, dict(delivered), judge, best, mailbox, attempt, names
        )

    def retry_note() -> dict[str, Any]:
        return {"delivered": sorted(n for n in delivered if n.endswith(".png"))}

    out.mkdir(parents=True, exist_ok=True)
    try:
        value = _with_retries(
            "shoot", settings, submit, on_event, progress, should_cancel, mailbox, retry_note
        )
    finally:
        ray.kill(mailbox)

    # 4. The finished folder: what is new or changed (scores added to sidecars, the contact
    #    sheet, shoot.json), and shots that --best set aside moved into candidates/.
    files: dict[str, bytes] = value["files"]
    for name, data in files.items():
        target = _safe_target(out, name)
        if not (target.is_file() and target.read_bytes() == data):
            write_atomic(target, data)
    for name in list(delivered):
        if name not in files:
            (out / name).unlink(missing_ok=True)
    for event in held:
        progress(event)
    return _read_shoot(out)


def _read_shoot(out: Path) -> RayShoot:
    """A finished shoot folder as the result a local shoot returns."""
    from packshot.shoot import ShootResult, Shot
    from packshot.shoot.run import CONTACT_SHEET_FILE, SUMMARY_FILE

    summary = json.loads((out / SUMMARY_FILE).read_text("utf-8"))
    shots = []
    for image in summary["images"]:
        sidecar = json.loads((out / image["sidecar"]).read_text("utf-8"))
        shots.append(
            Shot(
                path=out / image["file"],
                sidecar=out / image["sidecar"],
                preset=image.get("preset"),
                description=image.get("description", ""),
                prompt=image["prompt"],
                negative_prompt=sidecar.get("negative_prompt", ""),
                seed=image["seed"],
                width=image["width"],
                height=image["height"],
                device_seconds=float(image.get("device_s", 0.0)),
            )
        )
    result = ShootResult(
        out_dir=out,
        shots=shots,
        contact_sheet=out / summary.get("contact_sheet", CONTACT_SHEET_FILE),
        summary_path=out / SUMMARY_FILE,
        warnings=list(summary.get("warnings", [])),
        timings=dict(summary.get("timings", {})),
        cost=dict(summary.get("cost", {})),
    )
    return RayShoot(result, list(summary.get("product_missing", [])))


# -- any studio job, on the seam (`run_job` in a folder) ------------------------------------------

SKIPPED_INPUT_PARTS = ("checkpoints", "samples")  # a model folder's parts no job reads


def _is_input_path(value: Any, workdir: Path) -> bool:
    """A param that names a file or folder on this machine, outside the job's own folder."""
    if not isinstance(value, str) or not value.startswith("/"):
        return False
    path = Path(value)
    return path.exists() and not path.resolve().is_relative_to(workdir)


def _workdir_files(workdir: Path) -> dict[str, bytes]:
    """What a try needs of the job's folder: all of it but the checkpoints older than the latest."""
    from packshot.train.checkpoints import list_checkpoints

    files = pack_folder(workdir)
    for checkpoints in {
        p.parent for p in workdir.rglob("step-*") if p.parent.name == "checkpoints"
    }:
        found = list_checkpoints(checkpoints)
        for old in found[:-1]:
            prefix = old.path.relative_to(workdir).as_posix() + "/"
            files = {k: v for k, v in files.items() if not k.startswith(prefix)}
    return files


def _job_task(
    kind: str,
    params: dict[str, Any],
    inputs: dict[str, dict[str, Any]],
    workdir_files: dict[str, bytes],
    mailbox: Any,
    attempt: int,
) -> dict[str, Any]:
    """On the worker: `run_job` in a temporary copy of the job's folder; files mailed back."""
    ray = _ray()
    from packshot.jobs.execute import relative_event, run_job

    _use_task_threads()
    _task_started(mailbox, kind, attempt)
    with tempfile.TemporaryDirectory(prefix=f"packshot-ray-{kind}-") as tmp:
        root = Path(tmp).resolve()
        workdir = root / "job"
        # 1. The inputs under their own names (a shot's recipe records its model folder's),
        #    the params pointing at them, and the job's folder as the driver has it.
        renames: dict[str, str] = {}
        params = dict(params)
        for key, item in inputs.items():
            path = root / "inputs" / key / item["name"]
            if item["is_dir"]:
                unpack_folder(item["files"], path)
            else:
                write_atomic(path, item["files"][item["name"]])
            params[key] = str(path)
            renames[str(path)] = item["original"]
        # What an earlier try recorded (a placement's request names its photo) as this try's
        # paths, so that the job sees the same request and resumes.
        back = {original: local for local, original in renames.items()}
        unpack_folder(_rename_paths(workdir_files, back), workdir)

        def forward(event: ProgressEvent) -> None:
            payload = relative_event(event, workdir)
            data, files = payload["data"], {}
            kind_ = data.get("event")
            if kind_ == "checkpoint" and data.get("path"):
                folder = workdir / data["path"]
                files = {f"{data['path']}/{k}": v for k, v in pack_folder(folder).items()}
            elif kind_ == "sample":
                files = {p: (workdir / p).read_bytes() for p in data.get("paths", [])}
            elif kind_ == "shot" and data.get("path") and data["path"] not in workdir_files:
                png = data["path"]
                sidecar = str(Path(png).with_suffix(".json"))
                files = {
                    png: (workdir / png).read_bytes(),
                    sidecar: (workdir / sidecar).read_bytes(),
                }
            if files:
                payload["files"] = _rename_paths(files, renames)
                ray.get(mailbox.put.remote(payload))  # it has reached the driver's node
            else:
                mailbox.put.remote(payload)

        # 2. The job, exactly as the local worker runs it (it resumes from what it finds).
        result = run_job(kind, params, workdir, forward, lambda: False)
        ray.get(mailbox.put.remote({"stage": kind, "done": 0, "total": None, "message": "",
                                    "data": {"event": "ray_flush"}}))  # fmt: skip
        return {"result": result, "files": _rename_paths(pack_folder(workdir), renames)}


def run_job_on_ray(
    kind: str,
    params: dict[str, Any],
    workdir: Path | str,
    progress: ProgressCallback,
    should_cancel: Callable[[], bool],
    *,
    settings: RaySettings | None = None,
) -> dict[str, Any]:
    """`run_job` as a Ray task, with the seam's promises (events, cancel, resume, results).

    The files the params name (photos, the product model) travel to the worker; the job's
    folder travels both ways: to the worker as the driver has it (so a try resumes from what
    was delivered), and back piece by piece while it runs (checkpoints, samples, shots), then
    whole when it is done.
    """
    from packshot.jobs.execute import RESULT_FILE, SEEDED_KINDS, job_seed

    settings = settings or RaySettings()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    done = workdir / RESULT_FILE
    if done.is_file():  # finished before: the runner lost the news
        return json.loads(done.read_text(encoding="utf-8"))
    if should_cancel():
        raise JobCanceled(f"{kind} job canceled")
    if kind in SEEDED_KINDS and params.get("seed") is None:
        # The random first seed `run_job` keeps in the folder, chosen here, where the folder
        # lives: every try (and a resumed local run) must plan the same shots.
        job_seed(workdir)

    # 1. Inputs: every param naming a file or folder here (model folders without their
    #    checkpoints and samples).
    inputs: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        if _is_input_path(value, workdir):
            path = Path(value)
            files = (
                pack_folder(path, skip=SKIPPED_INPUT_PARTS)
                if path.is_dir()
                else {path.name: path.read_bytes()}
            )
            name = path.resolve().name
            inputs[key] = {"name": name, "is_dir": path.is_dir(), "files": files, "original": value}

    ray = _ray()
    connect(settings)
    inputs_ref = ray.put(inputs)
    mailbox = _mailbox()
    stage_gpus = gpus_for("train" if kind == "training" else "shoot", settings)
    task = ray.remote(_job_task).options(
        num_gpus=stage_gpus, num_cpus=settings.task_cpus, max_retries=0
    )
    held: list[ProgressEvent] = []

    def on_event(payload: dict[str, Any]) -> None:
        from packshot.train.checkpoints import prune_checkpoints

        data = payload["data"]
        kind_ = data.get("event")
        if kind_ == "ray_flush":
            return
        files: dict[str, bytes] = payload.get("files", {})
        if kind_ == "checkpoint" and files:
            final = _safe_target(workdir, data["path"])
            tmp = final.with_name(f"{final.name}.tmp")
            if tmp.exists():
                shutil.rmtree(tmp)
            prefix = f"{data['path']}/"
            unpack_folder({k.removeprefix(prefix): v for k, v in files.items()}, tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            prune_checkpoints(final.parent, 1)  # the next try needs only the latest
        elif kind_ == "shot" and files:
            png = data["path"]
            sidecar = str(Path(png).with_suffix(".json"))
            write_atomic(_safe_target(workdir, sidecar), files[sidecar])
            write_atomic(_safe_target(workdir, png), files[png])  # the pair is delivered now
        elif files:
            unpack_folder(files, workdir)
        for key in ("path", "paths"):  # back to paths inside the job's folder, as run_job's
            if isinstance(data.get(key), str) and key == "path":
                data[key] = str(workdir / data[key])
            elif isinstance(data.get(key), list):
                data[key] = [str(workdir / p) for p in data[key]]
        event = _to_event(payload)
        if kind_ == "done":
            held.append(event)
            return
        progress(event)

    def submit(attempt: int) -> Any:
        return task.remote(kind, params, inputs_ref, _workdir_files(workdir), mailbox, attempt)

    def retry_note() -> dict[str, Any]:
        return {}

    try:
        value = _with_retries(
            kind, settings, submit, on_event, progress, should_cancel, mailbox, retry_note
        )
    finally:
        ray.kill(mailbox)

    # 2. The finished folder, as the worker left it: new and changed files written, files it
    #    moved or removed (candidates set aside, pruned checkpoints) gone here too.
    files = value["files"]
    for name, data in files.items():
        target = _safe_target(workdir, name)
        if not (target.is_file() and target.read_bytes() == data):
            write_atomic(target, data)
    for path in sorted(workdir.rglob("*"), reverse=True):
        relative = path.relative_to(workdir).as_posix()
        if path.is_file() and relative not in files:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    for event in held:
        progress(event)
    return value["result"]


class RayRunner:
    """The studio's jobs on a Ray cluster (`PACKSHOT_RUNNER=ray`): the API node drives them.

    A thread takes queued jobs from the database while the cluster has room for them (one per
    GPU, or per task CPUs on a CPU-only cluster) and drives each one with `run_job_on_ray`:
    events into the job store, cancel within a second, a dead worker's job tried again from
    what reached this node. Jobs this runner held when the API node stopped are queued again
    on the next start and resume.
    """

    name = "ray"

    def __init__(self, settings: Any, ray_settings: RaySettings | None = None):
        import socket

        self.settings = settings
        self.ray_settings = ray_settings or RaySettings.from_env()
        self.worker_id = f"ray:{socket.gethostname()}:{os.getpid()}"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs: dict[str, threading.Thread] = {}
        self.db: Any = None

    def capacity(self) -> int:
        ray = _ray()
        total = ray.cluster_resources()
        if gpus_for("train", self.ray_settings) > 0:
            return max(1, int(total.get("GPU", 0)))
        return max(1, int(total.get("CPU", 1) // max(self.ray_settings.task_cpus, 1)))

    def start(self) -> None:
        from packshot.jobs import store

        connect(self.ray_settings)
        self.db = store.Database(self.settings.database_url)
        with self.db.session() as session:
            store.requeue_running(session, runner=self.name)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._dispatch, name="ray-dispatch", daemon=True)
        self._thread.start()

    def _dispatch(self) -> None:
        from packshot.jobs import store

        while not self._stopping.is_set():
            self._jobs = {k: t for k, t in self._jobs.items() if t.is_alive()}
            job = None
            if len(self._jobs) < self.capacity():
                with self.db.session() as session:
                    job = store.claim_next(session, self.worker_id, runner=self.name)
                    if job is not None:
                        claimed = (job.id, job.kind, dict(job.params))
                        workdir = store.job_dir(self.settings.data_dir, job).resolve()
            if job is None:
                self._stopping.wait(0.25)
                continue
            thread = threading.Thread(
                target=self._run, args=(*claimed, workdir), name=f"ray-{claimed[0]}", daemon=True
            )
            self._jobs[claimed[0]] = thread
            thread.start()

    def _run(self, job_id: str, kind: str, params: dict[str, Any], workdir: Path) -> None:
        from packshot.jobs.worker import KEEP_ALWAYS, drive_job

        execute = functools.partial(run_job_on_ray, settings=self.ray_settings)
        keep = KEEP_ALWAYS | {"retry"}
        drive_job(
            self.db,
            self.worker_id,
            self._stopping,
            job_id,
            kind,
            params,
            workdir,
            execute,
            keep=keep,
        )

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for thread in list(self._jobs.values()):
            thread.join(timeout=60)  # each cancels its Ray task within a poll
        if self.db is not None:
            self.db.dispose()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


register_runner("ray", RayRunner)
