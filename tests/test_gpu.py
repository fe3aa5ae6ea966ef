"""The CUDA paths: bf16 training, SDPA attention, out-of-memory advice, shooting on the GPU.

Marked `gpu`: skipped where torch sees no CUDA device. They run the tiny models, so they need
no download; what they check is that the GPU code paths (autocast, fp32 adapters on a bf16
base, the CUDA allocator's errors) do what the CPU tests can't show.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
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
