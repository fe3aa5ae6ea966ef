"""Training checkpoints that survive kill -9: written to `step-XXXXXX.tmp`, renamed when complete.

A checkpoint folder holds the LoRA weights of every trained model, the optimizer and
lr-scheduler states, the random states and a `state.json`; only folders named `step-XXXXXX`
(without `.tmp`) that have a `state.json` count, so a half-written one is never resumed from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

_NAME = re.compile(r"^step-(\d{6,})$")
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk."""

    path: Path
    step: int

    def state(self) -> dict[str, Any]:
        return json.loads((self.path / STATE_FILE).read_text(encoding="utf-8"))

    def lora(self, name: str) -> dict[str, torch.Tensor]:
        return load_file(str(self.path / f"{name}.safetensors"))

    def torch_state(self, name: str) -> Any:
        # weights_only: optimizer/scheduler/RNG states are tensors and plain containers only
        return torch.load(self.path / f"{name}.pt", map_location="cpu", weights_only=True)


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def save_checkpoint(
    checkpoints_dir: Path,
    step: int,
    loras: dict[str, dict[str, torch.Tensor]],
    torch_states: dict[str, Any],
    state: dict[str, Any],
) -> Checkpoint:
    """Write one checkpoint atomically: everything into `.tmp`, `state.json` last, then rename."""
    final = checkpoints_dir / checkpoint_name(step)
    tmp = checkpoints_dir / f"{checkpoint_name(step)}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, tensors in loras.items():
        save_file(tensors, str(tmp / f"{name}.safetensors"))
    for name, obj in torch_states.items():
        torch.save(obj, tmp / f"{name}.pt")
    (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=2), encoding="utf-8")
    _fsync_dir(tmp)
    if final.exists():  # the same step again after a roll-back: the new one replaces it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(checkpoints_dir)
    return Checkpoint(final, step)


def list_checkpoints(checkpoints_dir: Path) -> list[Checkpoint]:
    """The complete checkpoints, oldest first."""
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for path in checkpoints_dir.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append(Checkpoint(path, int(match.group(1))))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(checkpoints_dir: Path) -> Checkpoint | None:
    found = list_checkpoints(checkpoints_dir)
    return found[-1] if found else None


def prune_checkpoints(checkpoints_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints, and any leftover `.tmp` folders."""
    removed = []
    for checkpoint in list_checkpoints(checkpoints_dir)[:-keep]:
        shutil.rmtree(checkpoint.path)
        removed.append(checkpoint.path)
    if checkpoints_dir.is_dir():
        for path in checkpoints_dir.glob("*.tmp"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories can't be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
