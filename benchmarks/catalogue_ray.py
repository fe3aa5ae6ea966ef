"""Benchmark: a catalogue shoot of 8 products fanned out over a local Ray with 1 and 2 workers.

Each product is a real catalogue product: its photos (the bundled backpack's, made small)
judged by intake, a tiny SD 1.5 stand-in model trained on them (`--train-steps` steps, 64 px),
then a shot list of 3 shots of one image each, judged by the tiny judges. The catalogue job
is `run_on_ray("catalogue", …)`, the CLI's `--runner ray`: every product a job of its own on a
worker, all submitted at once, the summary written here at the end. A local Ray is started with
`num_cpus` 1, then 2 (each task asks for 1 CPU: 1 or 2 products at a time); one warm-up
catalogue of one product per worker runs first, so that the makespan counts products, not
Python imports.

The machine's load average is printed before and after each round: on a machine others use,
the two rounds compete with them differently, and the ratio says little. Run it on an idle one.

    .venv/bin/python benchmarks/catalogue_ray.py                  # 8 products, 8 steps
    .venv/bin/python benchmarks/catalogue_ray.py --products 4 --train-steps 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHOTS = {
    "shots": [
        {"slot": "main", "preset": "studio"},
        {"slot": "additional", "description": "{product} on a grey table", "aspect": "4:5"},
        {"slot": "lifestyle", "preset": "lifestyle", "description": "{product} in a park"},
    ]
}


def _catalogue(root: Path, count: int, prefix: str) -> Path:
    """`count` product folders, each with the backpack's photos made small (320 px)."""
    folder = root / f"catalogue-{prefix}"
    for number in range(count):
        product = folder / f"{prefix}-backpack-{number}"
        product.mkdir(parents=True)
        for photo in sorted((REPO / "examples" / "backpack").glob("*.jpg")):
            with Image.open(photo) as image:
                image.thumbnail((320, 320))
                image.convert("RGB").save(product / photo.name, quality=90)
        (product / "product.json").write_text(
            json.dumps({"name": f"Backpack {number}", "class": "backpack"})
        )
    return folder


def _params(catalogue: Path, train_steps: int) -> Any:
    from packshot.artifacts.catalogue import read_catalogue
    from packshot.jobs.kinds import CatalogueParams
    from packshot.shoot.shotlist import ShotList

    return CatalogueParams(
        products=read_catalogue(catalogue),
        shots=list(ShotList.from_dict(SHOTS).shots),
        model="tiny",
        preset="quick",
        max_train_steps=train_steps,
        num_inference_steps=2,
        seed=0,
    )


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def _round(workers: int, products: int, train_steps: int, root: Path) -> dict[str, Any]:
    import ray

    from packshot.jobs.ray.driver import ENV_TRAIN_GPUS, RaySettings, run_on_ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    settings = RaySettings(gpus={ENV_TRAIN_GPUS: 0}, task_cpus=1)

    def run(catalogue: Path, out: Path) -> Any:
        params = _params(catalogue, train_steps)
        return run_on_ray(
            "catalogue", params, out, lambda e: None, lambda: False, settings=settings
        )

    try:
        # Warm-up: one product per worker process (imports torch and diffusers once each).
        run(_catalogue(root, workers, f"warm{workers}"), root / f"warm-out-{workers}")
        load_before = _load()
        started = time.perf_counter()
        summary = run(_catalogue(root, products, f"w{workers}"), root / f"out-{workers}")
        makespan = time.perf_counter() - started
        load_after = _load()
    finally:
        ray.shutdown()
    return {
        "workers": workers,
        "products": products,
        "makespan_s": round(makespan, 2),
        "products_per_minute": round(products / makespan * 60, 2),
        "done": sum(p.status == "done" for p in summary.products),
        "images": len(summary.images),
        "load_before": load_before,
        "load_after": load_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="Also write the figures as JSON.")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)  # as each Ray task (1 CPU) does
    from packshot.models.load import resolve_model

    root = Path(tempfile.mkdtemp(prefix="packshot-catalogue-bench-"))
    try:
        resolve_model("tiny")  # built once into the cache, before any timing
        rounds = []
        for workers in (1, 2):
            result = _round(workers, args.products, args.train_steps, root)
            rounds.append(result)
            print(
                f"ray, {workers} worker(s): {args.products} products "
                f"({result['done']} done, {result['images']} images) in "
                f"{result['makespan_s']:.1f} s ({result['products_per_minute']:.1f} products/min)"
                f"; before: {result['load_before']}; after: {result['load_after']}"
            )
        speedup = rounds[0]["makespan_s"] / rounds[1]["makespan_s"]
        print(f"2 workers vs 1: {speedup:.2f}x faster")
        if args.out is not None:
            summary = {
                "benchmark": "catalogue_ray",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "train_steps": args.train_steps,
                "rounds": rounds,
                "speedup_2_vs_1": round(speedup, 2),
            }
            args.out.write_text(json.dumps(summary, indent=2) + "\n")
            print(f"wrote {args.out}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
