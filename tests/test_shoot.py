"""Shooting with a product model trained on the tiny SD 1.5 stand-in: files, metadata, pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from packshot.artifacts.provenance import GENERATED, read_source_type
from packshot.artifacts.shots import read_parameters, recipe_from_parameters
from packshot.errors import UsageError
from packshot.progress import ProgressEvent
from packshot.shoot import ShootRequest, ShootResult, shoot
from packshot.shoot.sheet import CAPTION_HEIGHT, sheet_layout

STEPS = 2  # diffusers' own pipeline tests run 2 steps
DESCRIPTIONS = ["{product} on a marble table", "on a wooden shelf"]  # the second lacks the product
PRESETS = ["studio", "lifestyle"]  # 1:1 and 4:5: two sizes on one sheet
SEED = 42


@pytest.fixture(scope="module")
def model_dir(product_model: Path) -> Path:
    """A real `packshot train` run: DreamBench's backpack, 64 px, a few steps (conftest.py)."""
    return product_model


def _request(model_dir: Path, **fields: object) -> ShootRequest:
    values: dict[str, object] = {
        "descriptions": DESCRIPTIONS[:1],
        "presets": PRESETS[:1],
        "count": 1,
        "seed": SEED,
        "num_inference_steps": STEPS,
    }
    values.update(fields)
    return ShootRequest(model_dir, **values)


@pytest.fixture(scope="module")
def shot_run(
    model_dir: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ShootResult, list[ProgressEvent]]:
    events: list[ProgressEvent] = []
    out = tmp_path_factory.mktemp("shoot") / "out"
    request = _request(model_dir, descriptions=DESCRIPTIONS, presets=PRESETS)
    return shoot(request, out, progress=events.append, cache_dir=cache_dir), events


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_writes_shots_sidecars_sheet_and_summary(
    shot_run: tuple[ShootResult, list[ProgressEvent]],
) -> None:
    result, events = shot_run
    names = sorted(p.name for p in result.out_dir.iterdir())
    stems = [f"{i:03d}-{p}-seed{SEED}" for i, p in enumerate(PRESETS * 2)]
    assert names == sorted(
        [f"{s}.png" for s in stems]
        + [f"{s}.json" for s in stems]
        + [
            "contact-sheet.png",
            "shoot.json",
        ]
    )
    summary = json.loads(result.summary_path.read_text())
    assert [i["file"] for i in summary["images"]] == [f"{s}.png" for s in stems]
    assert summary["settings"]["sampler"] == "DPM++ 2M Karras"
    assert summary["settings"]["num_inference_steps"] == STEPS
    assert summary["product"] == {
        "name": "red backpack",
        "token": "sks",
        "class_word": "backpack",
        "phrase": "sks backpack",
    }
    assert all(i["device_s"] > 0 and i["cost"] > 0 for i in summary["images"])
    assert summary["cost"]["studio_price_per_photo"] == 10.0
    assert summary["cost"]["images_per_studio_photo"] > 1

    # The description without the product got it, and said so (in the result and as an event).
    assert any("doesn't mention the product" in w for w in summary["warnings"])
    warned = [e.message for e in events if e.data.get("event") == "warning"]
    assert any("doesn't mention the product" in m for m in warned)
    assert result.shots[2].prompt.startswith("professional studio product photo of a photo of sks")
    shots_done = [e for e in events if e.data.get("event") == "shot"]
    assert [e.done for e in shots_done] == [1, 2, 3, 4] and events[-1].message == "done"


