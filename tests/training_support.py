"""Test support for training runs: a run in another process, killed with SIGKILL as soon as
its first checkpoint is complete (what a crash or an out-of-memory kill leaves behind); a run
that fails on NaNs after its roll-back, then resumed; a tiny pipeline's images, with or
without the LoRA; a product model's shots through the eager and the fast pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from packshot.artifacts.product_model import ProductModel, work_dir_for
from packshot.errors import PackshotError
from packshot.progress import ProgressEvent
from packshot.shoot import ShootRequest, shoot
from packshot.train import TrainConfig, train
from packshot.train.checkpoints import Checkpoint, latest_checkpoint

FailedAndResumed = tuple[ProductModel, list[ProgressEvent], list[ProgressEvent]]


def product_model_config(**overrides: object) -> TrainConfig:
    """The training of the session's product model (conftest's `product_model`): the tiny
    model on the bundled backpack, 64 px, 4 steps; `overrides` change fields."""
    values: dict[str, object] = {
        "model": "tiny",
        "class_word": "backpack",
        "product": "red backpack",
        "resolution": 64,
        "max_train_steps": 4,
        "learning_rate": 1e-2,  # large, so that 4 steps move the LoRA visibly on a random model
        "checkpointing_steps": 0,
        "sample_at_end": False,
    }
    return TrainConfig(**{**values, **overrides})


_TRAIN_SCRIPT = """
import sys
from pathlib import Path
from packshot.train import TrainConfig, train
config = TrainConfig.model_validate_json(sys.argv[1])
train(config, Path(sys.argv[2]), Path(sys.argv[3]), cache_dir=Path(sys.argv[4]))
"""


def kill_at_first_checkpoint(
    config: TrainConfig, photos: Path, out: Path, cache_dir: Path, *, within_s: float = 180
) -> Checkpoint:
    """Start `train(config, photos, out)` in another process, kill -9 it once a checkpoint is
    complete, check it left no model folder; return the latest checkpoint."""
    checkpoints = work_dir_for(out) / "checkpoints"
    proc = subprocess.Popen(
        [sys.executable, "-c", _TRAIN_SCRIPT, config.model_dump_json()]
        + [str(photos), str(out), str(cache_dir)],
        env={**os.environ, "PACKSHOT_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + within_s
    while latest_checkpoint(checkpoints) is None:
        if proc.poll() is not None:
            pytest.fail(f"training ended before its first checkpoint: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"no checkpoint within {within_s:.0f} s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not out.exists(), "a killed run must not leave a model folder"
    killed_at = latest_checkpoint(checkpoints)
    assert killed_at is not None and killed_at.step < config.max_train_steps
    return killed_at


def nan_twice_config(model: str, **overrides: object) -> TrainConfig:
    """A tiny flow-matching model's 4-step run at 64 px with a checkpoint every 2 steps, whose
    loss is NaN twice at step 3: rolled back to step 2 once, then the run gives up
    (`fail_then_resume`). No min-SNR weights or offset noise: the flow examples use neither."""
    values: dict[str, object] = {
        "model": model,
        "class_word": "backpack",
        "resolution": 64,
        "max_train_steps": 4,
        "learning_rate": 1e-2,  # large, so that 4 steps move the LoRA visibly on a random model
        "rank": 4,
        "checkpointing_steps": 2,
        "validation_inference_steps": 2,
        "validation_seeds": [0],
        "snr_gamma": None,
        "noise_offset": 0.0,
        "debug_nan_at_step": 3,
        "debug_nan_times": 2,
    }
    return TrainConfig(**{**values, **overrides})


def fail_then_resume(
    config: TrainConfig, photos: Path, out: Path, cache_dir: Path
) -> FailedAndResumed:
    """`train(config)`, whose loss is NaN at `config.debug_nan_at_step` more often than one
    roll-back forgives: it must fail, its last checkpoint the one before that step; then the
    same run resumed without the NaNs. (The model, the failed run's events, the resumed's.)"""
    failed: list[ProgressEvent] = []
    with pytest.raises(PackshotError, match="again after rolling back"):
        train(config, photos, out, progress=failed.append, cache_dir=cache_dir)
    checkpoint = latest_checkpoint(work_dir_for(out) / "checkpoints")
    assert checkpoint is not None and checkpoint.step < (config.debug_nan_at_step or 0)
    resumed: list[ProgressEvent] = []
    config = config.model_copy(update={"debug_nan_at_step": None})  # not part of its identity
    result = train(config, photos, out, resume=True, progress=resumed.append, cache_dir=cache_dir)
    return result, failed, resumed


def lora_images(
    pipe: Any, prompt: str = "a photo of sks backpack", size: tuple[int, int] = (64, 64)
) -> np.ndarray:
    """A tiny pipeline's image of `prompt` at `size` (width, height) in 2 steps from seed 0,
    as numbers: the same call with and without a LoRA tells whether the LoRA changes what it
    draws."""
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        prompt=prompt,
        width=size[0],
        height=size[1],
        num_inference_steps=2,
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="np",
    ).images


def fast_against_eager(
    model_dir: Path, out: Path, cache_dir: Path
) -> tuple[int, list[str], list[str]]:
    """Two shots of the product model in `model_dir`, eager and through the fast pipeline
    (`models.speed`; asked with fp8, which a CPU switches off with a warning: the LoRA merged
    into the weights, QKV fused): the largest pixel difference between them, the fast shoot's
    warnings and the levers its sidecar says were in effect."""

    def run(name: str, **levers: bool) -> tuple[np.ndarray, list[str], list[str]]:
        request = ShootRequest(
            model_dir, ["{product} on a desk"], count=2, num_inference_steps=2, seed=4
        )
        for key, value in levers.items():
            setattr(request, key, value)
        shot = shoot(request, out / name, cache_dir=cache_dir)
        pixels = np.stack([np.asarray(Image.open(s.path), dtype=np.int16) for s in shot.shots])
        return pixels, shot.warnings, json.loads(shot.shots[0].sidecar.read_text())["speed"]

    eager, _, _ = run("eager")
    fast, warnings, levers = run("fast", fp8=True)
    return int(np.abs(fast - eager).max()), warnings, levers
