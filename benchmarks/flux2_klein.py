"""Benchmark: FLUX.2 [klein] 4B LoRA training and generation, random weights of the real shapes.

Nothing is downloaded: the transformer, the Qwen3-4B text encoder and the VAE are built from
their configs (below, from diffusers' scripts/convert_flux2_to_diffusers.py "klein-4b" and the
models' published configs) with random weights, which cost the same FLOPs and memory as real
ones; only the images and losses are meaningless. The training step is packshot's own
(`packshot.train.step.LoraTrainer` with the `flux2-klein` family: rectified flow, masked loss,
cached prompt embeddings, the LoRA targets of the diffusers example).

On this project's CPU (2 cores, 24 GB) full-size klein does not fit a training run; `--cpu`
(the default) times the LoRA step of one real-shaped klein block pair (one double-stream and
one single-stream block, 3072 wide, 512 text tokens) at 256 px:

    .venv/bin/python benchmarks/flux2_klein.py                 # s/step and peak RSS, one block pair
    .venv/bin/python benchmarks/flux2_klein.py --resolution 512 --steps 2

On a CUDA GPU, `--gpu` builds the whole klein 4B in bf16 and measures, at 1024 px: the
training step (batch 1, rank 16, cached text embeddings, with and without gradient
checkpointing: s/step and peak GPU memory) and the time per image of the base model (50 steps,
guidance 4, classifier-free guidance doubles the batch), of the step-distilled one (4 steps,
no guidance), and of the distilled one with four 1024 px reference images (the instant
mode). It needs torch, diffusers, transformers, peft and packshot only, and finishes in about
a minute on an H200:

    python benchmarks/flux2_klein.py --gpu --json flux2-gpu.json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import time
from typing import Any

import torch
from diffusers import (
    AutoencoderKLFlux2,
    FlowMatchEulerDiscreteScheduler,
    Flux2KleinPipeline,
    Flux2Transformer2DModel,
)
from PIL import Image
from transformers import Qwen3Config, Qwen3ForCausalLM

from packshot.models.families import get_family
from packshot.models.families.flux2 import (
    BASE_GUIDANCE,
    BASE_STEPS,
    DISTILLED_STEPS,
    MAX_SEQUENCE_LENGTH,
)
from packshot.models.standins import build_qwen_tokenizer
from packshot.train.config import TrainConfig
from packshot.train.step import Batch, LoraTrainer

# black-forest-labs/FLUX.2-klein-4B transformer/config.json, as diffusers'
# scripts/convert_flux2_to_diffusers.py writes it for "klein-4b" (9B: 8 + 24 blocks, 32 heads,
# joint_attention_dim 12288).
KLEIN_4B_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1,
    "in_channels": 128,  # 32 VAE channels x 2x2 patches
    "num_layers": 5,  # double-stream blocks
    "num_single_layers": 20,
    "attention_head_dim": 128,
    "num_attention_heads": 24,  # 3072 wide
    "joint_attention_dim": 7680,  # 3 stacked Qwen3-4B layers x 2560
    "timestep_guidance_channels": 256,
    "mlp_ratio": 3.0,
    "axes_dims_rope": (32, 32, 32, 32),
    "rope_theta": 2000,
    "eps": 1e-6,
    "guidance_embeds": False,
}
# Qwen/Qwen3-4B config.json: klein 4B's text encoder.
QWEN3_4B: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40960,
    "rope_theta": 1000000,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
# The FLUX.2 VAE (AutoencoderKLFlux2's defaults are its config: 4 blocks, 32 latent channels).
KLEIN_VAE: dict[str, Any] = {}
KLEIN_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
    "time_shift_type": "exponential",
}

FAMILY = get_family("flux2-klein")


def peak_rss_gb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024**3 if sys.platform == "darwin" else 1024**2)


def _config(rank: int, checkpointing: bool, precision: str) -> TrainConfig:
    return TrainConfig(
        model="black-forest-labs/FLUX.2-klein-base-4B",
        class_word="backpack",
        resolution=1024,
        rank=rank,
        learning_rate=1e-4,
        snr_gamma=None,
        noise_offset=0.0,
        gradient_checkpointing=checkpointing,
        mixed_precision=precision,  # type: ignore[arg-type]
        use_8bit_adam=False,
    )


def _batch(resolution: int, device: str, dtype: torch.dtype) -> Batch:
    """One cached example as the training loop holds it: patchified latents, a product mask
    over the middle half, 512 tokens of stacked Qwen3 hidden states."""
    side = resolution // 16
    latents = torch.randn(1, KLEIN_4B_TRANSFORMER["in_channels"], side, side)
    weights = torch.full((1, 1, side, side), 0.3)
    weights[..., side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = 1.0
    embeds = torch.randn(1, MAX_SEQUENCE_LENGTH, KLEIN_4B_TRANSFORMER["joint_attention_dim"])
    return Batch(
        latents=latents.to(device),
        loss_weights=weights.to(device),
        sample_weights=torch.ones(1, device=device),
        num_instance=1,
        prompt_embeds=embeds.to(device, dtype),
        pooled_prompt_embeds=None,
        input_ids=[],
        time_ids=None,
    )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_training(
    transformer: torch.nn.Module,
    *,
    device: str,
    dtype: torch.dtype,
    resolution: int,
    rank: int,
    checkpointing: bool,
    warmup: int,
    steps: int,
) -> dict[str, Any]:
    """packshot's LoRA step on `transformer`: seconds per step after `warmup`, peak memory."""
    precision = "bf16" if dtype == torch.bfloat16 else "no"
    config = _config(rank, checkpointing, precision)
    scheduler = FlowMatchEulerDiscreteScheduler(**KLEIN_SCHEDULER)
    trainer = LoraTrainer(transformer, scheduler, config, FAMILY, device=device, weight_dtype=dtype)
    batch = _batch(resolution, device, dtype)
    generator = torch.Generator("cpu").manual_seed(0)
    for _ in range(warmup):
        trainer.train_step(batch, generator)
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    losses = [trainer.train_step(batch, generator) for _ in range(steps)]
    _sync(device)
    result: dict[str, Any] = {
        "resolution": resolution,
        "rank": rank,
        "gradient_checkpointing": checkpointing,
        "seconds_per_step": round((time.perf_counter() - started) / steps, 4),
        "lora_parameters": sum(p.numel() for p in trainer.parameters),
        "final_loss": losses[-1],
    }
    if device.startswith("cuda"):
        result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def _remove_lora(transformer: torch.nn.Module) -> None:
    """Take the trained adapter out again, so the next measurement starts from the bare model."""
    transformer.delete_adapters("default")  # type: ignore[operator]
    transformer.requires_grad_(False)


