"""FLUX.2 [klein] on its tiny stand-in: the family's objective and prompts against diffusers'
pipeline, a training run (NaN roll-back, failure, resume), the diffusers and ComfyUI files."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import Flux2KleinPipeline
from PIL import Image, ImageFilter
from safetensors.torch import load_file
from typer.testing import CliRunner

from packshot.artifacts.product_model import ProductModel
from packshot.artifacts.shots import read_parameters, recipe_from_parameters, sidecar_path
from packshot.cli import app
from packshot.errors import UsageError
from packshot.flows.dreambench import run_dreambench
from packshot.intake import check_photos
from packshot.intake.references import pick_references
from packshot.judge import JudgeConfig
from packshot.models.describe import describe_model
from packshot.models.families import detect_family, get_family
from packshot.models.load import load_pipeline, resolve_model
from packshot.progress import ProgressEvent
from packshot.shoot import ShootRequest
from packshot.shoot.run import plan_shoot
from packshot.shoot.sizes import size_for
from packshot.train import train
from packshot.train.exports import COMFYUI_WEIGHT_NAME
from placing_support import first_shot_keeps_the_product, write_photo
from training_support import (
    fail_then_resume,
    fast_against_eager,
    kill_at_first_checkpoint,
    lora_images,
    nan_twice_config,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()

FAMILY = get_family("flux2-klein")
CONFIG = nan_twice_config("tiny-flux2")


@pytest.fixture(scope="module")
def pipe_dir(cache_dir: Path) -> Path:
    return resolve_model("tiny-flux2", cache_dir=cache_dir).path


@pytest.fixture(scope="module")
def flux2_run(
    cache_dir: Path, training_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ProductModel, list[ProgressEvent], list[ProgressEvent]]:
    out = tmp_path_factory.mktemp("flux2") / "model"
    return fail_then_resume(CONFIG, training_set, out, cache_dir)


@pytest.mark.parametrize("kind", ["text2img", "inpaint"])
def test_stand_in_loads_runs_and_is_detected(cache_dir: Path, kind: str) -> None:
    pipe = load_pipeline("tiny-flux2", kind=kind, cache_dir=cache_dir)
    resolved = resolve_model("tiny-flux2", cache_dir=cache_dir)
    assert detect_family(resolved.path) is resolved.family is FAMILY
    assert type(pipe).__name__ == FAMILY.pipeline_class_name(kind)
    assert describe_model(resolved).resolution == 64 and resolved.stand_in
    assert (resolved.path / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    tokens = pipe.tokenizer.convert_ids_to_tokens(pipe.tokenizer("a photo of sks").input_ids)
    assert tokens == ["a", "Ġphoto", "Ġof", "Ġsks"]  # byte-level BPE, Qwen's pre-tokenizer
    inputs: dict[str, object] = {"prompt": "a photo of sks backpack", "num_inference_steps": 2}
    inputs |= {"width": 96, "height": 64, "generator": torch.Generator().manual_seed(0)}
    if kind == "inpaint":
        inputs |= {"image": Image.new("RGB", (96, 64), "white")}
        inputs |= {"mask_image": Image.new("L", (96, 64), 255)}
    assert pipe(**inputs).images[0].size == (96, 64)


def test_real_layout_is_detected(tmp_path: Path) -> None:
    index = {
        "_class_name": "Flux2KleinPipeline",
        "text_encoder": ["transformers", "Qwen3ForCausalLM"],
        "transformer": ["diffusers", "Flux2Transformer2DModel"],
        "is_distilled": True,
    }
    (tmp_path / "transformer").mkdir()
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    (tmp_path / "transformer" / "config.json").write_text(json.dumps({"in_channels": 128}))
    assert detect_family(tmp_path) is FAMILY
    assert FAMILY.native_resolution(tmp_path) == 1024


def test_prompt_embeddings_are_the_pipelines(pipe_dir: Path) -> None:
    tokenizers, encoders, _vae = FAMILY.load_text_parts(pipe_dir, torch.float32)
    captions = ["a photo of sks backpack", "a photo of backpack on a wooden table"]
    ours, pooled = FAMILY.encode_prompt(encoders, FAMILY.tokenize(tokenizers, captions))
    pipe = Flux2KleinPipeline.from_pretrained(pipe_dir, transformer=None, vae=None)
    theirs, _text_ids = pipe.encode_prompt(captions)
    assert pooled is None and ours.shape == (2, 512, 48)
    torch.testing.assert_close(ours, theirs)
    limit = FAMILY.prompt_token_limit(tokenizers[0])
    assert 480 < limit < 512  # 512 less the chat template's tokens


def test_objective_is_rectified_flow(pipe_dir: Path) -> None:
    _transformer, scheduler = FAMILY.load_denoiser(pipe_dir, torch.float32)
    timesteps = FAMILY.draw_timesteps(scheduler, 512, torch.Generator().manual_seed(0))
    assert set(timesteps.tolist()) <= set(scheduler.timesteps.tolist())
    assert 400 < float(timesteps.float().mean()) < 600  # uniform over (0, 1000]
    latents, noise = torch.randn(512, 16, 4, 4), torch.randn(512, 16, 4, 4)
    noisy, target = FAMILY.noisy_and_target(scheduler, latents, noise, timesteps)
    sigma = (timesteps / 1000).view(-1, 1, 1, 1)  # unshifted training sigmas: t / 1000
    torch.testing.assert_close(noisy, (1 - sigma) * latents + sigma * noise)
    torch.testing.assert_close(target, noise - latents)
    assert torch.equal(FAMILY.loss_weights(scheduler, timesteps, 5.0), torch.ones(512))


@pytest.mark.budget(20)  # the module's training: a failed run of 3 steps, resumed to 4
def test_training_rolls_back_fails_resumes_and_writes_the_model(
    flux2_run: tuple[ProductModel, list[ProgressEvent], list[ProgressEvent]],
) -> None:
    result, failed, resumed = flux2_run
    assert [e.data["step"] for e in failed if e.data.get("event") == "rollback"] == [2]
    assert result.resumed_from == 2 and result.final_step == 4
    assert math.isfinite(result.final_loss)
    meta = json.loads(result.metadata_path.read_text())
    assert meta["family"] == "flux2-klein"
    assert set(result.exports) == {"diffusers", "comfyui"}  # no kohya: a UNet layout
    assert (result.model_dir / "samples" / "step-000004-seed0.png").is_file()
    card = (result.model_dir / "README.md").read_text()
    assert 'base_model: "tiny-flux2"' in card and "license: apache-2.0" in card
    assert result.probe_loss["end"] < result.probe_loss["start"]  # type: ignore[operator]


def test_lora_loads_in_plain_diffusers_and_comfyui_file_matches(
    flux2_run: tuple[ProductModel, list[ProgressEvent], list[ProgressEvent]], pipe_dir: Path
) -> None:
    result, _, _ = flux2_run
    base = lora_images(Flux2KleinPipeline.from_pretrained(pipe_dir))
    tuned_pipe = Flux2KleinPipeline.from_pretrained(pipe_dir)
    tuned_pipe.load_lora_weights(result.model_dir)
    trained = {
        name for name, module in tuned_pipe.transformer.named_modules() if hasattr(module, "lora_A")
    }
    assert len(trained) == 8  # q, k, v, out of the double block; 2 x 2 in the single blocks
    tuned = lora_images(tuned_pipe)
    assert np.abs(tuned - base).max() > 1e-3
    # the ComfyUI file, read back by diffusers' own FLUX.2 converter: the same images
    comfy_pipe = Flux2KleinPipeline.from_pretrained(pipe_dir)
    comfy_pipe.load_lora_weights(result.model_dir, weight_name=COMFYUI_WEIGHT_NAME)
    np.testing.assert_allclose(lora_images(comfy_pipe), tuned, atol=1e-5)


def test_comfyui_file_has_comfyuis_names_and_shapes(
    flux2_run: tuple[ProductModel, list[ProgressEvent], list[ProgressEvent]], pipe_dir: Path
) -> None:
    result, _, _ = flux2_run
    tensors = load_file(result.model_dir / COMFYUI_WEIGHT_NAME)
    rank, hidden = CONFIG.rank, 32  # the stand-in: 2 heads x 16
    mlp = 3 * hidden  # mlp_ratio 3
    # ComfyUI's FLUX.2 layer names (BFL's) and their weights' (out, in) shapes, as ComfyUI's
    # loader reads them (comfy/lora.py: `diffusion_model.<layer>` + `.lora_A/.lora_B.weight`)
    layers = {
        "double_blocks.0.img_attn.qkv": (3 * hidden, hidden),
        "double_blocks.0.img_attn.proj": (hidden, hidden),
        "single_blocks.0.linear1": (3 * hidden + 2 * mlp, hidden),  # q, k, v + gated MLP in
        "single_blocks.1.linear1": (3 * hidden + 2 * mlp, hidden),
        "single_blocks.0.linear2": (hidden, hidden + mlp),
        "single_blocks.1.linear2": (hidden, hidden + mlp),
    }
    expected = {
        f"diffusion_model.{layer}.lora_{which}.weight" for layer in layers for which in "AB"
    }
    assert set(tensors) == expected
    for layer, (out_features, in_features) in layers.items():
        fused = 3 if layer.endswith("qkv") else 1  # q, k and v: one LoRA of rank 3r
        down = tensors[f"diffusion_model.{layer}.lora_A.weight"]
        up = tensors[f"diffusion_model.{layer}.lora_B.weight"]
        assert down.shape == (fused * rank, in_features), layer
        assert up.shape == (out_features, fused * rank), layer
    # the fused update is exactly q's, k's and v's stacked
    peft = load_file(result.lora_path)
    qkv = (
        tensors["diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight"]
        @ tensors["diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight"]
    )
    parts = [
        peft[f"transformer.transformer_blocks.0.attn.to_{p}.lora_B.weight"]
        @ peft[f"transformer.transformer_blocks.0.attn.to_{p}.lora_A.weight"]
        for p in "qkv"
    ]
    torch.testing.assert_close(qkv, torch.cat(parts))


@pytest.mark.budget(25)  # the CLI's shoot, place (with its cut-out) and score on one model
def test_shoot_place_and_score_on_the_trained_model(
    flux2_run: tuple[ProductModel, list[ProgressEvent], list[ProgressEvent]],
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    result, _, _ = flux2_run
    model = str(result.model_dir)
    shots = tmp_path / "shots"
    shoot_args = ["shoot", model, "{product} on a wooden table", "--out", str(shots)]
    shoot_args += ["-n", "1", "--seed", "5", "--steps", "2", "--aspect", "16:9"]
    shoot_args += ["--negative-prompt", "blurry", "--json"]
    run = runner.invoke(app, shoot_args)
    assert run.exit_code == 0, run.output
    summary = json.loads((shots / "shoot.json").read_text())
    assert summary["family"] == "flux2-klein" and summary["settings"]["guidance_scale"] == 4.0
    assert any("no negative prompt" in w for w in summary["warnings"])
    (first,) = sorted(shots.glob("0*.png"))
    assert Image.open(first).size == size_for("16:9", 64, 16)  # sides in multiples of 16
    recipe = recipe_from_parameters(read_parameters(first) or "")
    assert recipe.model == "tiny-flux2" and recipe.seed == 5 and recipe.negative_prompt == ""
    assert json.loads(sidecar_path(first).read_text())["family"] == "flux2-klein"
    assert list(recipe.lora_hashes) == [result.model_dir.name]

    # place: FLUX.2 inpaints with the product model's own base model; the pixel guarantee
    photo, _ = write_photo(tmp_path / "photo")
    placed_dir = tmp_path / "placed"
    place_args = ["place", str(photo), "on a marble counter", "--out", str(placed_dir)]
    place_args += ["--product-model", model, "--seed", "3", "--steps", "2", "-n", "1"]
    place_args += ["--cutout-model", "grabcut", "--json"]
    run = runner.invoke(app, place_args)
    assert run.exit_code == 0, run.output
    first_shot_keeps_the_product(placed_dir, photo)
    placed_shot = sorted(placed_dir.glob("0*.png"))[0]
    placed_recipe = recipe_from_parameters(read_parameters(placed_shot) or "")
    assert placed_recipe.model == "tiny-flux2"

    # score: the shots against the product's photos
    run = runner.invoke(
        app,
        ["score", str(shots), "--reference", str(result.model_dir / "training-set")]
        + ["--dino-model", "tiny", "--clip-model", "tiny", "--json"],
    )
    assert run.exit_code == 0, run.output
    assert (shots / "scores.json").is_file()


def test_merged_lora_and_fused_projections_shoot_like_eager(
    flux2_run: tuple[ProductModel, list[ProgressEvent], list[ProgressEvent]],
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    """The fast pipeline on a transformer (models.speed): the product's LoRA merged into the
    weights and diffusers' fused QKV projections (the joint attention's text side too) draw
    what the eager pipeline draws; --fp8 on a CPU says why it is off."""
    result, _, _ = flux2_run
    difference, warnings, levers = fast_against_eager(result.model_dir, tmp_path, cache_dir)
    assert "fused-qkv" in levers and "merged-loras" in levers and "fp8" not in levers
    assert any("fp8 needs an NVIDIA GPU" in w for w in warnings)
    assert difference <= 2


def test_fast_is_the_distilled_recipe(
    flux2_run: tuple[ProductModel, list[ProgressEvent], list[ProgressEvent]],
    cache_dir: Path,
    tmp_path: Path,
) -> None:
    result, _, _ = flux2_run
    request = ShootRequest(result.model_dir, ["{product} on a table"], fast=True)
    plan = plan_shoot(request, cache_dir=cache_dir)
    assert plan.sampling == (4, 1.0) and plan.base_model == "tiny-flux2"
    assert any("no distilled variant" in w for w in plan.warnings)
    assert plan_shoot(ShootRequest(result.model_dir, ["x"]), cache_dir=cache_dir).sampling == (
        50,
        4.0,
    )
    # a real distilled model (its model_index.json says so): 4 steps, no guidance, by default
    (tmp_path / "model_index.json").write_text(json.dumps({"is_distilled": True}))
    assert FAMILY.sampling_defaults(tmp_path) == (4, 1.0)
    assert FAMILY.fast_model == "black-forest-labs/FLUX.2-klein-4B"


def test_references_are_intakes_best_distinct_photos(dreambench: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(dreambench / "backpack", photos)
    shutil.copy(photos / "00.jpg", photos / "00-copy.jpg")  # the same photo twice counts once
    blurred = Image.open(photos / "01.jpg").filter(ImageFilter.GaussianBlur(12))
    blurred.save(photos / "01.jpg")
    picked = pick_references(check_photos(photos), 4, photos)
    files = [r.file for r in picked]
    assert len(files) == 4 and len(set(files)) == 4
    assert not {"00.jpg", "00-copy.jpg"} <= set(files)
    assert "01.jpg" not in files  # blurry: last, and four sharp ones beat it
    assert all(r.product_share > 0.05 and not r.reasons for r in picked)


@pytest.mark.budget(15)  # two shoots of one 2-step shot (with and without references), judged
def test_instant_shoots_with_references_and_judges(
    dreambench: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "instant"
    args = ["instant", str(dreambench / "backpack"), "{product} on a wooden table"]
    args += ["--model", "tiny-flux2", "--product", "backpack", "--out", str(out)]
    run = runner.invoke(
        app, [*args, "-n", "1", "--seed", "7", "--steps", "2", "--profile", "amazon-main", "--json"]
    )
    assert run.exit_code == 0, run.output
    summary = json.loads((out / "shoot.json").read_text())
    # --profile: delivered into OUT/delivery, where a drawn shot is refused Amazon's main image
    delivered = json.loads((out / "delivery" / "delivery.json").read_text())
    assert delivered["counts"]["amazon-main"]["fail"] == 1
    references = summary["settings"]["references"]
    assert 1 <= len(references) <= 4 and summary["base_model"] == "tiny-flux2"
    (shot,) = sorted(out.glob("0*.png"))
    sidecar = json.loads(sidecar_path(shot).read_text())
    assert sidecar["references"] == [Path(r).name for r in references]
    assert set(sidecar["scores"]) >= {"dino", "clip_i", "present"}  # judged against the photos
    # the references reach the model: the same seed without them draws another image
    plain = tmp_path / "plain"
    run = runner.invoke(
        app,
        ["shoot", "--base", "tiny-flux2", "{product} on a wooden table", "--product", "backpack"]
        + ["--out", str(plain), "-n", "1", "--seed", "7", "--steps", "2", "--no-judge"],
    )
    assert run.exit_code == 0, run.output
    (plain_shot,) = sorted(plain.glob("0*.png"))
    assert not np.array_equal(np.asarray(Image.open(shot)), np.asarray(Image.open(plain_shot)))

    # a family that takes no references is refused, naming the ones that do
    run = runner.invoke(
        app, ["instant", str(dreambench / "backpack"), "x", "--model", "tiny", "--out", str(out)]
    )
    assert run.exit_code != 0 and "FLUX.2 [klein]" in run.output


@pytest.mark.budget(25)  # a 2-step training, then 3 shots and their scores, one per row
def test_dreambench_has_the_reference_rows(
    dreambench: Path, cache_dir: Path, tmp_path: Path
) -> None:
    result = run_dreambench(
        dreambench,
        ["backpack"],
        prompts_per_subject=1,
        images_per_prompt=1,
        steps=2,
        resolution=64,
        model="tiny-flux2",
        out_dir=tmp_path / "bench",
        judge=JudgeConfig(dino_model="tiny", clip_model="tiny"),
        num_inference_steps=2,
        cache_dir=cache_dir,
    )
    with result.results_csv.open(encoding="utf-8") as handle:
        modes = [row["mode"] for row in csv.DictReader(handle)]
    assert modes == ["finetune", "reference", "lora+reference"]
    assert set(result.reference_means) == {"reference", "lora+reference"}
    table = result.table_md.read_text()
    assert "| packshot references only (no training) |" in table
    assert "| packshot LoRA + references |" in table
    summary = json.loads(result.summary_json.read_text())
    assert summary["references"]["reference"]["means"] == result.reference_means["reference"]


def test_text_encoder_training_is_refused_clearly(training_set: Path, tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"train_text_encoder": True})
    with pytest.raises(UsageError, match="text encoder stays frozen"):
        train(config, training_set, tmp_path / "model")
    with pytest.raises(UsageError, match="multiples of 16"):
        train(CONFIG.model_copy(update={"resolution": 72}), training_set, tmp_path / "m2")


@pytest.mark.slow
def test_resume_after_kill_9_reaches_the_final_step(
    training_set: Path, cache_dir: Path, tmp_path: Path
) -> None:
    config = CONFIG.model_copy(
        update={"max_train_steps": 40, "debug_nan_at_step": None, "sample_at_end": False}
    )
    out = tmp_path / "model"
    killed_at = kill_at_first_checkpoint(config, training_set, out, cache_dir, within_s=300)
    result = train(config, training_set, out, resume=True, cache_dir=cache_dir)
    assert result.resumed_from is not None and result.resumed_from >= killed_at.step
    assert result.final_step == config.max_train_steps