def test_parameters_chunk_and_sidecar_round_trip(
    shot_run: tuple[ShootResult, list[ProgressEvent]],
) -> None:
    result, _ = shot_run
    for shot in result.shots:
        text = read_parameters(shot.path)
        assert text is not None
        recipe = recipe_from_parameters(text)
        sidecar = json.loads(shot.sidecar.read_text())
        assert sidecar["parameters"] == text
        assert recipe.prompt == shot.prompt == sidecar["prompt"]
        assert recipe.negative_prompt == shot.negative_prompt == sidecar["negative_prompt"]
        assert (recipe.seed, recipe.num_inference_steps) == (SEED, STEPS)
        assert recipe.sampler == "DPM++ 2M Karras" and recipe.guidance_scale == 7.0
        assert recipe.model == "tiny" and recipe.lora_scale == 1.0
        assert list(recipe.lora_hashes) == ["model"]  # the model folder's name
        with Image.open(shot.path) as image:
            assert image.size == (recipe.width, recipe.height)
        assert sidecar["preset"] == shot.preset and sidecar["product"]["token"] == "sks"
        assert sidecar["timings"]["device_s"] > 0
        # Labelled as made with AI (IPTC digital source type in its XMP).
        assert read_source_type(shot.path) == sidecar["digital_source_type"] == GENERATED


def test_contact_sheet_has_one_cell_per_shot(
    shot_run: tuple[ShootResult, list[ProgressEvent]],
) -> None:
    result, _ = shot_run
    layout = sheet_layout([(s.width, s.height) for s in result.shots])
    assert (layout.columns, layout.rows) == (2, 2)
    with Image.open(result.contact_sheet) as image:
        sheet = np.asarray(image.convert("RGB"))
        assert image.size == (layout.width, layout.height)
    for index, shot in enumerate(result.shots):
        x, y = layout.origin(index)
        cell = sheet[y : y + layout.cell_height, x : x + layout.cell_width]
        caption = sheet[y + layout.cell_height : y + layout.cell_height + CAPTION_HEIGHT, x:]
        assert cell.std() > 0, f"cell {index} is empty"
        assert (caption < 128).any(), f"cell {index} has no caption"
        assert shot.path.is_file()


