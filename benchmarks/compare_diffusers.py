"""Benchmark: packshot's LoRA training against diffusers' `train_dreambooth_lora.py`, one run.

Runs the diffusers example script (whose path you pass: it is not part of this repository)
and packshot's training with the same settings on a full-size SD 1.5-architecture model with
random weights (built offline from the configs in `train_step.py`): 512 px, batch 1, rank 4,
fp32, no prior preservation, no checkpoints, no validation images. Each runs twice, for N=2
and N=6 steps, in its own process, interleaved (diffusers 2, packshot 2, diffusers 6,
packshot 6), so that loading and saving drop out: s/step = (t6 - t2) / 4. Peak memory is the
child process's peak RSS (`os.wait4`'s ru_maxrss).

    .venv/bin/python benchmarks/compare_diffusers.py /tmp/diffusers_train_dreambooth_lora.py

packshot runs through its Python API (`packshot.train.train`) with the config that
`packshot train --preset standard --resolution 512 --rank 4 --steps N --checkpoint-every 0`
builds, plus `sample_at_end=False` and `validation_steps=0`: the CLI has no switch for the
sample shots at the end, which would otherwise load the VAE and text encoder again and render.

The diffusers script imports torchvision (only for its image transforms: Resize, CenterCrop,
RandomCrop, ToTensor, Normalize). torchvision is not installed here, and installing it would
replace torch, so the diffusers child gets a minimal stand-in for those five transforms (PIL +
torch), written to a temporary folder and served by a small launcher to the script's own import
only (see LAUNCHER). The script itself is not changed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROMPT_TOKEN, CLASS_WORD = "sks", "backpack"
TARGET_RATIO = {"seconds_per_step": 0.70, "peak_rss_gb": 0.75}

# A stand-in for the part of torchvision that train_dreambooth_lora.py uses, with torchvision's
# semantics (Resize of the shorter side, truncating the longer; CenterCrop's rounding).
TORCHVISION_SHIM = '''
"""Minimal torchvision stand-in (benchmarks/compare_diffusers.py): transforms only."""
'''
TRANSFORMS_SHIM = '''
"""Minimal torchvision.transforms stand-in for train_dreambooth_lora.py (PIL + torch)."""
import enum

import numpy as np
import torch
from PIL import Image


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_PIL = {
    InterpolationMode.NEAREST: Image.NEAREST,
    InterpolationMode.NEAREST_EXACT: Image.NEAREST,
    InterpolationMode.BILINEAR: Image.BILINEAR,
    InterpolationMode.BICUBIC: Image.BICUBIC,
    InterpolationMode.BOX: Image.BOX,
    InterpolationMode.HAMMING: Image.HAMMING,
    InterpolationMode.LANCZOS: Image.LANCZOS,
}


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class Resize:
    def __init__(self, size, interpolation=InterpolationMode.BILINEAR):
        self.size, self.interpolation = size, interpolation

    def __call__(self, img):
        w, h = img.size
        if w <= h:
            new = (self.size, int(self.size * h / w))
        else:
            new = (int(self.size * w / h), self.size)
        return img.resize(new, _PIL[self.interpolation])


class CenterCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, img):
        w, h = img.size
        top, left = int(round((h - self.size) / 2.0)), int(round((w - self.size) / 2.0))
        return img.crop((left, top, left + self.size, top + self.size))


class RandomCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, img):
        w, h = img.size
        top = int(torch.randint(0, h - self.size + 1, (1,)))
        left = int(torch.randint(0, w - self.size + 1, (1,)))
        return img.crop((left, top, left + self.size, top + self.size))


class ToTensor:
    def __call__(self, img):
        array = np.asarray(img, dtype=np.uint8).copy()
        return torch.from_numpy(array).permute(2, 0, 1).float().div(255)


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)

    def __call__(self, x):
        return (x - self.mean[:, None, None]) / self.std[:, None, None]
'''

# Runs the diffusers script with the stand-in visible to the script's own `from torchvision
# import transforms` only: transformers and diffusers probe for torchvision with find_spec, and
# would take a visible stand-in for the real package. The script's module body runs (under
# another name than __main__), then the stand-in leaves sys.modules, then its parse_args() and
# main() run, exactly as its `if __name__ == "__main__"` block does.
LAUNCHER = """
import importlib.abc
import importlib.machinery
import os
import runpy
import sys

