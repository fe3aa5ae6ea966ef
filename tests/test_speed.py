"""The fast pipeline (`packshot.models.speed`) on the CPU, on the tiny models.

What a CPU can show: a product's LoRA merged into the weights gives the shots the eager path
gives, the next product's LoRA swaps in and the base weights come back exactly; a lever the
CPU lacks (fp8) is switched off with a note; torch.compile's tracing of the merged, fused
blocks (through the `aot_eager` backend: dynamo and AOT autograd without code generation)
gives the same images, in shooting and in training; a compile that fails falls back to eager
with the same seeds. The inductor path itself is checked on a GPU (`tests/test_gpu.py`) and
on this CPU by the slow test below.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, safe_open, save_file

from packshot.artifacts.product_model import ProductModel
from packshot.config import ENV_COMPILE_BACKEND
from packshot.models import speed
from packshot.models.load import clear_pipeline_cache, load_pipeline
from packshot.progress import ProgressEvent
from packshot.shoot import ShootRequest, render, shoot
from packshot.train import train
from training_support import product_model_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SEEDS = [11, 12]


def _render(pipe: object, loras: list[render.LoraWeights]) -> list[Image.Image]:
    with render.configured(
        pipe,
        render.get_scheduler("euler"),
        loras,
        model="tiny",
        num_inference_steps=2,
        guidance_scale=7.0,
    ):
        images, _ = render.render_batch(
            pipe,
            prompt="a photo of sks backpack on a desk",
            negative_prompt="blurry",
            seeds=SEEDS,
            width=64,
            height=64,
            num_inference_steps=2,
            guidance_scale=7.0,
        )
    return images


def _diff(a: list[Image.Image], b: list[Image.Image]) -> float:
    """The largest difference of any pixel between two lists of images (0-255)."""
    return max(
        float(np.abs(np.asarray(x, dtype=np.int16) - np.asarray(y, dtype=np.int16)).max())
        for x, y in zip(a, b, strict=True)
    )


def _stronger_lora(model_dir: Path, out: Path, factor: float) -> Path:
    """A second product's LoRA: the session model's, its up-projections scaled by `factor`."""
    source = ProductModel.load(model_dir).lora_path
    with safe_open(str(source), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = {
        key: value * factor if "lora_B" in key or "lora.up" in key else value
        for key, value in load_file(source).items()
    }
    out.mkdir(parents=True)
    path = out / source.name
    save_file(tensors, path, metadata=metadata)
    return path


def _lora(path: Path, name: str) -> render.LoraWeights:
    return render.LoraWeights(render.PRODUCT_ADAPTER, path, 1.0, name)


def test_merged_loras_shoot_like_eager_and_the_base_comes_back(
    cache_dir: Path, product_model: Path, tmp_path: Path
) -> None:
    a = _lora(ProductModel.load(product_model).lora_path, "a")
    b = _lora(_stronger_lora(product_model, tmp_path / "b", 40.0), "b")
    eager = load_pipeline("tiny", device="cpu", cache_dir=cache_dir)
    expected = {name: _render(eager, loras) for name, loras in (("a", [a]), ("b", [b]), ("0", []))}
    base = {k: v.clone() for k, v in eager.unet.state_dict().items()}
    assert _diff(expected["b"], expected["0"]) > 10  # the strong LoRA changes the picture

    # --fp8 on a CPU: fp8 is off with a note that says why; the fused form stays.
    fast = load_pipeline(
        "tiny", device="cpu", cache_dir=cache_dir, speedups=speed.Speedups(fp8=True)
    )
    assert fast is not eager and not speed.is_fast(eager)
    assert any("fp8 needs an NVIDIA GPU" in note for note in speed.speed_notes(fast))
    assert "fp8" not in speed.applied(fast) and "merged-loras" in speed.applied(fast)
    assert "fused-qkv" in speed.applied(fast)

    # Product a, a again (kept merged), b (swapped), then none: each as the eager path draws it.
    for name, loras in (("a", [a]), ("a", [a]), ("b", [b]), ("0", [])):
        assert _diff(_render(fast, loras), expected[name]) <= 2, name
        assert not any("lora" in key for key in fast.unet.state_dict())  # merged, not adapters

    # Without LoRAs the weights are the base model's again, bit for bit.
    for key, value in fast.unet.state_dict().items():
        if key in base:
            assert torch.equal(value, base[key]), key


def test_a_lora_that_does_not_fit_leaves_the_fast_pipeline_as_it_was(
    cache_dir: Path, product_model: Path, tmp_path: Path
) -> None:
    fast = load_pipeline(
        "tiny", device="cpu", cache_dir=cache_dir, speedups=speed.Speedups(fp8=True)
    )
    before = _render(fast, [])
    wrong = tmp_path / "wrong" / "pytorch_lora_weights.safetensors"
    wrong.parent.mkdir()
    save_file({"unet.down_blocks.0.no_such_layer.lora_A.weight": torch.ones(4, 4)}, wrong)
    with pytest.raises(Exception, match="doesn't fit|no_such_layer|lora"):
        _render(fast, [_lora(wrong, "wrong")])
    assert _diff(_render(fast, []), before) == 0


@pytest.fixture
def aot_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile through dynamo and AOT autograd, without generating kernels."""
    monkeypatch.setenv(ENV_COMPILE_BACKEND, "aot_eager")
    clear_pipeline_cache()


