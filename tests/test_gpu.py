"""The CUDA paths: bf16 training, SDPA attention, out-of-memory advice, shooting on the GPU,
and the fast paths (torch.compile's kernels, fp8) against eager.

Marked `gpu`: skipped where torch sees no CUDA device. They run the tiny models, so they need
no download; what they check is that the GPU code paths (autocast, fp32 adapters on a bf16
base, the CUDA allocator's errors) do what the CPU tests can't show.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from packshot.errors import PackshotError
from packshot.train import TrainConfig, train

pytestmark = pytest.mark.gpu


def _config(**overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "model": "tiny",
        "class_word": "backpack",
        "resolution": 64,
        "max_train_steps": 6,
        "learning_rate": 1e-3,
        "checkpointing_steps": 3,
        "validation_steps": 0,
        "validation_inference_steps": 2,
        "device": "cuda",
    }
    values.update(overrides)
    return TrainConfig(**values)


def test_trains_in_bf16_with_fp32_adapters(
    cache_dir: Path, training_set: Path, tmp_path: Path
) -> None:
    result = train(_config(), training_set, tmp_path / "model", cache_dir=cache_dir)
    meta = json.loads((result.model_dir / "packshot.json").read_text())
    assert meta["device"].startswith("cuda")
    assert meta["dtype"] == "bfloat16"
    weights = load_file(result.model_dir / "pytorch_lora_weights.safetensors")
    assert weights and all(t.dtype == torch.float32 for t in weights.values())
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert any(t.abs().sum() > 0 for k, t in weights.items() if "lora_B" in k or "lora.up" in k)


def test_pipelines_use_sdpa_on_cuda(cache_dir: Path) -> None:
    from diffusers.models.attention_processor import AttnProcessor2_0

    from packshot.models.load import load_pipeline

    pipe = load_pipeline("tiny", device="cuda", cache_dir=cache_dir)
    processors = pipe.unet.attn_processors.values()
    assert processors and all(isinstance(p, AttnProcessor2_0) for p in processors)
    assert pipe.unet.dtype == torch.bfloat16


def test_out_of_memory_names_the_settings_to_change(
    cache_dir: Path, training_set: Path, tmp_path: Path
) -> None:
    free, _ = torch.cuda.mem_get_info()
    # leave this process almost nothing: a few hundred KB of the whole card
    fraction = max(1e-6, 256 * 1024 / torch.cuda.get_device_properties(0).total_memory)
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(fraction)
    try:
        with pytest.raises(PackshotError) as info:
            train(_config(), training_set, tmp_path / "model", cache_dir=cache_dir)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    message = str(info.value)
    assert message.startswith("Out of memory on cuda")
    assert "gradient_checkpointing on" in message and "(now 64)" not in message
    assert not (tmp_path / "model").exists() and free > 0


def test_shoots_on_cuda(cache_dir: Path, training_set: Path, tmp_path: Path) -> None:
    from packshot.shoot import ShootRequest, shoot

    model = train(_config(), training_set, tmp_path / "model", cache_dir=cache_dir)
    request = ShootRequest(
        model.model_dir,
        ["{product} on a desk"],
        presets=["studio"],
        count=2,
        num_inference_steps=2,
        size=(64, 64),
    )
    result = shoot(request, tmp_path / "shots", cache_dir=cache_dir)
    assert len(result.shots) == 2
    sidecar = json.loads(result.shots[0].sidecar.read_text())
    assert sidecar["device"].startswith("cuda")
    settings = json.loads(result.summary_path.read_text())["settings"]
    assert settings["device"].startswith("cuda") and settings["dtype"] == "bfloat16"


def _pixels(paths: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in paths])


def test_compiled_and_fp8_shoots_match_eager(
    cache_dir: Path, product_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast paths on the GPU (inductor kernels, fp8 matrix products through torchao), same
    seeds as eager: the images stay within a small tolerance, nothing is switched off."""
    from packshot.models import speed
    from packshot.shoot import ShootRequest, shoot

    # The tiny model's layers are 16-128 wide: let fp8 take them (real models: 320-5120).
    monkeypatch.setattr(speed, "FP8_MIN_FEATURES", 16)
    monkeypatch.delenv("PACKSHOT_COMPILE_BACKEND", raising=False)

    def run(name: str, **levers: bool) -> tuple[np.ndarray, list[str], list[str]]:
        request = ShootRequest(
            product_model,
            ["{product} on a desk"],
            count=4,
            num_inference_steps=3,
            seed=3,
            device="cuda",
            **levers,
        )
        result = shoot(request, tmp_path / name, cache_dir=cache_dir)
        sidecar = json.loads(result.shots[0].sidecar.read_text())
        return _pixels([s.path for s in result.shots]), result.warnings, sidecar["speed"]

    eager, _, eager_levers = run("eager")
    compiled, notes, levers = run("compiled", compile=True)
    assert eager_levers == ["eager"]
    assert "compiled" in levers and "channels-last" in levers and not notes, notes
    compiled_error = float(np.abs(compiled - eager).mean())
    print(f"mean |compiled - eager| {compiled_error:.2f} (0-255)")
    assert compiled_error <= 4.0
    if speed.fp8_unavailable("cuda"):
        pytest.skip(f"fp8 not checked: {speed.fp8_unavailable('cuda')}")
    fp8, notes, levers = run("fp8", compile=True, fp8=True)
    assert "fp8" in levers and "compiled" in levers and not notes, notes
    fp8_error = float(np.abs(fp8 - eager).mean())
    print(f"mean |fp8 - eager| {fp8_error:.2f} (0-255)")
    assert fp8_error <= 20.0


def test_compiled_training_on_cuda(cache_dir: Path, training_set: Path, tmp_path: Path) -> None:
    events: list[object] = []
    result = train(
        _config(compile=True),
        training_set,
        tmp_path / "model",
        cache_dir=cache_dir,
        progress=events.append,
    )
    warnings = [e for e in events if getattr(e, "data", {}).get("event") == "warning"]
    assert not warnings, warnings  # compile held: no fallback to eager
    weights = load_file(result.model_dir / "pytorch_lora_weights.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert any(t.abs().sum() > 0 for k, t in weights.items() if "lora_B" in k or "lora.up" in k)
