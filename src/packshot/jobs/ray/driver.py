"""The Ray driver: any job kind's `run_job`, run as a Ray task on a cluster's workers.

`run_on_ray(kind, params, workdir, progress, should_cancel)` keeps the seam's promises
(`packshot.jobs.execute`: events, cancel, resume, results) with the job running elsewhere; the
studio's `RayRunner` and the CLI's `--runner ray` both call it.

No shared disk is assumed. The driver puts the files the params name (photos, the product
model) into Ray's object store; the task runs `run_job` in a temporary copy of the job's
folder on its worker and sends back what it makes, as it makes it, through a mailbox actor
pinned to the driver's node: progress events, every checkpoint, every sample, every shot. The
driver writes what arrives where a local run writes it (`model.partial/checkpoints/step-N`,
the shots folder), so what reached it is never lost, then the finished folder.

When a worker dies (process killed, node lost), the driver starts the task again with the
job's folder as it has it: a training resumes from the last checkpoint that arrived, a shoot
renders only the shots not yet delivered. A task that fails for its own reasons (a
`PackshotError`: bad input, NaN twice) is not retried; its error is raised as is. Cancel is
`ray.cancel(force=True)`: the worker process is killed and its GPU is free at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packshot.artifacts.product_model import CHECKPOINTS_DIR, UNREAD_PARTS, ProductModel
from packshot.errors import PackshotError, UsageError
from packshot.jobs.execute import (
    JobCanceled,
    finished_result,
    job_seed,
    relative_event,
    run_job,
)
from packshot.jobs.kinds import KINDS, kind_of, to_json
from packshot.models.names import folders_allowed, hub_models_only
from packshot.progress import ProgressCallback, ProgressEvent

# Environment variables the surfaces read into RaySettings (documented in the README); the
# GPUs each job kind's task asks for are its `JobKind.gpus_env`.
ENV_ADDRESS = "RAY_ADDRESS"  # an existing cluster ("ray://head:10001" or "auto"); none: local
ENV_TRAIN_GPUS = KINDS["training"].gpus_env  # GPUs a training task asks for (default: auto)
ENV_SHOOT_GPUS = KINDS["shoot"].gpus_env  # GPUs a shoot or placement task asks for (auto)
ENV_TASK_CPUS = "PACKSHOT_RAY_CPUS"  # CPUs a task asks for (default 1)
ENV_MAX_ATTEMPTS = "PACKSHOT_RAY_MAX_ATTEMPTS"  # tries per job when workers die (default 3)


class WorkersLost(PackshotError):
    """The job's worker died on every try."""


