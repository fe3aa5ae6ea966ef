"""The studio's jobs on a Ray cluster (`PACKSHOT_RUNNER=ray`): the API node drains the queue
and drives each job with the one Ray driver (`driver.run_on_ray`)."""

from __future__ import annotations

import functools
import os
import socket
import threading
from pathlib import Path
from typing import Any

from packshot.jobs import store
from packshot.jobs.ray.driver import RaySettings, _ray, connect, gpus_for, run_on_ray
from packshot.jobs.settings import ServiceSettings
from packshot.jobs.worker import KEEP_ALWAYS, drive_job


class RayRunner:
    """A thread takes queued jobs from the database while the cluster has room for them (one
    per GPU, or per task CPUs on a CPU-only cluster) and drives each one with `run_on_ray`:
    events into the job store, cancel within a second, a dead worker's job tried again from
    what reached this node. Jobs this runner held when the API node stopped are queued again
    on the next start and resume.
    """

    name = "ray"

    def __init__(self, settings: ServiceSettings, ray_settings: RaySettings | None = None):
        self.settings = settings
        self.ray_settings = ray_settings or RaySettings.from_env()
        self.worker_id = f"ray:{socket.gethostname()}:{os.getpid()}"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs: dict[str, threading.Thread] = {}
        self.db: Any = None

    def capacity(self) -> int:
        total = _ray().cluster_resources()
        if gpus_for("training", self.ray_settings) > 0:
            return max(1, int(total.get("GPU", 0)))
        return max(1, int(total.get("CPU", 1) // max(self.ray_settings.task_cpus, 1)))

    def start(self) -> None:
        connect(self.ray_settings)
        self.db = store.Database(self.settings.database_url)
        with self.db.session() as session:
            store.requeue_running(session, runner=self.name)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._dispatch, name="ray-dispatch", daemon=True)
        self._thread.start()

    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            self._jobs = {k: t for k, t in self._jobs.items() if t.is_alive()}
            job = None
            if len(self._jobs) < self.capacity():
                with self.db.session() as session:
                    job = store.claim_next(
                        session,
                        self.worker_id,
                        runner=self.name,
                        max_running=self.settings.max_running_jobs,
                    )
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
        execute = functools.partial(run_on_ray, settings=self.ray_settings)
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
