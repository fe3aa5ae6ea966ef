"""Training on the tiny SD 1.5 stand-in: the files, the metadata, the LoRA's effect, the formats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from packshot.artifacts.product_model import ProductModel, work_dir_for
from packshot.progress import ProgressEvent
from packshot.train import TrainConfig, train

STEPS = 12

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(**overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "model": "tiny",
        "class_word": "backpack",
        "resolution": 64,
        "max_train_steps": STEPS,
        "learning_rate": 1e-3,  # tiny random models need a large step to move in 12 steps
        "checkpointing_steps": 5,
        "validation_steps": 6,
        "validation_inference_steps": 2,
    }
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def sd15_run(
    cache_dir: Path, training_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ProductModel, list[ProgressEvent]]:
    out = tmp_path_factory.mktemp("sd15") / "model"
    events: list[ProgressEvent] = []
    result = train(_config(), training_set, out, progress=events.append, cache_dir=cache_dir)
    return result, events


def _images(pipe: object, prompt: str = "a photo of sks backpack") -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]
    generator = torch.Generator("cpu").manual_seed(0)
    return pipe(  # type: ignore[operator]
        prompt, num_inference_steps=2, generator=generator, output_type="np"
    ).images


def _pipeline(alias: str, cache_dir: Path) -> object:
    import diffusers

    from packshot.models.load import resolve_model

    resolved = resolve_model(alias, cache_dir=cache_dir)
    cls = getattr(diffusers, resolved.family.pipeline_class_name("text2img"))
    return cls.from_pretrained(resolved.path)


def test_writes_the_model_folder(sd15_run: tuple[ProductModel, list[ProgressEvent]]) -> None:
    result, _ = sd15_run
    out = result.model_dir
    for name in (
        "pytorch_lora_weights.safetensors",
        "pytorch_lora_weights_kohya.safetensors",
        "packshot.json",
        "README.md",
    ):
        assert (out / name).is_file(), name
    assert not work_dir_for(out).exists(), "the work folder must be renamed into place"
    assert not (out / "run.json").exists()
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == ["step-000005", "step-000010"]  # every 5 steps, the last 2 kept
    samples = sorted(p.name for p in (out / "samples").iterdir())
    assert samples == [f"step-{s:06d}-seed{seed}.png" for s in (6, 12) for seed in (0, 1)]
    assert result.final_step == STEPS and math.isfinite(result.final_loss)


def test_metadata_says_how_the_model_was_made(
    sd15_run: tuple[ProductModel, list[ProgressEvent]], training_set: Path
) -> None:
    result, _ = sd15_run
    model = ProductModel.load(result.model_dir)
    meta = json.loads(result.metadata_path.read_text())
    assert model.to_json() == meta
    assert meta["kind"] == "packshot-model" and meta["schema_version"] == 1
    assert model.base_model == "tiny" and model.family == "sd15"
    assert (model.token, model.class_word) == ("sks", "backpack")
    assert TrainConfig(**model.config) == _config()
    assert model.packshot_version
    assert meta["num_photos"] == len(model.photos) >= 3
    assert all(len(photo.sha256) == 64 for photo in model.photos)
    assert model.final_step == STEPS and model.final_loss == result.final_loss
    assert model.resumed_from is None and model.nan_rollbacks == 0
    assert {"prepare_s", "cache_s", "train_s", "total_s"} <= set(model.timings)
    assert model.device == "cpu" and model.dtype == "float32"
    assert model == result  # what train returns is what the folder says


def test_model_card_has_hub_metadata(sd15_run: tuple[ProductModel, list[ProgressEvent]]) -> None:
    result, _ = sd15_run
    card = (result.model_dir / "README.md").read_text()
    front = card.split("---\n")[1]
    assert 'base_model: "tiny"' in front
    assert 'instance_prompt: "a photo of sks backpack"' in front
    assert "- lora" in front and "- stable-diffusion" in front
    assert "url: samples/step-000012-seed0.png" in front  # the final samples as widgets


def test_progress_events(sd15_run: tuple[ProductModel, list[ProgressEvent]]) -> None:
    _, events = sd15_run
    train_events = [e for e in events if e.stage == "train"]
    steps = [e for e in train_events if e.data.get("event") == "step"]
    assert [e.data["step"] for e in steps] == list(range(1, STEPS + 1))
    assert all({"loss", "lr", "it_s", "eta_s"} <= set(e.data) for e in steps)
    assert all(e.total == STEPS for e in train_events)
    kinds = [
        (e.data["event"], e.data.get("step")) for e in train_events if e.data["event"] != "step"
    ]
    assert ("checkpoint", 5) in kinds and ("checkpoint", 10) in kinds
    assert ("sample", 6) in kinds and ("sample", STEPS) in kinds
    assert kinds[-1] == ("done", STEPS)
    sample = next(e for e in train_events if e.data["event"] == "sample")
    assert all(Path(p).name.startswith("step-000006") for p in sample.data["paths"])


def test_lora_changes_the_output_and_round_trips(
    sd15_run: tuple[ProductModel, list[ProgressEvent]], cache_dir: Path
) -> None:
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft.utils import get_peft_model_state_dict

    result, _ = sd15_run
    base = _images(_pipeline("tiny", cache_dir))
    pipe = _pipeline("tiny", cache_dir)
    pipe.load_lora_weights(result.model_dir)  # type: ignore[attr-defined]  # no extra arguments
    tuned = _images(pipe)
    assert np.abs(tuned - base).max() > 1e-3

    # Round trip: the weights inside the pipeline are the ones in the file.
    saved = load_file(result.lora_path)
    unet_saved = {k.removeprefix("unet."): v for k, v in saved.items() if k.startswith("unet.")}
    unet_saved = convert_unet_state_dict_to_peft(unet_saved)
    adapter = pipe.unet.active_adapters()[0]  # type: ignore[attr-defined]
    loaded = get_peft_model_state_dict(pipe.unet, adapter_name=adapter)  # type: ignore[attr-defined]
    assert set(loaded) == set(unet_saved)
    for key, value in unet_saved.items():
        torch.testing.assert_close(loaded[key], value)


def test_kohya_file_is_equivalent_to_the_diffusers_file(
    sd15_run: tuple[ProductModel, list[ProgressEvent]], cache_dir: Path
) -> None:
    result, _ = sd15_run
    keys = list(load_file(result.export_paths["kohya"]))
    assert keys and all(k.startswith("lora_unet_") for k in keys)
    assert any(k.endswith(".lora_down.weight") for k in keys)
    assert any(k.endswith(".lora_up.weight") for k in keys)
    assert sum(k.endswith(".alpha") for k in keys) * 3 == len(keys)

    with_diffusers = _pipeline("tiny", cache_dir)
    with_diffusers.load_lora_weights(result.model_dir)  # type: ignore[attr-defined]
    with_kohya = _pipeline("tiny", cache_dir)
    with_kohya.load_lora_weights(  # type: ignore[attr-defined]
        result.model_dir, weight_name=result.exports["kohya"]
    )
    np.testing.assert_allclose(_images(with_kohya), _images(with_diffusers), atol=1e-5)


def test_kohya_alpha_gives_exactly_the_trained_scale(cache_dir: Path, tmp_path: Path) -> None:
    """alpha ≠ rank: the kohya file's alphas must reproduce the diffusers file's scale (2×)."""
    import diffusers
    from peft import LoraConfig

    from packshot.models.load import resolve_model
    from packshot.train.exports import save_diffusers_lora, save_kohya_lora
    from packshot.train.lora_io import add_lora

    resolved = resolve_model("tiny", cache_dir=cache_dir)
    family = resolved.family
    unet = diffusers.UNet2DConditionModel.from_pretrained(resolved.path, subfolder="unet")
    add_lora(unet, LoraConfig(r=4, lora_alpha=8, target_modules=family.denoiser_lora_targets))
    torch.manual_seed(0)
    with torch.no_grad():  # lora_B starts at zero: give it values so the LoRA does something
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    save_diffusers_lora(tmp_path / "pytorch_lora_weights.safetensors", family, {"unet": unet})
    kohya = tmp_path / "kohya.safetensors"
    save_kohya_lora(kohya, family, {"unet": unet})
    alphas = {k: v for k, v in load_file(kohya).items() if k.endswith(".alpha")}
    assert alphas and all(float(v) == 8.0 for v in alphas.values())
    with safe_open(str(kohya), "pt") as fh:
        assert fh.metadata()["format"] == "pt"

    base = _images(_pipeline("tiny", cache_dir))
    a = _pipeline("tiny", cache_dir)
    a.load_lora_weights(tmp_path)  # type: ignore[attr-defined]
    b = _pipeline("tiny", cache_dir)
    b.load_lora_weights(tmp_path, weight_name="kohya.safetensors")  # type: ignore[attr-defined]
    out_a, out_b = _images(a), _images(b)
    assert np.abs(out_a - base).max() > 1e-2
    np.testing.assert_allclose(out_b, out_a, atol=1e-5)


def test_loss_on_a_fixed_batch_goes_down(cache_dir: Path, training_set: Path) -> None:
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from packshot.models.load import resolve_model
    from packshot.train.data import encode_examples
    from packshot.train.loop import _prepared_examples
    from packshot.train.step import LoraTrainer, make_batch

    config = _config(max_train_steps=20, learning_rate=1e-2, lr_warmup_steps=0)
    resolved = resolve_model("tiny", cache_dir=cache_dir)
    family = resolved.family
    tokenizers, text_encoders, vae = family.load_text_parts(resolved.path, torch.float32)
    unet, noise_scheduler = family.load_denoiser(resolved.path, torch.float32)
    examples, _ = _prepared_examples(
        training_set, training_set, config, family, False, lambda e: None
    )
    encoded = encode_examples(
        examples[:2],
        vae=vae,
        tokenizers=tokenizers,
        text_encoders=text_encoders,
        resolution=64,
        random_flip=False,
        background_weight=config.background_weight,
        prior_loss_weight=1.0,
        family=family,
    )
    assert isinstance(unet, UNet2DConditionModel)
    assert isinstance(noise_scheduler, DDPMScheduler)
    trainer = LoraTrainer(unet, noise_scheduler, config, family)
    index = torch.arange(2)
    batch = make_batch([(encoded, index, torch.zeros(2, dtype=torch.bool))], "cpu", family)
    before = trainer.probe_loss(batch, seed=7)
    for _ in range(config.max_train_steps):
        # the same noise and timesteps every step: the batch is fixed, so its loss must fall
        trainer.train_step(batch, torch.Generator().manual_seed(7))
    after = trainer.probe_loss(batch, seed=7)
    assert after < 0.9 * before, (before, after)


def test_frozen_convolutions_give_the_same_gradients() -> None:
    from packshot.train.step import save_memory_on_frozen_convs

    torch.manual_seed(0)
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(4, 2, 3, stride=2)
    ).requires_grad_(False)
    patched = torch.nn.Sequential(*[m for m in reference])  # the same layers, same weights
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    expected = reference(x)
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), x)
    assert save_memory_on_frozen_convs(patched) == 2
    got = patched(x)
    (grad_got,) = torch.autograd.grad(got.square().sum(), x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad_got, grad_expected)


def test_geglu_gates_give_the_same_outputs_and_gradients_and_keep_less() -> None:
    from diffusers.models.activations import GEGLU

    from packshot.train.step import save_memory_on_geglu

    torch.manual_seed(0)
    model = torch.nn.Sequential(GEGLU(8, 16), torch.nn.Linear(16, 8)).requires_grad_(False)
    x = torch.randn(2, 5, 8, requires_grad=True)

    def run() -> tuple[torch.Tensor, torch.Tensor, int]:
        saved: list[int] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            saved.append(t.untyped_storage().data_ptr())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        (grad,) = torch.autograd.grad(out.square().sum(), x)
        return out, grad, len(set(saved))

    expected, grad_expected, kept_before = run()
    assert save_memory_on_geglu(model) == 1
    got, grad_got, kept_after = run()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad_got, grad_expected)
    assert kept_after < kept_before  # gelu(gate) is recomputed, not kept
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)


def test_feed_forwards_recompute_their_projection_with_the_same_outputs_and_gradients() -> None:
    from diffusers.models.attention import FeedForward

    from packshot.train.step import save_memory_on_feed_forward

    torch.manual_seed(0)
    model = FeedForward(8, activation_fn="geglu").requires_grad_(False)
    x = torch.randn(2, 6, 8, requires_grad=True)  # 6 tokens

    def run() -> tuple[torch.Tensor, torch.Tensor, int]:
        saved: list[int] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            saved.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        (grad,) = torch.autograd.grad(out.square().sum(), x)
        return out, grad, sum(saved)

    expected, grad_expected, kept_before = run()
    assert save_memory_on_feed_forward(model, min_tokens=6) == 1
    got, grad_got, kept_after = run()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad_got, grad_expected)
    # after: x and the weights it needs (proj's weight and bias, out's weight), not proj(x)
    assert kept_after == x.numel() + 64 * 8 + 64 + 8 * 32
    assert kept_after < kept_before
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)

    # fewer tokens than min_tokens, a trainable projection or a live dropout: the module's
    # own forward, so nothing changes but the memory
    small = FeedForward(8, activation_fn="geglu").requires_grad_(False)
    assert save_memory_on_feed_forward(small, min_tokens=7) == 1
    saved_small: list[int] = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved_small.append(t.numel()) or t, lambda t: t
    ):
        small(x)
    assert sum(saved_small) == kept_before  # proj(x) kept, as diffusers' own forward does
    trained = FeedForward(8, activation_fn="geglu")
    assert save_memory_on_feed_forward(trained) == 0
    dropping = FeedForward(8, activation_fn="geglu", dropout=0.1).requires_grad_(False)
    assert save_memory_on_feed_forward(dropping) == 0


def test_feed_forward_recompute_under_autocast_with_half_precision_weights() -> None:
    """As a CUDA bf16 step runs it (bf16 weights, fp32 activations, autocast): the backward
    pass recomputes the projection in the forward's autocast. Found on an H200, where a 1024 px
    SDXL step failed with "mat1 and mat2 must have the same dtype"; CPU autocast shows it too."""
    from diffusers.models.attention import FeedForward

    from packshot.train.step import save_memory_on_feed_forward

    torch.manual_seed(0)
    model = FeedForward(16, activation_fn="geglu").to(torch.bfloat16).requires_grad_(False)
    x = torch.randn(2, 8, 16, requires_grad=True)  # fp32, as the blocks' normalised input

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        (grad,) = torch.autograd.grad(out.float().square().sum(), x)
        return out, grad

    expected, grad_expected = run()
    assert save_memory_on_feed_forward(model, min_tokens=8) == 1
    got, grad_got = run()
    torch.testing.assert_close(got, expected)
    assert grad_got.dtype == x.dtype
    torch.testing.assert_close(grad_got, grad_expected, rtol=2e-2, atol=2e-2)


def test_mask_becomes_latent_loss_weights() -> None:
    from packshot.train.data import mask_to_loss_weights

    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 20:48] = 1.0  # the product; its left edge falls inside latent column 2
    weights = mask_to_loss_weights(mask, (8, 8), background_weight=0.25)
    assert weights.shape == (1, 1, 8, 8)
    assert weights[0, 0, 3, 4] == 1.0  # on the product
    assert weights[0, 0, 0, 0] == 0.25  # background
    assert weights[0, 0, 3, 2] == pytest.approx(0.25 + 0.75 * 0.5)  # half covered


def test_a_registered_export_format_is_written_listed_and_published(
    cache_dir: Path, training_set: Path, tmp_path: Path
) -> None:
    """A new export format is one `register_export_format` call: the run writes it, packshot.json
    lists it, the card names it and the Hub upload takes it, with no other change."""
    from safetensors.torch import save_file

    from packshot.train import exports
    from packshot.train.card import model_card
    from packshot.train.hub import files_to_push
    from packshot.train.lora_io import lora_state_dict

    def save_half(path: Path, family: object, models: dict, config: object) -> None:
        tensors = {
            f"{name}.{key}": value.half()
            for name, model in models.items()
            for key, value in lora_state_dict(model).items()
        }
        save_file(tensors, str(path))

    half = exports.register_export_format(
        exports.ExportFormat("half", "lora_fp16.safetensors", "a test's own reader", save_half)
    )
    try:
        with pytest.raises(ValueError, match="already registered"):
            exports.register_export_format(half)
        model = train(
            _config(max_train_steps=2, checkpointing_steps=0, validation_steps=0),
            training_set,
            tmp_path / "model",
            cache_dir=cache_dir,
        )
        assert list(model.exports) == ["diffusers", "kohya", "half"]
        weights = load_file(model.export_paths["half"])
        assert weights and all(v.dtype == torch.float16 for v in weights.values())
        assert ProductModel.load(model.model_dir).exports == model.exports
        files = json.loads(model.metadata_path.read_text())["files"]
        assert files["half"] == "lora_fp16.safetensors"
        assert "For a test's own reader, use `lora_fp16.safetensors`." in model_card(model, [])
        assert "lora_fp16.safetensors" in files_to_push(model)
    finally:
        del exports.EXPORT_FORMATS["half"]