@dataclass(frozen=True)
class RaySettings:
    """Where and how jobs run on Ray.

    `gpus` maps a job kind's `gpus_env` to the GPUs its task asks for; a setting not given
    means "1 when the cluster has GPUs, else 0" (a CPU-only local Ray runs the same code on
    its CPU workers).
    """

    address: str | None = None  # RAY_ADDRESS; None starts a local Ray instance
    gpus: dict[str, float] = field(default_factory=dict)  # {gpus_env: GPUs per task}
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
        gpus = {kind.gpus_env: number(kind.gpus_env, None) for kind in KINDS.values()}
        values: dict[str, Any] = {
            "address": env.get(ENV_ADDRESS) or None,
            "gpus": {name: value for name, value in gpus.items() if value is not None},
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
    """The GPUs a task of job `kind` asks for: as set, else 1 when the cluster has any."""
    chosen = settings.gpus.get(kind_of(kind).gpus_env)
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


def safe_target(folder: Path, name: str) -> Path:
    """`folder / name`, refused when `name` leads outside `folder`."""
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
        write_atomic(safe_target(folder, name), data)


def _json_text(value: str) -> str:
    return json.dumps(value)[1:-1]  # the string as it appears inside JSON, escapes included


def rename_paths(files: dict[str, bytes], renames: dict[str, str]) -> dict[str, bytes]:
    """One machine's folder paths in JSON files replaced by another's (sidecars, shoot.json)."""
    fixed = {}
    for name, data in files.items():
        if name.endswith(".json"):
            text = data.decode("utf-8")
            for old, new in renames.items():
                text = text.replace(_json_text(old), _json_text(new))
            data = text.encode("utf-8")
        fixed[name] = data
    return fixed


# -- what travels to the worker: the params' files and the job's folder ----------------------------


@dataclass(frozen=True)
class Input:
    """A file or folder a param names on the driver's machine, as it travels to the worker."""

    name: str  # its own name (a shot's recipe records its model folder's)
    is_dir: bool
    files: dict[str, bytes]
    original: str  # the param's value on the driver's machine


def _path_params(value: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (dotted key, value) of a params record's JSON whose value is an absolute path,
    nested records and lists included: "photos_dir", "products.0.model_dir"."""
    if isinstance(value, dict):
        return [
            found
            for name, inner in value.items()
            for found in _path_params(inner, f"{key}.{name}" if key else str(name))
        ]
    if isinstance(value, list):
        return [
            found for i, inner in enumerate(value) for found in _path_params(inner, f"{key}.{i}")
        ]
    if isinstance(value, str) and value.startswith("/"):
        return [(key, value)]
    return []


def _set_param(params: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    """`params` (JSON) with the value at dotted `key` replaced; the rest shared, not copied."""
    head, _, rest = key.partition(".")
    if not rest:
        return {**params, head: value}
    inner = params[head]
    if isinstance(inner, list):
        index, _, tail = rest.partition(".")
        items = list(inner)
        items[int(index)] = _set_param(items[int(index)], tail, value) if tail else value
        return {**params, head: items}
    return {**params, head: _set_param(inner, rest, value)}


def pack_inputs(
    params: dict[str, Any], workdir: Path, product_models: tuple[str, ...] = ()
) -> dict[str, Input]:
    """Every param naming a file or folder on this machine, outside the job's own folder, with
    its bytes (keyed by its dotted place in the params: nested records and lists too); the
    params named in `product_models` are product models, checked and shipped without the
    parts no job reads (checkpoints, samples)."""
    inputs = {}
    for key, value in _path_params(params):
        path = Path(value)
        if not path.exists() or path.resolve().is_relative_to(workdir):
            continue
        if key.rpartition(".")[2] in product_models:
            ProductModel.load(path)  # a broken model is refused here, before anything travels
            files = pack_folder(path, skip=UNREAD_PARTS)
        elif path.is_dir():
            files = pack_folder(path)
        else:
            files = {path.name: path.read_bytes()}
        inputs[key] = Input(path.resolve().name, path.is_dir(), files, value)
    return inputs


def unpack_inputs(
    params: dict[str, Any], inputs: dict[str, Input], root: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """On the worker: the inputs under `root`, the params pointing at them, and the renames
    {worker's path: driver's path} that put the driver's paths back into what travels home."""
    renames = {}
    for key, item in inputs.items():
        path = root / key / item.name
        if item.is_dir:
            unpack_folder(item.files, path)
        else:
            write_atomic(path, item.files[item.name])
        params = _set_param(params, key, str(path))
        renames[str(path)] = item.original
    return params, renames


def workdir_files(workdir: Path) -> dict[str, bytes]:
    """What a try needs of the job's folder: all of it but the checkpoints older than the latest."""
    from packshot.train.checkpoints import list_checkpoints  # torch: only where a job ran

    files = pack_folder(workdir)
    for checkpoints in {
        p.parent for p in workdir.rglob("step-*") if p.parent.name == CHECKPOINTS_DIR
    }:
        for old in list_checkpoints(checkpoints)[:-1]:
            prefix = old.path.relative_to(workdir).as_posix() + "/"
            files = {k: v for k, v in files.items() if not k.startswith(prefix)}
    return files


def retry_note(workdir: Path) -> dict[str, Any]:
    """What the next try resumes from: the latest checkpoint delivered, the shots delivered."""
    from packshot.train.checkpoints import list_checkpoints  # torch: only where a job ran

    steps = [
        found[-1].step
        for folder in workdir.rglob(CHECKPOINTS_DIR)
        if folder.is_dir() and (found := list_checkpoints(folder))
    ]
    shots = sorted(
        p.relative_to(workdir).as_posix()
        for p in workdir.rglob("*.png")
        if p.with_suffix(".json").is_file()
    )
    return {"resume_step": max(steps) if steps else None, "delivered": shots}


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


def _to_event(payload: dict[str, Any]) -> ProgressEvent:
    return ProgressEvent(
        payload["stage"], payload["done"], payload["total"], payload["message"], payload["data"]
    )


def outgoing(
    payload: dict[str, Any], workdir: Path, sent: dict[str, bytes], renames: dict[str, str]
) -> dict[str, Any]:
    """On the worker: an event (paths relative to the job's folder) with the files it announces
    (a checkpoint, samples, a shot not `sent` with the folder), the driver's paths in them."""
    data, files = payload["data"], {}
    kind = data.get("event")
    if kind == "checkpoint" and data.get("path"):
        folder = workdir / data["path"]
        files = {f"{data['path']}/{k}": v for k, v in pack_folder(folder).items()}
    elif kind == "sample":
        files = {p: (workdir / p).read_bytes() for p in data.get("paths", [])}
    elif kind == "shot" and data.get("path") and data["path"] not in sent:
        png = data["path"]
        sidecar = str(Path(png).with_suffix(".json"))
        files = {png: (workdir / png).read_bytes(), sidecar: (workdir / sidecar).read_bytes()}
    if files:
        payload["files"] = rename_paths(files, renames)
    return payload


def deliver(payload: dict[str, Any], workdir: Path) -> ProgressEvent:
    """On the driver: write the files an event carries where a local run writes them, and the
    event with paths inside the job's folder again, as `run_job` passes them on."""
    from packshot.train.checkpoints import prune_checkpoints  # torch: only where a job ran

    data = payload["data"]
    kind = data.get("event")
    files: dict[str, bytes] = payload.get("files", {})
    if kind == "checkpoint" and files:
        # Into place atomically; the next try needs only the latest.
        final = safe_target(workdir, data["path"])
        tmp = final.with_name(f"{final.name}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        prefix = f"{data['path']}/"
        unpack_folder({k.removeprefix(prefix): v for k, v in files.items()}, tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        prune_checkpoints(final.parent, 1)
    elif kind == "shot" and files:
        png = data["path"]
        sidecar = str(Path(png).with_suffix(".json"))
        write_atomic(safe_target(workdir, sidecar), files[sidecar])
        write_atomic(safe_target(workdir, png), files[png])  # the pair is delivered now
    elif files:
        unpack_folder(files, workdir)
    if isinstance(data.get("path"), str):
        data["path"] = str(workdir / data["path"])
    if isinstance(data.get("paths"), list):
        data["paths"] = [str(workdir / p) for p in data["paths"]]
    return _to_event(payload)


def finish_folder(files: dict[str, bytes], workdir: Path) -> None:
    """The finished folder as the worker left it: new and changed files written, files it
    moved or removed (candidates set aside, pruned checkpoints) gone here too."""
    for name, data in files.items():
        target = safe_target(workdir, name)
        if not (target.is_file() and target.read_bytes() == data):
            write_atomic(target, data)
    for path in sorted(workdir.rglob("*"), reverse=True):
        relative = path.relative_to(workdir).as_posix()
        if path.is_file() and relative not in files:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


# -- the task, on a worker ------------------------------------------------------------------------


def _job_task(
    kind: str,
    params: dict[str, Any],
    inputs: dict[str, Input],
    sent: dict[str, bytes],
    mailbox: Any,
    attempt: int,
    home: str,
    hub_only: bool = False,
) -> dict[str, Any]:
    """`run_job` in a temporary copy of the job's folder (`home` on the driver's machine); its
    files mailed back as they come. `hub_only`: the driver ran within `hub_models_only()` (a
    studio job), and so does the task."""
    ray = _ray()
    import torch  # the worker's own process: Ray set OMP_NUM_THREADS to the task's CPUs

    torch.set_num_threads(max(1, int(float(os.environ.get("OMP_NUM_THREADS") or 1))))
    context = ray.get_runtime_context()
    started = {
        "event": "ray_task",  # the first event of every try: where it runs
        "attempt": attempt,
        "pid": os.getpid(),
        "node_id": context.get_node_id(),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
    }
    ray.get(mailbox.put.remote(_payload(kind, f"running on Ray (try {attempt})", started)))
    with tempfile.TemporaryDirectory(prefix=f"packshot-ray-{kind}-") as tmp:
        root = Path(tmp).resolve()
        workdir = root / "job"
        # 1. The inputs under their own names, the params pointing at them, and the job's
        #    folder as the driver has it; what an earlier try recorded (a placement's request
        #    names its photo) in this try's paths, so that the job sees the same request.
        #    Paths inside the job's folder that the job records (a catalogue's shots name the
        #    model it trained there) travel as the driver's too.
        params, renames = unpack_inputs(params, inputs, root / "inputs")
        renames[str(workdir)] = home
        back = {original: local for local, original in renames.items()}
        unpack_folder(rename_paths(sent, back), workdir)

        def forward(event: ProgressEvent) -> None:
            payload = outgoing(relative_event(event, workdir), workdir, sent, renames)
            if "files" in payload:
                ray.get(mailbox.put.remote(payload))  # it has reached the driver's node
            else:
                mailbox.put.remote(payload)

        # 2. The job, exactly as the local worker runs it (it resumes from what it finds).
        record = kind_of(kind).load_params(params)
        with hub_models_only() if hub_only else contextlib.nullcontext():
            result = run_job(kind, record, workdir, forward, lambda: False)
        ray.get(mailbox.put.remote(_payload(kind, "", {"event": "ray_flush"})))
        return {"result": to_json(result), "files": rename_paths(pack_folder(workdir), renames)}


def _payload(stage: str, message: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"stage": stage, "done": 0, "total": None, "message": message, "data": data}


# -- the driver's loop -------------------------------------------------------------------------


def is_worker_loss(error: BaseException) -> bool:
    """Whether `error` says the task's worker (or its node) was lost, not that the job failed."""
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
    should_cancel: Callable[[], bool],
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
        if not ready and should_cancel():
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


def with_retries(
    kind: str,
    max_attempts: int,
    attempt_once: Callable[[int], Any],
    progress: ProgressCallback,
    note: Callable[[], dict[str, Any]],
) -> Any:
    """`attempt_once(attempt)` until it returns: a lost worker means another try (announced
    with a `retry` event carrying `note()`), the job's own failure or a bug is raised as is."""
    ray = _ray()
    last: BaseException | None = None
    for attempt in range(1, max_attempts + 1):
        try:
            return attempt_once(attempt)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, PackshotError):
                raise cause from None  # the job's own failure: bad input, NaN twice, ...
            if isinstance(cause, BaseException) and not is_worker_loss(cause):
                raise cause from None  # a bug: the same error on every try
            last = error
        except ray.exceptions.RayError as error:
            if not is_worker_loss(error):
                raise
            last = error
        if attempt < max_attempts:
            progress(
                ProgressEvent(
                    kind,
                    0,
                    None,
                    f"the worker was lost ({type(last).__name__}); trying again",
                    {"event": "retry", "attempt": attempt + 1, "reason": str(last)[:300], **note()},
                )
            )
    raise WorkersLost(
        f"The {kind} job's Ray worker died on all {max_attempts} tries (last: "
        f"{type(last).__name__}: {str(last)[:200]}). Check the workers' logs (`ray logs`) for "
        f"out-of-memory kills, or raise {ENV_MAX_ATTEMPTS}."
    )


def run_on_ray(
    kind: str,
    params: Any,
    workdir: Path | str,
    progress: ProgressCallback,
    should_cancel: Callable[[], bool],
    *,
    settings: RaySettings | None = None,
) -> Any:
    """`run_job` as a Ray task, with the seam's promises (events, cancel, resume, results).

    The files the params name (photos, the product model) travel to the worker; the job's
    folder travels both ways: to the worker as the driver has it (so a try resumes from what
    was delivered), and back piece by piece while it runs (checkpoints, samples, shots), then
    whole when it is done.
    """
    job_kind = kind_of(kind)
    settings = settings or RaySettings()
    workdir = Path(workdir).resolve()
    before = finished_result(kind, workdir)
    if before is not None:  # finished before: the runner lost the news
        return before
    if should_cancel():
        raise JobCanceled(f"{kind} job canceled")
    if job_kind.fans_out and len(getattr(params, job_kind.fans_out)) > 1:
        return fan_out(kind, params, workdir, progress, should_cancel, settings=settings)
    if job_kind.seeded and params.seed is None:
        # The random first seed `run_job` keeps in the folder, chosen here, where the folder
        # lives: every try (and a resumed local run) must plan the same images.
        job_seed(workdir)

    # 1. The params' files into the object store, once for every try.
    ray = _ray()
    connect(settings)
    params_json = to_json(params)
    inputs_ref = ray.put(pack_inputs(params_json, workdir, job_kind.product_models))
    mailbox = _mailbox()
    hub_only = not folders_allowed()  # models named by a merchant: on the worker too
    task = ray.remote(_job_task).options(
        num_gpus=gpus_for(kind, settings),
        num_cpus=settings.task_cpus,
        max_retries=0,  # the driver retries, with what the job's folder holds
    )
    held: list[ProgressEvent] = []

    # 2. What arrives goes where a local run writes it; `done` is told once the folder is.
    def on_event(payload: dict[str, Any]) -> None:
        if payload["data"].get("event") == "ray_flush":
            return
        event = deliver(payload, workdir)
        if event.data.get("event") == "done":
            held.append(event)
        else:
            progress(event)

    def attempt_once(attempt: int) -> Any:
        sent = workdir_files(workdir)
        ref = task.remote(
            kind, params_json, inputs_ref, sent, mailbox, attempt, str(workdir), hub_only
        )
        return _drive(ref, mailbox, on_event, should_cancel, settings.poll_s)

    try:
        value = with_retries(
            kind, settings.max_attempts, attempt_once, progress, lambda: retry_note(workdir)
        )
    finally:
        ray.kill(mailbox)

    # 3. The finished folder, as the worker left it.
    finish_folder(value["files"], workdir)
    for event in held:
        progress(event)
    return job_kind.load_result(value["result"])


# -- fanning out: a job whose items (a catalogue's products) run as jobs of their own ------------

PARTS_DIR = "parts"  # inside the job's folder: one job folder per item while it runs


def fan_out(
    kind: str,
    params: Any,
    workdir: Path,
    progress: ProgressCallback,
    should_cancel: Callable[[], bool],
    *,
    settings: RaySettings,
) -> Any:
    """A job of a kind that `fans_out`: each item of its list (a catalogue's products) runs as
    a job of the same kind on its own worker (`run_on_ray`, with its retries), all at once; as
    each ends, the folders it wrote join the job's folder, so that a run cut short starts only
    the items not merged yet. The job itself then runs here over the merged folder, where every
    item is finished: it only writes the summary (no model work)."""
    job_kind = kind_of(kind)
    if job_kind.seeded and params.seed is None:
        params = replace(params, seed=job_seed(workdir))  # every part plans the same images
    items = getattr(params, job_kind.fans_out or "")
    out = workdir / job_kind.out_dir
    parts = workdir / PARTS_DIR
    lock = threading.Lock()

    def relay(event: ProgressEvent) -> None:
        with lock:  # one part's events at a time
            progress(event)

    def run_part(number: int, item: Any) -> None:
        folder = parts / f"{number:04d}"
        whole = {name: type(getattr(params, name))() for name in job_kind.whole_job}
        one = replace(params, **{job_kind.fans_out or "": [item]}, **whole)
        run_on_ray(kind, one, folder, relay, should_cancel, settings=settings)
        with lock:
            out.mkdir(parents=True, exist_ok=True)
            moved = folder / job_kind.out_dir
            for child in sorted(moved.iterdir()):
                if child.is_dir():  # the item's own folders; its summary is the whole job's
                    target = out / child.name
                    if target.exists():
                        shutil.rmtree(target)
                    os.replace(child, target)
                    for path in target.rglob("*.json"):  # paths it recorded: where it is now
                        renamed = rename_paths(
                            {"f.json": path.read_bytes()}, {str(moved): str(out)}
                        )
                        write_atomic(path, renamed["f.json"])
            shutil.rmtree(folder)
            (parts / f"{number:04d}.merged").touch()

    todo = [
        (number, item)
        for number, item in enumerate(items)
        if not (parts / f"{number:04d}.merged").is_file()
    ]
    parts.mkdir(parents=True, exist_ok=True)
    connect(settings)
    errors: list[BaseException] = []
    if todo:
        with ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="packshot-part") as pool:
            for future in [pool.submit(run_part, number, item) for number, item in todo]:
                error = future.exception()
                if error is not None:
                    errors.append(error)
    if errors:  # a part that could not finish (canceled, workers lost, a bug): the job's error
        raise next((e for e in errors if isinstance(e, JobCanceled)), errors[0])
    result = run_job(kind, params, workdir, progress, should_cancel)
    shutil.rmtree(parts)
    return result
