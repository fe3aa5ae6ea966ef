"""SDXL end to end on the tiny stand-in, with text-encoder LoRAs and prior preservation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from packshot.artifacts.product_model import ProductModel
from packshot.progress import ProgressEvent
from packshot.train import TrainConfig, train
from packshot.train.data import ensure_class_images

CONFIG = TrainConfig(
    model="tiny-sdxl",
    class_word="backpack",
    resolution=64,
    max_train_steps=4,
    learning_rate=1e-3,
    checkpointing_steps=2,
    validation_inference_steps=2,
    validation_seeds=[0],
    train_text_encoder=True,
    with_prior_preservation=True,
    num_class_images=2,
    class_inference_steps=2,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sdxl_run(
    cache_dir: Path, training_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ProductModel, list[ProgressEvent]]:
    events: list[ProgressEvent] = []
    out = tmp_path_factory.mktemp("sdxl") / "model"
    return train(CONFIG, training_set, out, progress=events.append, cache_dir=cache_dir), events


def _images(pipe: object) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]
    return pipe(  # type: ignore[operator]
        "a photo of sks backpack",
        num_inference_steps=2,
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="np",
    ).images


def _pipeline(cache_dir: Path) -> object:
    from diffusers import StableDiffusionXLPipeline

    from packshot.models.load import resolve_model

    return StableDiffusionXLPipeline.from_pretrained(
        resolve_model("tiny-sdxl", cache_dir=cache_dir).path
    )


def test_sdxl_model_folder(sdxl_run: tuple[ProductModel, list[ProgressEvent]]) -> None:
    result, events = sdxl_run
    assert result.final_step == 4 and math.isfinite(result.final_loss)
    meta = result.metadata_path.read_text()
    assert '"family": "sdxl"' in meta
    assert (result.model_dir / "samples" / "step-000004-seed0.png").is_file()
    assert "- stable-diffusion-xl" in (result.model_dir / "README.md").read_text()
    # diffusers file: the UNet and both text encoders; kohya: lora_unet, lora_te1, lora_te2
    prefixes = {k.split(".")[0] for k in load_file(result.lora_path)}
    assert prefixes == {"unet", "text_encoder", "text_encoder_2"}
    kohya = load_file(result.export_paths["kohya"])
    assert {k.split("_")[0] + "_" + k.split("_")[1] for k in kohya} == {
        "lora_unet",
        "lora_te1",
        "lora_te2",
    }
    assert all(float(v) == CONFIG.rank for k, v in kohya.items() if k.endswith(".alpha"))
    assert any(e.stage == "class-images" for e in events)


def test_sdxl_lora_changes_the_output_and_kohya_matches(
    sdxl_run: tuple[ProductModel, list[ProgressEvent]], cache_dir: Path
) -> None:
    result, _ = sdxl_run
    base = _images(_pipeline(cache_dir))
    with_diffusers = _pipeline(cache_dir)
    with_diffusers.load_lora_weights(result.model_dir)  # type: ignore[attr-defined]
    # the text encoders got their LoRA layers too
    for encoder in (with_diffusers.text_encoder, with_diffusers.text_encoder_2):  # type: ignore[attr-defined]
        assert any("lora_A" in name for name, _ in encoder.named_modules())
    tuned = _images(with_diffusers)
    assert np.abs(tuned - base).max() > 1e-3
    with_kohya = _pipeline(cache_dir)
    with_kohya.load_lora_weights(result.model_dir, weight_name=result.exports["kohya"])  # type: ignore[attr-defined]
    np.testing.assert_allclose(_images(with_kohya), tuned, atol=1e-5)


def test_class_images_are_cached_and_reused(
    sdxl_run: tuple[ProductModel, list[ProgressEvent]], cache_dir: Path
) -> None:
    folders = list((cache_dir / "class-images").iterdir())
    assert len(folders) == 1
    images = sorted(folders[0].glob("*.png"))
    assert [p.name for p in images] == ["0000.png", "0001.png"]
    stamps = [p.stat().st_mtime_ns for p in images]

    def no_pipeline() -> object:
        raise AssertionError("cached class images must not be generated again")

    again = ensure_class_images(
        folders[0],
        count=2,
        make_pipeline=no_pipeline,
        prompt=CONFIG.class_prompt_text,
        resolution=64,
        num_inference_steps=2,
    )
    assert again == images and [p.stat().st_mtime_ns for p in again] == stamps