def test_lora_equals_plain_diffusers_load_lora_weights(
    shot_run: tuple[ShootResult, list[ProgressEvent]], model_dir: Path, cache_dir: Path
) -> None:
    """The same seed through plain diffusers gives the same pixels; without the LoRA, not."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    from packshot.models.load import resolve_model

    result, _ = shot_run
    shot = result.shots[0]
    pipe = StableDiffusionPipeline.from_pretrained(
        resolve_model("tiny", cache_dir=cache_dir).path, safety_checker=None
    )
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, use_karras_sigmas=True
    )
    pipe.set_progress_bar_config(disable=True)

    def plain() -> np.ndarray:
        image = pipe(
            shot.prompt,
            negative_prompt=shot.negative_prompt,
            width=shot.width,
            height=shot.height,
            num_inference_steps=STEPS,
            guidance_scale=7.0,
            generator=torch.Generator("cpu").manual_seed(shot.seed),
        ).images[0]
        return np.asarray(image, dtype=np.int16)

    without_lora = plain()
    pipe.load_lora_weights(model_dir)
    with_lora = plain()
    ours = _pixels(shot.path)
    assert np.array_equal(ours, with_lora)
    assert np.abs(ours - without_lora).max() > 0, "the trained LoRA should change the image"


def test_same_seed_twice_gives_identical_pixels(
    shot_run: tuple[ShootResult, list[ProgressEvent]],
    model_dir: Path,
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    result, _ = shot_run
    again = shoot(_request(model_dir), tmp_path / "again", cache_dir=cache_dir)
    assert np.array_equal(_pixels(again.shots[0].path), _pixels(result.shots[0].path))


def test_seeds_do_not_depend_on_batch_size(
    model_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    one = shoot(_request(model_dir, count=2, batch_size=1), tmp_path / "one", cache_dir=cache_dir)
    two = shoot(_request(model_dir, count=2, batch_size=2), tmp_path / "two", cache_dir=cache_dir)
    assert [s.seed for s in two.shots] == [SEED, SEED + 1]
    for a, b in zip(one.shots, two.shots, strict=True):
        # A batched matmul may round differently in the last bit: at most 1/255 apart.
        assert np.abs(_pixels(a.path) - _pixels(b.path)).max() <= 1
    assert np.abs(_pixels(two.shots[0].path) - _pixels(two.shots[1].path)).max() > 0


def test_lora_scale_zero_is_the_base_model(
    shot_run: tuple[ShootResult, list[ProgressEvent]],
    model_dir: Path,
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    result, _ = shot_run
    off = shoot(_request(model_dir, lora_scale=0.0), tmp_path / "off", cache_dir=cache_dir)
    assert recipe_from_parameters(read_parameters(off.shots[0].path) or "").lora_scale == 0.0
    assert np.abs(_pixels(off.shots[0].path) - _pixels(result.shots[0].path)).max() > 0
    # The pipeline the runtime caches is left as it was found: no LoRA, its own scheduler.
    from packshot.models.load import load_pipeline

    pipe = load_pipeline("tiny", cache_dir=cache_dir)
    assert not pipe.get_list_adapters()
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"


def test_base_model_alone_for_comparison(model_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    result = shoot(_request(model_dir, base="tiny"), tmp_path / "base", cache_dir=cache_dir)
    recipe = recipe_from_parameters(read_parameters(result.shots[0].path) or "")
    assert "sks" not in recipe.prompt and "backpack on a marble table" in recipe.prompt
    assert recipe.lora_hashes == {} and recipe.lora_scale is None


def test_fast_mode_with_an_lcm_lora_folder(
    model_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """Any LoRA folder fits the mechanics; a real LCM-LoRA is what makes 4 steps look good."""
    request = _request(model_dir, fast=True, fast_lora=str(model_dir), num_inference_steps=None)
    result = shoot(request, tmp_path / "fast", cache_dir=cache_dir)
    recipe = recipe_from_parameters(read_parameters(result.shots[0].path) or "")
    assert (recipe.sampler, recipe.num_inference_steps, recipe.guidance_scale) == ("LCM", 4, 1.0)
    assert len(recipe.lora_hashes) == 2


def test_fast_mode_says_when_no_lcm_lora_is_available(
    model_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="no LCM-LoRA for this model.*--fast-lora"):
        shoot(_request(model_dir, fast=True), tmp_path / "a", cache_dir=cache_dir)
    hub_id = "latent-consistency/lcm-lora-sdv1-5"
    with pytest.raises(UsageError, match=f"needs the LCM-LoRA `{hub_id}`, and it isn't available"):
        shoot(_request(model_dir, fast=True, fast_lora=hub_id), tmp_path / "b", cache_dir=cache_dir)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_over_long_description_is_reported(
    model_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    words = "{product} " + ", ".join(["on a sunny terrace by the sea"] * 12) + ", purple umbrella"
    request = _request(model_dir, descriptions=[words])
    result = shoot(request, tmp_path / "long", cache_dir=cache_dir)
    assert any("purple umbrella" in w and "cut off" in w for w in result.warnings)
    summary = json.loads(result.summary_path.read_text())
    assert summary["warnings"] == result.warnings


def test_sdxl_base_model_shoots_too(cache_dir: Path, tmp_path: Path) -> None:
    request = ShootRequest(
        None,
        ["{product} on a table"],
        base="tiny-sdxl",
        product="teapot",
        presets=["lifestyle"],
        count=1,
        seed=SEED,
        num_inference_steps=STEPS,
    )
    result = shoot(request, tmp_path / "sdxl", cache_dir=cache_dir)
    recipe = recipe_from_parameters(read_parameters(result.shots[0].path) or "")
    assert (recipe.model, recipe.sampler) == ("tiny-sdxl", "DPM++ 2M Karras")
    with Image.open(result.shots[0].path) as image:
        assert image.size == (recipe.width, recipe.height) == (64, 72)  # 4:5 at 64 px