SCRIPT, SHIM = os.path.realpath(sys.argv[1]), sys.argv[2]
SKIP = ("importlib/util.py", "importlib/__init__.py")


class ShimFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torchvision" and not name.startswith("torchvision."):
            return None
        frame = sys._getframe(1)
        while frame is not None and (
            frame.f_code.co_filename.startswith("<frozen")
            or frame.f_code.co_filename.endswith(SKIP)
        ):
            frame = frame.f_back
        if frame is None or os.path.realpath(frame.f_code.co_filename) != SCRIPT:
            return None
        return importlib.machinery.PathFinder.find_spec(
            name, [SHIM] if name == "torchvision" else path
        )


# What the script imports before and after torchvision, imported first without the stand-in,
# so that their availability probes run as they would without it.
import peft  # noqa: E402
from transformers import AutoTokenizer, PretrainedConfig  # noqa: E402,F401
import diffusers  # noqa: E402
from diffusers import AutoencoderKL, DDPMScheduler, DiffusionPipeline  # noqa: E402,F401
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline  # noqa: E402,F401
from diffusers import UNet2DConditionModel  # noqa: E402,F401
from diffusers.loaders import StableDiffusionLoraLoaderMixin  # noqa: E402,F401
import diffusers.optimization, diffusers.training_utils  # noqa: E402,E401
import diffusers.utils.hub_utils, diffusers.utils.torch_utils  # noqa: E402,E401

sys.meta_path.insert(0, ShimFinder())
sys.argv = [SCRIPT] + sys.argv[3:]
namespace = runpy.run_path(SCRIPT, run_name="train_dreambooth_lora")
for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
    del sys.modules[name]
module_globals = namespace["main"].__globals__  # run_path returns a copy
module_globals["args"] = module_globals["parse_args"]()  # a module global: the script reads it
module_globals["main"](module_globals["args"])
"""


# --- the model -----------------------------------------------------------------------------


def build_model(out_dir: Path) -> Path:
    """Save a random-weight, full-size SD 1.5-architecture pipeline in diffusers format."""
    sys.path.insert(0, str(HERE))
    from sd15 import save_sd15_pipeline

    return save_sd15_pipeline(out_dir)


# --- the children --------------------------------------------------------------------------


def packshot_child(args: argparse.Namespace) -> None:
    """In a child process: packshot's training run, as `packshot train` would configure it."""
    from packshot.progress import ProgressEvent
    from packshot.train import TrainConfig, train

    config = TrainConfig.from_preset(
        "sd15",
        "standard",
        model=str(args.model),
        class_word=CLASS_WORD,
        token=PROMPT_TOKEN,
        max_train_steps=args.child_steps,
        resolution=args.resolution,
        rank=args.rank,
        seed=0,
        checkpointing_steps=0,
        mixed_precision="no",
        with_prior_preservation=False,
        sample_at_end=False,  # not a CLI option: the reason this goes through the Python API
        validation_steps=0,
    )
    stamps: list[float] = []

    def progress(event: ProgressEvent) -> None:
        if event.stage == "train" and (event.data or {}).get("event") == "step":
            stamps.append(time.perf_counter())
            print(f"PACKSHOT_STEP {event.data['step']}", flush=True)

    result = train(config, args.photos, args.child_out, progress=progress, force=True)
    meta = json.loads((result.model_dir / "packshot.json").read_text())
    print(
        "PACKSHOT_RESULT "
        + json.dumps(
            {
                "step_seconds": [round(b - a, 3) for a, b in zip(stamps, stamps[1:], strict=False)],
                "timings": meta.get("timings"),
                "final_step": result.final_step,
                "config": config.model_dump(mode="json"),
            }
        ),
        flush=True,
    )


def warm_page_cache(*folders: Path) -> float:
    """Read every file under `folders` once, so that the first child does not pay for reading
    the model from disk (4 GB: ~15 s cold here) and the s/step difference stays fair. Returns
    the GB read."""
    total = 0
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 24):
                    total += len(chunk)
    return total / 1e9


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (all processes), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(x) for x in fields]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _rss_gb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        return None
    return None


