"""Runners: what takes jobs off the queue in the database and runs them (`run_job`) somewhere.

A runner has one job: drain the queue. `start()` begins taking jobs (and returns at once),
`stop()` ends that, `alive()` says whether it is still taking them. What a runner must do
with each job is in `packshot.jobs.execute` (events, cancel, resume); the store functions it
uses for that are in `packshot.jobs.store`:

    job = store.claim_next(session, worker_id)        # queued → running, or None
    store.add_event(session, job.id, event_json)       # each progress event (relative paths)
    store.cancel_requested(session, job.id)            # for should_cancel(), at most 1/s
    store.heartbeat(session, job.id, worker_id)        # at least every 30 s while it runs
    store.finish(session, job.id, result)              # succeeded
    store.fail(session, job.id, code, message)         # failed (PackshotError: its message)
    store.mark_canceled(session, job.id)               # after JobCanceled
    store.requeue_running(session, runner=name)        # on start: jobs a dead worker held

The workdir of a job is `store.job_dir(data_dir, job)`; a runner on another machine ships
it there and back. Runners are chosen by name (`PACKSHOT_RUNNER`, default "local"):
`register_runner("ray", factory)` adds one, exactly as the built-in local one is added.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

from packshot.errors import UsageError
from packshot.jobs.settings import ServiceSettings

log = logging.getLogger("packshot.jobs")


class Runner(Protocol):
    """Takes jobs from the database queue and runs them; one per `packshot serve`."""

    name: str

    def start(self) -> None:
        """Begin taking jobs (in a thread, a process or a cluster); return at once."""

    def stop(self) -> None:
        """Stop taking jobs; a job cut short is resumed by the next start."""

    def alive(self) -> bool:
        """Whether jobs are being taken right now."""


RunnerFactory = Callable[[ServiceSettings], Runner]
_RUNNERS: dict[str, RunnerFactory] = {}


def register_runner(name: str, factory: RunnerFactory) -> None:
    """Make a runner selectable by name (`PACKSHOT_RUNNER=name`)."""
    _RUNNERS[name] = factory


def _ray_runner(settings: ServiceSettings) -> Runner:
    try:  # Ray is an optional extra: loaded only when asked for
        from packshot.jobs.ray.runner import RayRunner
    except ImportError as exc:
        raise UsageError(
            f"PACKSHOT_RUNNER=ray, but the Ray runner can't be loaded ({exc}). Install "
            "packshot with Ray support, or use PACKSHOT_RUNNER=local."
        ) from None
    return RayRunner(settings)


def make_runner(settings: ServiceSettings) -> Runner:
    """The runner `settings.runner` names."""
    if settings.runner not in _RUNNERS:
        raise UsageError(
            f"unknown runner {settings.runner!r} (PACKSHOT_RUNNER); choose "
            + " or ".join(sorted(_RUNNERS))
        )
    return _RUNNERS[settings.runner](settings)


class LocalRunner:
    """The default: one worker process on this machine that owns the GPU.

    The worker (`python -m packshot.jobs.worker`) is a separate process so that a crash or an
    out-of-memory kill there never takes the web server down; this runner starts it again
    (after 1 s, doubling to 30 s while it keeps dying) and the job it held is resumed.
    """

    name = "local"

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "packshot.jobs.worker", "--data", str(self.settings.data_dir)]

    def spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.update(self.settings.environ())
        return subprocess.Popen(self.command(), env=env, preexec_fn=_die_with_parent)

    def start(self) -> None:
        self._stopping.clear()
        self.process = self.spawn()
        self._thread = threading.Thread(target=self._watch, name="worker-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            process = self.process
            if process is not None and process.poll() is not None:
                log.warning(
                    "worker process exited with %s; starting it again in %.0f s",
                    process.returncode,
                    delay,
                )
                if self._stopping.wait(delay):
                    return
                started = time.monotonic()
                self.process = self.spawn()
                self.restarts += 1
                delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 30.0)
            self._stopping.wait(0.5)

    def stop(self) -> None:
        self._stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _die_with_parent() -> None:
    """In the worker, before it starts: killed when `packshot serve` dies, however it dies.

    Otherwise a server killed with SIGKILL would leave its worker running, and the next
    server's worker would run the same job beside it.
    """
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1  # noqa: N806 - prctl's name
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


register_runner("local", LocalRunner)
register_runner("ray", _ray_runner)
