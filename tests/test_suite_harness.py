"""The test harness itself: what tests/conftest.py changes in pytest holds."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from _pytest.logging import LogCaptureHandler, catching_logs


class _SlowRegistry(dict):
    """A logger registry whose iteration pauses at its first logger, so that another thread
    can make a logger right then (what a module import in a worker thread does)."""

    iterating = threading.Event()
    made = threading.Event()

    def values(self) -> Iterator[object]:  # type: ignore[override]
        for number, value in enumerate(dict.values(self)):
            if number == 0:
                self.iterating.set()
                self.made.wait(0.5)
            yield value


def test_log_capture_is_safe_against_loggers_made_by_other_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pytest 9.2 iterates the logger registry when a test starts; CI once failed there with
    # "dictionary changed size during iteration" while a studio thread imported a module.
    registry = _SlowRegistry(logging.root.manager.loggerDict)
    registry["packshot.tests.first"] = logging.Logger("packshot.tests.first")
    monkeypatch.setattr(logging.root.manager, "loggerDict", registry)

    def make_a_logger() -> None:
        registry.iterating.wait(5)
        logging.getLogger("packshot.tests.made-while-capturing")
        registry.made.set()

    thread = threading.Thread(target=make_a_logger)
    thread.start()
    with catching_logs(LogCaptureHandler()):
        pass
    thread.join(5)
    assert "packshot.tests.made-while-capturing" in registry
