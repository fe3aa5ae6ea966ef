"""The training-step benchmark runs and writes its JSON (slow: it builds an 860M UNet)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


@pytest.mark.slow
def test_train_step_benchmark_quick_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARK.parent))  # its sibling module sd15.py
    spec = importlib.util.spec_from_file_location("train_step", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "train_step.json"
    module.main(["--steps", "1", "--warmup", "0", "--resolution", "64", "--json", str(out)])
    result = json.loads(out.read_text())
    assert 850e6 < result["unet_parameters"] < 870e6  # SD 1.5's UNet: 859.5M
    assert result["trainable_parameters"] > 0 and result["seconds_per_step"] > 0
    assert result["peak_rss_gb"] > 3.0  # the fp32 UNet alone is 3.4 GB
