"""The local worker process: the one process that owns the GPU and runs the jobs.

`python -m packshot.jobs.worker --data DIR` (started by `packshot serve`): takes the oldest
queued job from the database, runs it with `run_job` in its folder, stores its events and
its result, and takes the next. A job it was running when it died is queued again when it
starts (the local runner has exactly one worker per database), and resumes from its folder.
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packshot.errors import PackshotError, SetupError
from packshot.jobs import store
from packshot.jobs.execute import JobCanceled, relative_event, run_job
from packshot.jobs.failures import merchant_message
from packshot.jobs.kinds import kind_of
from packshot.jobs.settings import ServiceSettings
from packshot.models.names import hub_models_only
from packshot.progress import ProgressEvent

log = logging.getLogger("packshot.worker")

POLL_S = 0.5  # how often an idle worker looks at the queue
CANCEL_POLL_S = 1.0  # how often a running job asks whether it was canceled
HEARTBEAT_S = 10.0
STEP_EVENT_INTERVAL_S = 0.25  # step/shot events faster than this are not all stored
KEEP_ALWAYS = {
    "start",
    "checkpoint",
    "sample",
    "resume",
    "done",
    "failed",
    "warning",
    "shot",
    "cutout",  # a placement's stages
    "loading",
    "product",  # a catalogue shoot's product: running, done, failed
}


def drive_job(
    db: store.Database,
    worker_id: str,
    stopping: threading.Event,
    job_id: str,
    kind: str,
    params: dict[str, Any],
    workdir: Path,
    execute: Callable[..., Any],
    *,
    keep: frozenset[str] | set[str] = KEEP_ALWAYS,
) -> None:
    """Run one claimed job with `execute(kind, params, workdir, progress, should_cancel)`
    (`run_job`, or the Ray runner's `run_on_ray`) and `params`, the JSON its row stores, as
    its kind's params record; and store what it does: its events
    (step events at most every STEP_EVENT_INTERVAL_S, the `keep` kinds always), heartbeats,
    cancellation, and its outcome. A job stopped because the runner is shutting down stays
    running in the database, to be resumed on the next start."""
    last = {"event": 0.0, "cancel": 0.0, "beat": time.monotonic()}
    canceled = {"value": False}

    def should_cancel() -> bool:
        clock = time.monotonic()
        if clock - last["cancel"] >= CANCEL_POLL_S:
            last["cancel"] = clock
            with db.session() as session:
                canceled["value"] = store.cancel_requested(session, job_id)
        return canceled["value"] or stopping.is_set()

    def progress(event: ProgressEvent) -> None:
        clock = time.monotonic()
        final = event.total is not None and event.done >= event.total
        notable = event.data.get("event") in keep
        if not notable and not final and clock - last["event"] < STEP_EVENT_INTERVAL_S:
            return
        last["event"] = clock
        stored = relative_event(event, workdir)
        if stored["data"].get("event") == "failed":
            stored["data"].pop("error", None)  # the job's `failed` event says it, for merchants
        with db.session() as session:
            store.add_event(session, job_id, stored)
            if clock - last["beat"] >= HEARTBEAT_S:
                last["beat"] = clock
                store.heartbeat(session, job_id, worker_id)

    try:
        record = kind_of(kind).load_params(params)
        with hub_models_only():  # a merchant named its models: never a folder of this machine
            result = execute(kind, record, workdir, progress, should_cancel)
    except JobCanceled:
        if stopping.is_set() and not canceled["value"]:
            return  # shutting down: the job stays running and is resumed on the next start
        with db.session() as session:
            store.mark_canceled(session, job_id)
    except PackshotError as exc:
        if isinstance(exc, SetupError):  # the operator's to fix: the log says how
            log.error("%s job %s can't run on this machine: %s", kind, job_id, exc)
        roots = (workdir, workdir.parent.parent, Path.cwd(), Path.home())  # <data>/jobs/<id>
        with db.session() as session:
            store.fail(session, job_id, "job_failed", merchant_message(kind, exc, roots))
    except Exception as exc:  # a bug: the job fails, the runner goes on
        log.exception("job %s failed with an internal error", job_id)
        with db.session() as session:
            store.fail(
                session,
                job_id,
                "internal_error",
                f"packshot hit an internal error ({type(exc).__name__}); the job can be "
                "started again, and the server log has the details.",
            )
    else:
        with db.session() as session:
            store.finish(session, job_id, result)


class Worker:
    def __init__(self, settings: ServiceSettings, *, poll_s: float = POLL_S):
        self.settings = settings
        self.db = store.Database(settings.database_url)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.poll_s = poll_s
        self.stopping = threading.Event()

    def run_forever(self) -> None:
        with self.db.session() as session:
            requeued = store.requeue_running(session, runner="local")
        if requeued:
            log.info("resuming %d job(s) a previous worker left: %s", len(requeued), requeued)
        while not self.stopping.is_set():
            if not self.run_one():
                self.stopping.wait(self.poll_s)

    def run_one(self) -> bool:
        """Run the next queued job, if any; True when one ran."""
        with self.db.session() as session:
            job = store.claim_next(
                session, self.worker_id, max_running=self.settings.max_running_jobs
            )
            if job is None:
                return False
            job_id, kind, params = job.id, job.kind, dict(job.params)
            workdir = store.job_dir(self.settings.data_dir, job).resolve()
        log.info("running %s job %s (attempt)", kind, job_id)
        execute = functools.partial(run_job, cache_dir=self.settings.cache_dir)
        drive_job(self.db, self.worker_id, self.stopping, job_id, kind, params, workdir, execute)
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    import torch

    # A worker shares its machine with the web server; tiny jobs run best on few threads.
    if os.environ.get("PACKSHOT_WORKER_THREADS"):
        torch.set_num_threads(int(os.environ["PACKSHOT_WORKER_THREADS"]))
    settings = ServiceSettings.from_env(args.data)
    worker = Worker(settings)

    # The model stack every job kind runs on, imported before the queue is read: the first job
    # starts at once (the import takes seconds, done while the web server takes the uploads).
    # Stopped meanwhile, the worker has nothing to finish and leaves at once. What the imports
    # made lives as long as the worker, so it is moved out of the garbage collector's reach:
    # its full passes (after each job frees a model) no longer walk it.
    def leave(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)
    import packshot.models.load  # noqa: F401

    gc.freeze()

    def stop(_signum: int, _frame: Any) -> None:
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run_forever()


if __name__ == "__main__":
    main()