def test_compiled_shoot_traces_whole_blocks_and_matches_eager(
    cache_dir: Path, product_model: Path, tmp_path: Path, aot_eager: None
) -> None:
    request = ShootRequest(
        product_model, ["{product} on a desk"], count=2, num_inference_steps=2, seed=5
    )
    plain = shoot(request, tmp_path / "eager", cache_dir=cache_dir)
    request.compile = True
    fast = shoot(request, tmp_path / "compiled", cache_dir=cache_dir)
    assert not fast.warnings  # nothing switched off: fullgraph=True traced every block whole
    sidecar = (fast.shots[0].sidecar).read_text()
    assert '"compiled"' in sidecar and '"merged-loras"' in sidecar
    assert (
        _diff([Image.open(s.path) for s in fast.shots], [Image.open(s.path) for s in plain.shots])
        <= 2
    )


def test_a_failing_compile_falls_back_to_eager_with_the_same_seeds(
    cache_dir: Path, product_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine without a working C++ compiler: inductor's CPU code can't be built.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setenv(ENV_COMPILE_BACKEND, "inductor")
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("no-such-c++-compiler",))
    clear_pipeline_cache()
    eager = _render(load_pipeline("tiny", device="cpu", cache_dir=cache_dir), [])
    fast = load_pipeline(
        "tiny", device="cpu", cache_dir=cache_dir, speedups=speed.Speedups(compile=True)
    )
    assert "compiled" in speed.applied(fast)
    images = _render(fast, [])
    assert "compiled" not in speed.applied(fast)
    assert any("torch.compile failed" in note for note in speed.speed_notes(fast))
    assert _diff(images, eager) <= 2  # the generators re-seeded: the same noise


def test_an_unknown_compile_backend_is_a_note_not_a_failure(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_COMPILE_BACKEND, "no-such-backend")
    clear_pipeline_cache()  # not the fast pipeline an earlier test compiled
    fast = load_pipeline(
        "tiny", device="cpu", cache_dir=cache_dir, speedups=speed.Speedups(compile=True)
    )
    assert "compiled" not in speed.applied(fast)
    assert any("torch.compile is off" in note for note in speed.speed_notes(fast))
    assert len(_render(fast, [])) == len(SEEDS)


@pytest.mark.budget(20)  # a 4-step training whose blocks dynamo and AOT autograd trace
def test_compiled_training_reaches_the_same_lora(
    cache_dir: Path, training_set: Path, product_model: Path, tmp_path: Path, aot_eager: None
) -> None:
    # The session's product model, trained again with --compile: the same LoRA.
    config = product_model_config(compile=True)
    warnings: list[str] = []

    def progress(event: ProgressEvent) -> None:
        if event.data.get("event") == "warning":
            warnings.append(event.message)

    model = train(
        config, training_set, tmp_path / "compiled", cache_dir=cache_dir, progress=progress
    )
    assert not warnings  # compiled to the end: no fall-back to eager
    compiled = load_file(model.lora_path)
    eager = load_file(ProductModel.load(product_model).lora_path)
    assert eager.keys() == compiled.keys()
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-2, atol=1e-4)


@pytest.mark.slow
def test_inductor_on_the_cpu_matches_eager(
    cache_dir: Path, product_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_COMPILE_BACKEND, "inductor")
    clear_pipeline_cache()
    a = _lora(ProductModel.load(product_model).lora_path, "a")
    eager = _render(load_pipeline("tiny", device="cpu", cache_dir=cache_dir), [a])
    fast = load_pipeline(
        "tiny", device="cpu", cache_dir=cache_dir, speedups=speed.Speedups(compile=True)
    )
    assert _diff(_render(fast, [a]), eager) <= 2
    assert "compiled" in speed.applied(fast) and not speed.speed_notes(fast)
    shutil.rmtree(tmp_path, ignore_errors=True)
