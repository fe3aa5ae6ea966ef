"""Benchmark: makespan of 8 tiny training jobs on a local Ray with 1 and 2 workers, and the
dispatch overhead per job against the local runner.

The jobs are real `packshot train` runs of the tiny SD 1.5 stand-in on the bundled sample
product (64 px, `--steps` steps, a checkpoint every half), training jobs each driven by
`run_on_ray` from its own thread as the studio's Ray runner drives them. A local Ray is started with
`num_cpus` 1, then 2 (each task asks for 1 CPU, so that is 1 or 2 jobs at a time); one
warm-up job per worker runs first, so the makespan counts jobs, not Python imports.

Dispatch overhead per job, two ways: (wall time of one job on Ray, alone) - (the time `train`
itself took on the worker, from the model's timings): the scheduling, the photos and the model
folder through the object store, the events and checkpoints through the mailbox; and (wall
time on Ray) - (the same job with the local runner in this process), which also counts the
difference between the two processes (threads, warm caches). On a busy machine both are noisy:
run it on an idle one.

    .venv/bin/python benchmarks/ray_scale.py                 # 8 jobs of 20 steps
    .venv/bin/python benchmarks/ray_scale.py --jobs 4 --steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _params(steps: int, seed: int, training_set: Path) -> Any:
    from packshot.jobs.kinds import TrainingParams

    return TrainingParams(
        photos_dir=str(training_set),
        model="tiny",
        class_word="backpack",
        preset="quick",
        resolution=64,
        max_train_steps=steps,
        checkpointing_steps=max(1, steps // 2),
        validation_steps=0,
        learning_rate=1e-3,
        seed=seed,
    )


def _train(params: Any, workdir: Path, settings: Any = None) -> Any:
    """One training job: on Ray with `settings`, else with the local runner's `run_job`."""
    from packshot.jobs.execute import run_job
    from packshot.jobs.ray.driver import run_on_ray

    if settings is None:
        return run_job("training", params, workdir, lambda e: None, lambda: False)
    return run_on_ray("training", params, workdir, lambda e: None, lambda: False, settings=settings)


def _ray_round(
    workers: int, jobs: int, steps: int, training_set: Path, root: Path
) -> dict[str, Any]:
    import ray

    from packshot.jobs.ray.driver import ENV_TRAIN_GPUS, RaySettings

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    settings = RaySettings(gpus={ENV_TRAIN_GPUS: 0}, task_cpus=1)
    try:
        # Warm-up: one job per worker process (imports torch, diffusers, builds nothing).
        warm = [
            threading.Thread(
                target=_train,
                args=(_params(2, 0, training_set), root / f"warm-{workers}-{i}", settings),
            )
            for i in range(workers)
        ]
        for thread in warm:
            thread.start()
        for thread in warm:
            thread.join()

        # One job alone: its wall time, for the overhead.
        started = time.perf_counter()
        alone = _train(_params(steps, 1, training_set), root / f"alone-{workers}", settings)
        alone_s = time.perf_counter() - started

        # The batch: all jobs submitted at once.
        walls: list[float] = []
        errors: list[str] = []

        def one(i: int) -> None:
            t0 = time.perf_counter()
            try:
                _train(_params(steps, 100 + i, training_set), root / f"job-{workers}-{i}", settings)
            except Exception as exc:  # reported, not hidden
                errors.append(f"job {i}: {type(exc).__name__}: {exc}")
            walls.append(time.perf_counter() - t0)

        started = time.perf_counter()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        makespan = time.perf_counter() - started
    finally:
        ray.shutdown()
    return {
        "workers": workers,
        "jobs": jobs,
        "makespan_s": round(makespan, 2),
        "jobs_per_minute": round(jobs / makespan * 60, 2),
        "job_wall_s_median": round(statistics.median(walls), 2),
        "one_job_alone_s": round(alone_s, 2),
        "one_job_train_s_on_worker": alone.timings.get("total_s"),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)  # as each Ray task (1 CPU) does
    from packshot.intake import check_photos, prepare_training_set
    from packshot.models.load import resolve_model

    root = Path(tempfile.mkdtemp(prefix="packshot-ray-bench-"))
    try:
        resolve_model("tiny")  # built once into the cache, before any timing
        training_set = root / "set"
        report = check_photos(REPO / "examples" / "backpack")
        prepare_training_set(
            report, training_set, resolution=64, token="sks", class_word="backpack"
        )

        # 1. The local runner: the same job in this process (after one warm-up run).
        _train(_params(2, 0, training_set), root / "local-warm")
        local = []
        for i in range(2):
            started = time.perf_counter()
            _train(_params(args.steps, 1, training_set), root / f"local-{i}")
            local.append(time.perf_counter() - started)
        local_s = statistics.median(local)
        print(f"local runner: {local_s:.2f} s per job ({args.steps} steps)")

        # 2. Ray with 1 and 2 workers.
        rounds = []
        for workers in (1, 2):
            result = _ray_round(workers, args.jobs, args.steps, training_set, root)
            result["dispatch_overhead_s_per_job"] = round(
                result["one_job_alone_s"] - result["one_job_train_s_on_worker"], 2
            )
            result["wall_vs_local_runner_s"] = round(result["one_job_alone_s"] - local_s, 2)
            rounds.append(result)
            print(
                f"ray, {workers} worker(s): makespan {result['makespan_s']:.1f} s for "
                f"{args.jobs} jobs ({result['jobs_per_minute']:.1f} jobs/min); one job alone "
                f"{result['one_job_alone_s']:.2f} s of which {result['one_job_train_s_on_worker']}"
                f" s in train: dispatch overhead {result['dispatch_overhead_s_per_job']:.2f} s; "
                f"{result['wall_vs_local_runner_s']:+.2f} s against the local runner"
                + (f"; ERRORS: {result['errors']}" if result["errors"] else "")
            )
        speedup = rounds[0]["makespan_s"] / rounds[1]["makespan_s"]
        print(f"2 workers vs 1: {speedup:.2f}x")
        summary = {
            "benchmark": "ray_scale",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "jobs": args.jobs,
            "steps": args.steps,
            "local_runner_s_per_job": round(local_s, 2),
            "rounds": rounds,
            "speedup_2_vs_1": round(speedup, 2),
        }
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
