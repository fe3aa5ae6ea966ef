"""Test support for training runs: a run in another process, killed with SIGKILL as soon as
its first checkpoint is complete (what a crash or an out-of-memory kill leaves behind); a run
that fails on NaNs after its roll-back, then resumed; a tiny pipeline's images, with or
without the LoRA."""

from __future__ import annotations

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

from packshot.artifacts.product_model import ProductModel, work_dir_for
from packshot.errors import PackshotError
from packshot.progress import ProgressEvent
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