def run_child(
    cmd: list[str], env: dict[str, str], log: Path, last_step: re.Pattern[str]
) -> dict[str, Any]:
    """Run `cmd`; return its wall time and peak RSS (this child's own, from wait4).

    A thread also samples the child's RSS every 0.1 s and watches its log for `last_step`
    (the last training step done), for the peak over loading + training alone: what comes
    after (saving; diffusers reloads the whole pipeline to load the LoRA into it) is left out.
    """
    watch: dict[str, Any] = {"peak": 0.0, "peak_to_last_step": None, "last_step_s": None}
    busy_before = _busy_cpu_s()
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                rss = _rss_gb(proc.pid)
                if rss is not None:
                    watch["peak"] = max(watch["peak"], rss)
                if watch["last_step_s"] is None and last_step.search(
                    log.read_text(errors="replace")
                ):
                    watch["last_step_s"] = round(time.perf_counter() - start, 2)
                    watch["peak_to_last_step"] = round(watch["peak"], 3)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_gb = usage.ru_maxrss / (1024**3 if sys.platform == "darwin" else 1024**2)
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}); log {log}:\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        # CPU time other processes took while this ran: a quiet machine has ~0
        "other_cpu_s": round(_busy_cpu_s() - busy_before - cpu, 2),
        "peak_rss_gb": round(peak_gb, 3),
        "peak_rss_to_last_step_gb": watch["peak_to_last_step"],
        "last_step_at_s": watch["last_step_s"],
        "log": str(log),
    }


def diffusers_step_seconds(log: Path) -> list[float]:
    """Each step's duration from the diffusers script's tqdm bar (whole seconds: m:ss)."""
    text = log.read_text(errors="replace").replace("\r", "\n")
    elapsed: dict[int, int] = {}
    for done, minutes, seconds in re.findall(r"Steps:[^|]*\|[^|]*\| (\d+)/\d+ \[(\d+):(\d+)", text):
        elapsed.setdefault(int(done), int(minutes) * 60 + int(seconds))
    marks = [elapsed[k] for k in sorted(elapsed)]
    return [float(b - a) for a, b in zip(marks, marks[1:], strict=False)]


def diffusers_cmd(args: argparse.Namespace, steps: int, out: Path) -> list[str]:
    return [
        sys.executable,
        str(args.work / "launch_diffusers.py"),
        str(args.script),
        str(args.work / "shim"),
        "--pretrained_model_name_or_path", str(args.model),
        "--instance_data_dir", str(args.photos),
        "--instance_prompt", f"a photo of {PROMPT_TOKEN} {CLASS_WORD}",
        "--resolution", str(args.resolution),
        "--train_batch_size", "1",
        "--rank", str(args.rank),
        "--mixed_precision", "no",
        "--max_train_steps", str(steps),
        "--checkpointing_steps", "100000",
        "--seed", "0",
        "--output_dir", str(out),
    ]  # fmt: skip