def run_cpu(resolution: int, steps: int, warmup: int, rank: int) -> dict[str, Any]:
    """One double-stream and one single-stream block of klein's width, fp32, on the CPU."""
    torch.manual_seed(0)
    config = {**KLEIN_4B_TRANSFORMER, "num_layers": 1, "num_single_layers": 1}
    transformer = Flux2Transformer2DModel(**config)
    parameters = sum(p.numel() for p in transformer.parameters())
    rss_model = peak_rss_gb()
    measured = time_training(
        transformer,
        device="cpu",
        dtype=torch.float32,
        resolution=resolution,
        rank=rank,
        checkpointing=False,
        warmup=warmup,
        steps=steps,
    )
    return {
        "what": "LoRA step of one klein 4B double + single block pair, fp32, CPU",
        "threads": torch.get_num_threads(),
        "parameters": parameters,
        "peak_rss_gb_after_build": round(rss_model, 2),
        "peak_rss_gb": round(peak_rss_gb(), 2),
        **measured,
    }


def _pipeline(transformer: torch.nn.Module, device: str, distilled: bool) -> Flux2KleinPipeline:
    with torch.device(device):
        torch.manual_seed(0)
        encoder = Qwen3ForCausalLM(Qwen3Config(**QWEN3_4B)).to(torch.bfloat16).eval()
        vae = AutoencoderKLFlux2(**KLEIN_VAE).to(torch.bfloat16).eval()
    pipe = Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**KLEIN_SCHEDULER),
        vae=vae,
        text_encoder=encoder,
        tokenizer=build_qwen_tokenizer(),  # ids below Qwen's vocabulary: same shapes
        transformer=transformer,
        is_distilled=distilled,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def time_image(
    pipe: Flux2KleinPipeline, steps: int, guidance: float, size: int, references: int = 0
) -> dict[str, Any]:
    """Seconds for one `size`² image after a warm-up, and the peak GPU memory; `references`
    random photos of `size`² as reference images (the instant mode)."""
    generator = torch.Generator().manual_seed(1)
    images = [
        Image.fromarray(
            torch.randint(0, 256, (size, size, 3), generator=generator, dtype=torch.uint8).numpy()
        )
        for _ in range(references)
    ]

    def call(n: int) -> None:
        pipe(
            **({"image": images} if images else {}),
            prompt="a photo of sks backpack on a wooden table, soft light",
            height=size,
            width=size,
            num_inference_steps=n,
            guidance_scale=guidance,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="pil",
        )

    call(2)  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    call(steps)
    torch.cuda.synchronize()
    return {
        "steps": steps,
        "guidance_scale": guidance,
        "references": references,
        "seconds_per_image": round(time.perf_counter() - started, 3),
        "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }


def run_gpu(resolution: int, steps: int, warmup: int, rank: int) -> dict[str, Any]:
    """The whole klein 4B in bf16 on CUDA: training with and without gradient checkpointing,
    then generation, base and distilled."""
    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA GPU (torch.cuda.is_available() is False).")
    device = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    started = time.perf_counter()
    with torch.device(device):
        torch.manual_seed(0)
        transformer = Flux2Transformer2DModel(**KLEIN_4B_TRANSFORMER).to(torch.bfloat16)
    parameters = sum(p.numel() for p in transformer.parameters())
    result: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(),
        "transformer_parameters": parameters,
        "build_s": round(time.perf_counter() - started, 1),
        "training": [],
    }
    for checkpointing in (True, False):
        measured = time_training(
            transformer,
            device=device,
            dtype=torch.bfloat16,
            resolution=resolution,
            rank=rank,
            checkpointing=checkpointing,
            warmup=warmup,
            steps=steps,
        )
        result["training"].append(measured)
        print(json.dumps(measured), flush=True)
        _remove_lora(transformer)
        if checkpointing:
            transformer.disable_gradient_checkpointing()
        gc.collect()
        torch.cuda.empty_cache()
    transformer.eval()
    pipe = _pipeline(transformer, device, distilled=False)
    result["base"] = time_image(pipe, BASE_STEPS, BASE_GUIDANCE, resolution)
    print(json.dumps({"base": result["base"]}), flush=True)
    pipe.register_to_config(is_distilled=True)  # same weights: the cost of the 4-step recipe
    result["distilled"] = time_image(pipe, DISTILLED_STEPS, 1.0, resolution)
    print(json.dumps({"distilled": result["distilled"]}), flush=True)
    result["instant_4_references"] = time_image(pipe, DISTILLED_STEPS, 1.0, resolution, 4)
    print(json.dumps({"instant_4_references": result["instant_4_references"]}), flush=True)
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--cpu", action="store_true", help="one block pair on the CPU (default)")
    where.add_argument("--gpu", action="store_true", help="the whole klein 4B on CUDA, bf16")
    parser.add_argument("--resolution", type=int, default=None, help="px (CPU 256, GPU 1024)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (CPU 2, GPU 10)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (CPU 1, GPU 3)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (the standard preset's)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the result")
    args = parser.parse_args(argv)
    if args.gpu:
        result = run_gpu(args.resolution or 1024, args.steps or 10, args.warmup or 3, args.rank)
    else:
        result = run_cpu(args.resolution or 256, args.steps or 2, args.warmup or 1, args.rank)
    result |= {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
