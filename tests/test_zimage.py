"""Z-Image on its tiny stand-in: the family's prompts, objective and prediction against diffusers'
ZImagePipeline, a training run (NaN roll-back, failure, resume), the diffusers and ComfyUI files,
then shoot, place and score on the trained model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import ZImagePipeline
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from packshot.artifacts.shots import read_parameters, recipe_from_parameters, sidecar_path
from packshot.cli import app
from packshot.errors import UsageError
from packshot.models.describe import describe_model
from packshot.models.families import detect_family, get_family
from packshot.models.load import load_pipeline, resolve_model
from packshot.shoot import ShootRequest
from packshot.shoot.run import plan_shoot
from packshot.shoot.sizes import size_for
from packshot.train import train
from packshot.train.exports import COMFYUI_WEIGHT_NAME
from placing_support import first_shot_keeps_the_product, write_photo
from training_support import (
    FailedAndResumed,
    fail_then_resume,
    fast_against_eager,
    kill_at_first_checkpoint,
    lora_images,
    nan_twice_config,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()

FAMILY = get_family("z-image")
CONFIG = nan_twice_config("tiny-zimage")


@pytest.fixture(scope="module")
def pipe_dir(cache_dir: Path) -> Path:
    return resolve_model("tiny-zimage", cache_dir=cache_dir).path


@pytest.fixture(scope="module")
def zimage_run(
    cache_dir: Path, training_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> FailedAndResumed:
    """A run that fails (NaN twice at step 3, after a roll-back to step 2), then resumed."""
    out = tmp_path_factory.mktemp("zimage") / "model"
    return fail_then_resume(CONFIG, training_set, out, cache_dir)


@pytest.mark.parametrize("kind", ["text2img", "inpaint"])
def test_stand_in_loads_runs_and_is_detected(cache_dir: Path, kind: str) -> None:
    pipe = load_pipeline("tiny-zimage", kind=kind, cache_dir=cache_dir)
    resolved = resolve_model("tiny-zimage", cache_dir=cache_dir)
    assert detect_family(resolved.path) is resolved.family is FAMILY
    assert type(pipe).__name__ == FAMILY.pipeline_class_name(kind)
    assert describe_model(resolved).resolution == 64 and resolved.stand_in
    assert type(pipe.text_encoder).__name__ == "Qwen3Model"  # no language-model head
    inputs: dict[str, object] = {"prompt": "a photo of sks backpack", "num_inference_steps": 2}
    inputs |= {"width": 96, "height": 64, "generator": torch.Generator().manual_seed(0)}
    if kind == "inpaint":
        inputs |= {"image": Image.new("RGB", (96, 64), "white")}
        inputs |= {"mask_image": Image.new("L", (96, 64), 255)}
    assert pipe(**inputs).images[0].size == (96, 64)


def test_real_layout_is_detected_and_turbo_by_its_name(tmp_path: Path) -> None:
    index = {
        "_class_name": "ZImagePipeline",
        "text_encoder": ["transformers", "Qwen3Model"],
        "tokenizer": ["transformers", "Qwen2Tokenizer"],
        "transformer": ["diffusers", "ZImageTransformer2DModel"],
    }
    # a Hub download of the distilled model, and of the foundation model: the same configs
    turbo = tmp_path / "models--Tongyi-MAI--Z-Image-Turbo" / "snapshots" / "f00d"
    base = tmp_path / "models--Tongyi-MAI--Z-Image" / "snapshots" / "f00d"
    for folder in (turbo, base):
        (folder / "transformer").mkdir(parents=True)
        (folder / "model_index.json").write_text(json.dumps(index))
        (folder / "transformer" / "config.json").write_text(json.dumps({"in_channels": 16}))
        assert detect_family(folder) is FAMILY
        assert FAMILY.native_resolution(folder) == 1024
    assert FAMILY.sampling_defaults(turbo) == (9, 0.0)  # its model card: guidance 0 is off
    assert FAMILY.sampling_defaults(base) == (50, 5.0)  # ZImagePipeline's own defaults
    assert FAMILY.fast_model == "Tongyi-MAI/Z-Image-Turbo"


def test_prompt_embeddings_are_the_pipelines(pipe_dir: Path) -> None:
    tokenizers, encoders, _vae = FAMILY.load_text_parts(pipe_dir, torch.float32)
    captions = ["a photo of sks backpack", "a photo of backpack on a wooden table"]
    ours, mask = FAMILY.encode_prompt(encoders, FAMILY.tokenize(tokenizers, captions))
    pipe = ZImagePipeline.from_pretrained(pipe_dir, transformer=None, vae=None)
    theirs, _ = pipe.encode_prompt(list(captions), do_classifier_free_guidance=False)
    assert ours.shape == (2, 512, 16) and mask.shape == (2, 512)
    for embeds, keep, expected in zip(ours, mask.bool(), theirs, strict=True):
        torch.testing.assert_close(embeds[keep], expected)  # each prompt at its own length
    assert int(mask[0].sum()) < int(mask[1].sum())
    limit = FAMILY.prompt_token_limit(tokenizers[0])
    assert 480 < limit < 512  # 512 less the chat template's tokens


def test_objective_and_prediction_are_the_pipelines(pipe_dir: Path) -> None:
    """Training draws from the scheduler's shifted sigmas; `predict` is the velocity the
    pipeline steps with, at the pipeline's own times (t = 1000, then 750 after the shift)."""
    transformer, scheduler = FAMILY.load_denoiser(pipe_dir, torch.float32)
    timesteps = FAMILY.draw_timesteps(scheduler, 512, torch.Generator().manual_seed(0))
    assert set(timesteps.tolist()) <= set(scheduler.timesteps.tolist())
    # shift 3: σ = 3u / (1 + 2u) for uniform u, whose mean is 0.676 (unshifted: 0.5)
    assert 620 < float(timesteps.float().mean()) < 730
    latents, noise = torch.randn(512, 16, 2, 2), torch.randn(512, 16, 2, 2)
    noisy, target = FAMILY.noisy_and_target(scheduler, latents, noise, timesteps)
    sigma = (timesteps / 1000).view(-1, 1, 1, 1)
    torch.testing.assert_close(noisy, (1 - sigma) * latents + sigma * noise)
    torch.testing.assert_close(target, noise - latents)

    tokenizers, encoders, _vae = FAMILY.load_text_parts(pipe_dir, torch.float32)
    embeds, mask = FAMILY.encode_prompt(encoders, FAMILY.tokenize(tokenizers, ["a photo"]))
    pipe = ZImagePipeline.from_pretrained(pipe_dir, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    start = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def record(pipe: ZImagePipeline, i: int, t: torch.Tensor, kwargs: dict) -> dict:
        seen.append((t.clone(), kwargs["latents"].clone()))
        return kwargs

    pipe(
        prompt_embeds=[embeds[0][mask[0].bool()]],
        guidance_scale=0.0,
        latents=start.clone(),
        height=64,
        width=64,
        num_inference_steps=2,
        output_type="latent",
        callback_on_step_end=record,
    )
    sigmas = pipe.scheduler.sigmas
    before = start
    with torch.no_grad():
        for i, (t, after) in enumerate(seen):
            velocity = FAMILY.predict(transformer, before, t.view(1), embeds, mask, None)
            torch.testing.assert_close(after, before + (sigmas[i + 1] - sigmas[i]) * velocity)
            before = after
    assert [round(float(t)) for t, _ in seen] == [1000, 750]


def test_training_rolls_back_fails_resumes_and_writes_the_model(
    zimage_run: FailedAndResumed,
) -> None:
    result, failed, resumed = zimage_run
    assert [e.data["step"] for e in failed if e.data.get("event") == "rollback"] == [2]
    assert result.resumed_from == 2 and result.final_step == 4
    assert math.isfinite(result.final_loss)
    meta = json.loads(result.metadata_path.read_text())
    assert meta["family"] == "z-image"
    assert set(result.exports) == {"diffusers", "comfyui"}  # no kohya: a UNet layout
    assert (result.model_dir / "samples" / "step-000004-seed0.png").is_file()
    card = (result.model_dir / "README.md").read_text()
    assert 'base_model: "tiny-zimage"' in card and "license: apache-2.0" in card
    assert result.probe_loss["end"] < result.probe_loss["start"]  # type: ignore[operator]


def test_lora_loads_in_plain_diffusers_and_changes_the_output(
    zimage_run: FailedAndResumed, pipe_dir: Path
) -> None:
    result, _, _ = zimage_run
    base = lora_images(ZImagePipeline.from_pretrained(pipe_dir))
    tuned_pipe = ZImagePipeline.from_pretrained(pipe_dir)
    tuned_pipe.load_lora_weights(result.model_dir)  # the diffusers file, by its default name
    trained = {
        name for name, module in tuned_pipe.transformer.named_modules() if hasattr(module, "lora_A")
    }
    # q, k, v and out of every attention: 2 main layers, 1 noise and 1 context refiner
    assert len(trained) == 16
    tuned = lora_images(tuned_pipe)
    assert np.abs(tuned - base).max() > 1e-3
    # the ComfyUI file, read back by diffusers' own Z-Image converter: the same images
    comfy_pipe = ZImagePipeline.from_pretrained(pipe_dir)
    comfy_pipe.load_lora_weights(result.model_dir, weight_name=COMFYUI_WEIGHT_NAME)
    np.testing.assert_allclose(lora_images(comfy_pipe), tuned, atol=1e-5)


def test_trains_on_mixed_aspects_at_batch_2(
    cache_dir: Path, mixed_training_set: Path, pipe_dir: Path, tmp_path: Path
) -> None:
    """Aspect buckets: each batch from one bucket, prompts of different lengths side by side,
    gradient checkpointing, and the LoRA changes a non-square image drawn by plain diffusers."""
    # with gradient checkpointing, as the presets train the 6B transformer
    changes = {"resolution": 96, "train_batch_size": 2, "gradient_checkpointing": True}
    changes |= {"checkpointing_steps": 0, "debug_nan_at_step": None}
    config = CONFIG.model_copy(update=changes)
    model = train(config, mixed_training_set, tmp_path / "model", cache_dir=cache_dir)
    assert model.final_step == 4 and math.isfinite(model.final_loss)  # type: ignore[arg-type]
    sizes = [(b["width"], b["height"]) for b in model.buckets]  # type: ignore[union-attr]
    assert sizes == [(80, 112), (96, 96), (112, 80), (128, 64)]  # sides in 16s
    assert (model.model_dir / "samples" / "step-000004-seed0-80x112.png").is_file()
    base = lora_images(ZImagePipeline.from_pretrained(pipe_dir), size=(128, 64))
    tuned = ZImagePipeline.from_pretrained(pipe_dir)
    tuned.load_lora_weights(model.model_dir)
    images = lora_images(tuned, size=(128, 64))
    assert images.shape[1:3] == (64, 128) and np.abs(images - base).max() > 1e-3


def _comfyui_target(layer: str, dim: int) -> tuple[str, int, int]:
    """Where ComfyUI puts a Z-Image LoRA layer: comfy/lora.py's Lumina2 branch maps
    `diffusion_model.<diffusers layer>` through comfy/utils.py `z_image_to_diffusers` onto its
    own checkpoint layout: q, k and v as rows [0, dim), [dim, 2·dim), [2·dim, 3·dim) of the
    fused `attention.qkv`, `attention.to_out.0` as `attention.out`. (weight, first row, rows)."""
    block, _, name = layer.rpartition(".attention.")
    if name in ("to_q", "to_k", "to_v"):
        return f"{block}.attention.qkv.weight", "qkv".index(name[-1]) * dim, dim
    assert name == "to_out.0", layer
    return f"{block}.attention.out.weight", 0, dim


def test_comfyui_file_patches_comfyuis_layout_as_diffusers_does(
    zimage_run: FailedAndResumed, pipe_dir: Path
) -> None:
    result, _, _ = zimage_run
    tensors = load_file(result.model_dir / COMFYUI_WEIGHT_NAME)
    peft = load_file(result.lora_path)
    assert set(tensors) == {k.replace("transformer.", "diffusion_model.", 1) for k in peft}
    dim, rank = 32, CONFIG.rank

    # ComfyUI's own layout of the base transformer, patched as ComfyUI patches it (no alpha:
    # up @ down at scale 1), against diffusers' LoRA fused into the diffusers layout
    transformer = ZImagePipeline.from_pretrained(pipe_dir).transformer
    weights = transformer.state_dict()
    native: dict[str, torch.Tensor] = {}
    layers = sorted({k.removesuffix(".lora_A.weight") for k in tensors if "lora_A" in k})
    for layer in layers:
        block = layer.removeprefix("diffusion_model.").rpartition(".attention.")[0]
        parts = [weights[f"{block}.attention.to_{p}.weight"] for p in "qkv"]
        native[f"{block}.attention.qkv.weight"] = torch.cat(parts)
        native[f"{block}.attention.out.weight"] = weights[f"{block}.attention.to_out.0.weight"]
    for layer in layers:
        down, up = tensors[f"{layer}.lora_A.weight"], tensors[f"{layer}.lora_B.weight"]
        assert down.shape == (rank, dim) and up.shape == (dim, rank), layer
        target, row, rows = _comfyui_target(layer.removeprefix("diffusion_model."), dim)
        native[target] = native[target].clone()
        native[target][row : row + rows] += up @ down

    tuned = ZImagePipeline.from_pretrained(pipe_dir)
    tuned.load_lora_weights(result.model_dir)
    tuned.fuse_lora()
    fused = tuned.transformer.state_dict()
    for target, weight in native.items():
        block = target.rpartition(".attention.")[0]
        if target.endswith("qkv.weight"):
            expected = torch.cat(
                [fused[f"{block}.attention.to_{p}.base_layer.weight"] for p in "qkv"]
            )
        else:
            expected = fused[f"{block}.attention.to_out.0.base_layer.weight"]
        torch.testing.assert_close(weight, expected)


def test_shoot_place_and_score_on_the_trained_model(
    zimage_run: FailedAndResumed, tmp_path: Path
) -> None:
    result, _, _ = zimage_run
    model = str(result.model_dir)
    shots = tmp_path / "shots"
    shoot_args = ["shoot", model, "{product} on a wooden table", "--out", str(shots)]
    shoot_args += ["-n", "1", "--seed", "5", "--steps", "2", "--aspect", "16:9"]
    shoot_args += ["--negative-prompt", "blurry", "--no-judge", "--json"]
    run = runner.invoke(app, shoot_args)
    assert run.exit_code == 0, run.output
    summary = json.loads((shots / "shoot.json").read_text())
    assert summary["family"] == "z-image" and summary["settings"]["guidance_scale"] == 5.0
    (first,) = sorted(shots.glob("0*.png"))
    assert Image.open(first).size == size_for("16:9", 64, 16)  # sides in multiples of 16
    recipe = recipe_from_parameters(read_parameters(first) or "")
    assert recipe.model == "tiny-zimage" and recipe.seed == 5
    assert recipe.negative_prompt == "blurry"  # its guidance runs against it
    assert json.loads(sidecar_path(first).read_text())["family"] == "z-image"
    assert list(recipe.lora_hashes) == [result.model_dir.name]

    # place: Z-Image inpaints with the product model's own base model; the pixel guarantee
    photo, _ = write_photo(tmp_path / "photo")
    placed_dir = tmp_path / "placed"
    place_args = ["place", str(photo), "on a marble counter", "--out", str(placed_dir)]
    place_args += ["--product-model", model, "--seed", "3", "--steps", "2", "-n", "1"]
    place_args += ["--cutout-model", "grabcut", "--no-judge", "--json"]
    run = runner.invoke(app, place_args)
    assert run.exit_code == 0, run.output
    assert first_shot_keeps_the_product(placed_dir, photo)["family"] == "z-image"

    # score: the shots against the product's photos
    run = runner.invoke(
        app,
        ["score", str(shots), "--reference", str(result.model_dir / "training-set")]
        + ["--dino-model", "tiny", "--clip-model", "tiny", "--json"],
    )
    assert run.exit_code == 0, run.output
    scores = json.loads((shots / "scores.json").read_text())
    assert len(scores["shots"]) == 1


def test_merged_lora_and_fused_projections_shoot_like_eager(
    zimage_run: FailedAndResumed, cache_dir: Path, tmp_path: Path
) -> None:
    """The fast pipeline (models.speed) on Z-Image: the product's LoRA merged into the
    weights and fused QKV projections draw what the eager pipeline draws."""
    result, _, _ = zimage_run
    difference, _, levers = fast_against_eager(result.model_dir, tmp_path, cache_dir)
    assert "fused-qkv" in levers and "merged-loras" in levers
    assert difference <= 2


def test_fast_is_turbos_recipe_and_instant_is_refused(
    zimage_run: FailedAndResumed, cache_dir: Path, dreambench: Path, tmp_path: Path
) -> None:
    result, _, _ = zimage_run
    request = ShootRequest(result.model_dir, ["{product} on a table"], fast=True)
    plan = plan_shoot(request, cache_dir=cache_dir)
    assert plan.sampling == (9, 0.0) and plan.base_model == "tiny-zimage"
    assert any("no distilled variant" in w for w in plan.warnings)
    default = plan_shoot(ShootRequest(result.model_dir, ["x"]), cache_dir=cache_dir)
    assert default.sampling == (50, 5.0)
    # Z-Image takes no reference images: the instant mode names the families that do
    args = ["instant", str(dreambench / "backpack"), "x", "--model", "tiny-zimage"]
    run = runner.invoke(app, [*args, "--out", str(tmp_path / "instant")])
    assert run.exit_code == 2 and "takes no reference images" in run.output
    assert "FLUX.2 [klein]" in run.output


def test_text_encoder_training_and_odd_sizes_are_refused(
    training_set: Path, tmp_path: Path
) -> None:
    config = CONFIG.model_copy(update={"train_text_encoder": True})
    with pytest.raises(UsageError, match="text encoder stays frozen"):
        train(config, training_set, tmp_path / "model")
    with pytest.raises(UsageError, match="multiples of 16"):
        train(CONFIG.model_copy(update={"resolution": 72}), training_set, tmp_path / "m2")


# Slow, as FLUX.2's: a new process imports the stack (6 s here) to train to its first checkpoint.
# The resume after a real SIGKILL is the training loop's, shared by every family, and tested by
# default on SD 1.5 (test_train_sturdy.py); Z-Image's own checkpoint, roll-back and resume are
# tested in process above (test_training_rolls_back_fails_resumes_and_writes_the_model).
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