def packshot_cmd(args: argparse.Namespace, steps: int, out: Path) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        str(args.script),
        "--model", str(args.model),
        "--photos", str(args.photos),
        "--resolution", str(args.resolution),
        "--rank", str(args.rank),
        "--child-steps", str(steps),
        "--child-out", str(out),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", type=Path, help="path of diffusers' train_dreambooth_lora.py")
    parser.add_argument("--model", type=Path, default=Path("/tmp/sd15-random"))
    parser.add_argument(
        "--photos", type=Path, default=Path(__file__).resolve().parents[1] / "examples" / "backpack"
    )
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--short", type=int, default=2, help="steps of the short runs")
    parser.add_argument("--long", type=int, default=6, help="steps of the long runs")
    parser.add_argument("--work", type=Path, default=Path("/tmp/packshot-compare"))
    parser.add_argument("--build-model", action="store_true", help="(re)build --model first")
    parser.add_argument("--json", type=Path, default=HERE / "compare_diffusers.json", help="output")
    parser.add_argument("--child-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child_steps is not None:
        packshot_child(args)
        return None

    if not args.script.is_file():
        raise SystemExit(f"No diffusers script at {args.script}")
    if args.build_model or not (args.model / "model_index.json").is_file():
        clock = time.perf_counter()
        print(f"building a random-weight SD 1.5 model into {args.model} …", flush=True)
        build_model(args.model)
        print(f"  {time.perf_counter() - clock:.0f} s", flush=True)

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    shim = args.work / "shim" / "torchvision"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(TORCHVISION_SHIM)
    (shim / "transforms.py").write_text(TRANSFORMS_SHIM)
    (args.work / "launch_diffusers.py").write_text(LAUNCHER)

    base_env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    base_env.pop("OMP_NUM_THREADS", None)  # torch's default threads (all cores) in both
    env = base_env

    print(f"read {warm_page_cache(args.model, args.photos):.1f} GB into the page cache", flush=True)
    runs: dict[str, dict[int, dict[str, Any]]] = {"diffusers": {}, "packshot": {}}
    for steps in (args.short, args.long):
        for name in ("diffusers", "packshot"):
            out = args.work / f"{name}-{steps}"
            cmd = (diffusers_cmd if name == "diffusers" else packshot_cmd)(args, steps, out)
            print(f"{name}, {steps} steps …", flush=True)
            last_step = re.compile(
                rf"Steps: 100%\|[^|]*\| {steps}/{steps} "
                if name == "diffusers"
                else rf"PACKSHOT_STEP {steps}\b"
            )
            result = run_child(cmd, env, args.work / f"{name}-{steps}.log", last_step)
            result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
            if name == "packshot":
                for line in Path(result["log"]).read_text().splitlines():
                    if line.startswith("PACKSHOT_RESULT "):
                        result["packshot"] = json.loads(line.removeprefix("PACKSHOT_RESULT "))
            else:
                result["step_seconds"] = diffusers_step_seconds(Path(result["log"]))
            result["command"] = cmd
            runs[name][steps] = result
            print(
                f"  {result['wall_s']:.1f} s ({result['cpu_s']:.0f} CPU s; other processes "
                f"{result['other_cpu_s']:.0f} CPU s), peak RSS {result['peak_rss_gb']:.2f} GB",
                flush=True,
            )

    span = args.long - args.short
    summary: dict[str, dict[str, float]] = {}
    for name, by_steps in runs.items():
        summary[name] = {
            "seconds_per_step": round(
                (by_steps[args.long]["wall_s"] - by_steps[args.short]["wall_s"]) / span, 3
            ),
            "cpu_seconds_per_step": round(
                (by_steps[args.long]["cpu_s"] - by_steps[args.short]["cpu_s"]) / span, 3
            ),
            # Steps 2..N of the long run, from the child's own clock: loading and whatever else
            # ran on the machine during the other runs stay out of it.
            "median_step_seconds_long_run": _median(
                by_steps[args.long]["packshot"]["step_seconds"]
                if name == "packshot"
                else by_steps[args.long]["step_seconds"][1:]
            ),
            "peak_rss_gb": max(r["peak_rss_gb"] for r in by_steps.values()),
            "peak_rss_to_last_step_gb": max(
                r["peak_rss_to_last_step_gb"] or float("nan") for r in by_steps.values()
            ),
        }
    ratio = {
        k: round(summary["packshot"][k] / summary["diffusers"][k], 3) for k in summary["packshot"]
    }

    import torch

    result = {
        "benchmark": "compare_diffusers",
        "script": str(args.script),
        "model": str(args.model),
        "photos": str(args.photos),
        "resolution": args.resolution,
        "rank": args.rank,
        "batch_size": 1,
        "dtype": "float32",
        "steps": [args.short, args.long],
        "summary": summary,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "runs": {n: {str(k): v for k, v in r.items()} for n, r in runs.items()},
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for name in ("diffusers", "packshot"):
        s = summary[name]
        print(
            f"{name:9s}: {s['seconds_per_step']:.2f} s/step, peak RSS {s['peak_rss_gb']:.2f} GB "
            f"({s['peak_rss_to_last_step_gb']:.2f} GB up to the last step); median step "
            f"{s['median_step_seconds_long_run']:.1f} s in the {args.long}-step run"
        )
    print(
        f"packshot / diffusers: {ratio['seconds_per_step']:.2f}× time, "
        f"{ratio['peak_rss_gb']:.2f}× memory (targets ≤ 0.70×, ≤ 0.75×); "
        f"{ratio['peak_rss_to_last_step_gb']:.2f}× memory up to the last step; "
        f"{ratio['cpu_seconds_per_step']:.2f}× CPU time per step"
    )
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
