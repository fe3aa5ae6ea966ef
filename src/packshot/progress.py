"""Progress reporting: core functions take a `progress` callback and call it with events.

Core code never prints; the CLI turns events into progress bars, the service into job events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long piece of work: `done` of `total` units of `stage`."""

    stage: str  # e.g. "intake", "train", "shoot"
    done: int
    total: int | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # e.g. {"loss": 0.12}


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """The default callback: ignore progress."""
