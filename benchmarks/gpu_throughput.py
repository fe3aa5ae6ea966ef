"""Benchmark: GPU throughput of shooting and training, eager against packshot's fast path.

On a CUDA GPU, with random weights of the real shapes (SDXL base 1.0 and SD 1.5 configs from
`sd15.py`: the same FLOPs and memory as the real models, nothing downloaded), through
packshot's own code: `models.speed.make_fast` (the function `load_pipeline` calls for
`--compile`/`--fp8`), `shoot.render.configured` (the product's LoRA set, merged on a fast
pipeline) and `shoot.render.render_batch` (the timed pipeline call), and `train.step.LoraTrainer`.

Sections (each in its own process, so each has its own peak memory and a crash loses one):

- `sdxl_shoot`: SDXL 1024 px, 30 steps, DPM++ 2M Karras, CFG, a rank-8 product LoRA: eager
  batch 1 (torch's SDPA order, then cuDNN attention first), then the fast path at batch 1 and
  batch 4; the time to the first image cold (compiling), on a warm worker for the same product
  and for another product (its LoRA swapped in);
- `sd15_shoot`: the same for SD 1.5 at 512 px;
- `sdxl_fp8`: the fast path with fp8 weights at batch 4, and how far its pixels are from the
  bf16 fast path's on the same seeds;
- `sdxl_train`: a LoRA training step at 1024 px, batch 1 and 4, eager and compiled: seconds per
  step, images per second, FLOPs (counted by torch.utils.flop_counter) and the share of the
  card's bf16 peak (the data sheet's and a measured 8192³ matmul);
- `warm_start`: a new process whose torch.compile cache is warm (the previous sections filled
  it): from process start to the first SDXL image.

    python benchmarks/gpu_throughput.py                     # every section, JSON beside this file
    python benchmarks/gpu_throughput.py --sections sd15_shoot --json /tmp/g.json
    python benchmarks/gpu_throughput.py --smoke             # tiny shapes, CPU-friendly: the logic

Each figure is printed beside the eager batch-1 one measured in the same run. The cost per
image is at `--gpu-price` GBP per hour against a studio's £10 a photo.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sd15 import CLIP_L, SD15_SCHEDULER, SD15_UNET, SD15_VAE, SDXL_SCHEDULER, SDXL_UNET
from train_step import measured_matmul_flops, peak_bf16_flops

HERE = Path(__file__).resolve().parent
# In the order they run: what the targets need first.
SECTIONS = ("sdxl_shoot", "sdxl_train", "sdxl_fp8", "warm_start", "sd15_shoot")
# Seconds each may take at most (measured on an H200: sdxl_shoot 88 s; sdxl_fp8 needed more
# than 70 s, so it gets more).
TIMEOUTS = {"sdxl_shoot": 150, "sdxl_train": 150, "sdxl_fp8": 150, "warm_start": 60}
# The bf16 fast path's batch-4 images, for the fp8 section's comparison (same seeds).
BF16_IMAGES = Path(tempfile.gettempdir()) / "packshot-gpu-bench-bf16-bs4.npy"
_partial: list[Path] = []  # a child's JSON file, rewritten as it measures


def record(out: dict[str, Any]) -> None:
    """Write what a section measured so far: a section stopped by its timeout keeps it."""
    for path in _partial:
        path.write_text(json.dumps(out, indent=2, default=str) + "\n")


PROMPT = "a photo of sks backpack on a marble kitchen counter, soft morning light"
NEGATIVE = "blurry, low quality"
TARGET_SDXL_S_PER_IMAGE_BS4 = 1.0  # the issue's, on an H100/H200-class card
TARGET_TRAIN_PEAK_SHARE_BS4 = 0.30

# stabilityai/stable-diffusion-xl-base-1.0: text_encoder_2 (OpenCLIP bigG) and vae configs.
CLIP_BIG_G = {
    **CLIP_L,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}
SDXL_VAE = {**SD15_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}


def _smoke_shapes() -> dict[str, Any]:
    """Tiny versions of the configs (same structure), for a run of the logic on a CPU."""
    small_clip = {
        **CLIP_L,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "projection_dim": 32,
    }
    vae = {**SD15_VAE, "block_out_channels": [8, 8, 16, 16], "norm_num_groups": 8}
    return {
        "sd15_unet": {
            **SD15_UNET,
            "block_out_channels": [16, 32, 32, 32],
            "norm_num_groups": 8,
            "cross_attention_dim": 32,
            "attention_head_dim": 4,
        },
        "sdxl_unet": {
            **SDXL_UNET,
            "block_out_channels": [16, 32, 32],
            "norm_num_groups": 8,
            "cross_attention_dim": 64,
            "attention_head_dim": [2, 4, 4],
            "transformer_layers_per_block": [1, 1, 2],
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 6 * 8 + 32,
        },
        "clip_l": small_clip,
        "clip_g": {**small_clip, "hidden_act": "gelu"},
        "vae": vae,
        "sdxl_vae": {**vae, "scaling_factor": 0.13025, "force_upcast": True},
    }


def _shapes(smoke: bool) -> dict[str, Any]:
    if smoke:
        return _smoke_shapes()
    return {
        "sd15_unet": SD15_UNET,
        "sdxl_unet": SDXL_UNET,
        "clip_l": CLIP_L,
        "clip_g": CLIP_BIG_G,
        "vae": SD15_VAE,
        "sdxl_vae": SDXL_VAE,
    }


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_gb() -> float | None:
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 1024**3, 2)


def build_pipeline(family: str, device: str, dtype: torch.dtype, smoke: bool) -> Any:
    """A random-weight pipeline of `family`'s real shapes, built on `device` in `dtype`."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        PNDMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from packshot.models.standins import build_clip_tokenizer

    shapes = _shapes(smoke)
    torch.manual_seed(0)
    with torch.device(device):  # built where it runs: a 2.6B-parameter CPU init takes minutes
        if family == "sdxl":
            parts: dict[str, Any] = {
                "vae": AutoencoderKL(**shapes["sdxl_vae"]),
                "text_encoder": CLIPTextModel(CLIPTextConfig(**shapes["clip_l"])),
                "text_encoder_2": CLIPTextModelWithProjection(CLIPTextConfig(**shapes["clip_g"])),
                "unet": UNet2DConditionModel(**shapes["sdxl_unet"]),
            }
        else:
            parts = {
                "vae": AutoencoderKL(**shapes["vae"]),
                "text_encoder": CLIPTextModel(CLIPTextConfig(**shapes["clip_l"])),
                "unet": UNet2DConditionModel(**shapes["sd15_unet"]),
            }
    for part in parts.values():
        part.to(dtype).eval()
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline(
            **parts,
            tokenizer=build_clip_tokenizer(),
            tokenizer_2=build_clip_tokenizer(pad_token="!"),
            scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER, steps_offset=1),
        ).to(device)
    else:
        pipe = StableDiffusionPipeline(
            **parts,
            tokenizer=build_clip_tokenizer(),
            scheduler=PNDMScheduler(**SD15_SCHEDULER, skip_prk_steps=True, steps_offset=1),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        ).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def write_product_loras(pipe: Any, family_name: str, root: Path, rank: int) -> list[Path]:
    """Two product LoRAs (as `packshot train` writes them, non-zero) for `pipe`'s UNet; the
    UNet is left without adapters."""
    from packshot.models.families import get_family
    from packshot.train.exports import save_diffusers_lora
    from packshot.train.lora_io import add_lora, lora_config

    family = get_family(family_name)
    add_lora(pipe.unet, lora_config(rank, family.denoiser_lora_targets))
    paths = []
    for name in ("product-a", "product-b"):
        with torch.no_grad():
            for key, param in pipe.unet.named_parameters():
                if "lora_B" in key:
                    param.normal_(std=0.01)
        path = root / name / "pytorch_lora_weights.safetensors"
        path.parent.mkdir(parents=True)
        save_diffusers_lora(path, family, {"unet": pipe.unet})
        paths.append(path)
    pipe.unet.unload_lora()
    return paths


def shoot_section(family: str, *, smoke: bool, fp8: bool = False) -> dict[str, Any]:
    """Eager and fast shooting of `family` (see the module's docstring)."""
    from packshot.config import default_cache_dir
    from packshot.models import speed
    from packshot.models.device import pick_device, pick_dtype
    from packshot.shoot import render

    device = pick_device(None)
    dtype = pick_dtype(device)
    size = (64 if smoke else 1024) if family == "sdxl" else (64 if smoke else 512)
    steps = 3 if smoke else 30
    rank = 8  # the `standard` preset's
    out: dict[str, Any] = {"family": family, "size": size, "steps": steps, "lora_rank": rank}
    clock = time.perf_counter()
    pipe = build_pipeline(family, device, dtype, smoke)
    root = Path(tempfile.mkdtemp(prefix="packshot-gpu-bench-"))
    paths = write_product_loras(pipe, family, root, rank)
    out["build_s"] = round(time.perf_counter() - clock, 1)
    loras = [
        render.LoraWeights(render.PRODUCT_ADAPTER, path, 1.0, path.parent.name) for path in paths
    ]
    scheduler = render.get_scheduler("dpmpp_2m_karras")

    def shoot(product: int, batch: int, seed: int = 0, n_steps: int = steps) -> tuple[list, float]:
        with render.configured(
            pipe,
            scheduler,
            [loras[product]],
            model=family,
            num_inference_steps=n_steps,
            guidance_scale=7.0,
        ):
            return render.render_batch(
                pipe,
                prompt=PROMPT,
                negative_prompt=NEGATIVE,
                seeds=list(range(seed, seed + batch)),
                width=size,
                height=size,
                num_inference_steps=n_steps,
                guidance_scale=7.0,
            )

    def timed(label: str, product: int, batch: int, **extra: Any) -> list:
        _reset_peak()
        images, seconds = shoot(product, batch)
        out[label] = {
            "batch": batch,
            "seconds": round(seconds, 3),
            "s_per_image": round(seconds / batch, 3),
            "peak_gb": _peak_gb(),
            **extra,
        }
        print(f"  {family} {label}: {seconds / batch:.3f} s/image (batch {batch})", flush=True)
        record(out)
        return images

    # 1. Eager, as diffusers loads it: a short warm-up (cuDNN's algorithm search), then batch 1
    #    with torch's own attention order and with cuDNN attention first.
    if not fp8:
        shoot(0, 1, n_steps=2)
        eager_images = timed("eager_bs1", 0, 1)
        if device.startswith("cuda"):
            from torch.nn.attention import SDPBackend, sdpa_kernel

            order = [
                SDPBackend.CUDNN_ATTENTION,
                SDPBackend.FLASH_ATTENTION,
                SDPBackend.EFFICIENT_ATTENTION,
                SDPBackend.MATH,
            ]
            with sdpa_kernel(order, set_priority=True):
                timed("eager_bs1_cudnn_attention", 0, 1)
        del eager_images

    # 2. The fast path: merged LoRA, fused QKV, channels-last, attention, compile (+ fp8).
    speedups = speed.Speedups(compile=True, fp8=fp8)
    clock = time.perf_counter()
    make_fast_notes = speed.make_fast(
        pipe, "unet", speedups, device=device, cache_dir=default_cache_dir()
    )
    out["make_fast_s"] = round(time.perf_counter() - clock, 2)
    out["applied"] = speed.applied(pipe)
    out["notes"] = make_fast_notes
    out["compile_cache"] = os.environ.get("TORCHINDUCTOR_CACHE_DIR")

    if not fp8:
        clock = time.perf_counter()
        shoot(0, 1)
        out["cold_first_image_s"] = round(time.perf_counter() - clock, 2)  # includes compiling
        record(out)
        timed("fast_bs1", 0, 1)
    clock = time.perf_counter()
    shoot(0, 4)
    out["bs4_first_call_s"] = round(time.perf_counter() - clock, 2)  # compiles for batch 4
    fast_bs4 = np.stack([np.asarray(image, dtype=np.uint8) for image in timed("fast_bs4", 0, 4)])
    out["notes"] = speed.speed_notes(pipe)
    out["applied"] = speed.applied(pipe)
    record(out)
    if fp8:  # how far fp8's pixels are from bf16's, same seeds
        if BF16_IMAGES.exists():
            diff = np.abs(fast_bs4.astype(np.float32) - np.load(BF16_IMAGES).astype(np.float32))
            out["pixels_vs_bf16"] = {
                "mean_abs_8bit": round(float(diff.mean()), 2),
                "p99_abs_8bit": round(float(np.percentile(diff, 99)), 1),
            }
        return out
    np.save(BF16_IMAGES, fast_bs4)

    # 3. A warm worker: the next shoot of the same product, then another product's.
    for label, product in (
        ("warm_same_product_first_image_s", 0),
        ("warm_new_product_first_image_s", 1),
    ):
        _sync()
        clock = time.perf_counter()
        shoot(product, 1)
        out[label] = round(time.perf_counter() - clock, 2)
        record(out)
    out["notes"] = speed.speed_notes(pipe)
    out["applied"] = speed.applied(pipe)
    return out


def train_section(smoke: bool) -> dict[str, Any]:
    """SDXL LoRA training steps at 1024 px, batch 1 and 4, eager and compiled."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from packshot.models.device import pick_device, pick_dtype
    from packshot.models.families import CropGeometry, get_family
    from packshot.train import TrainConfig
    from packshot.train.data import EncodedSet
    from packshot.train.step import LoraTrainer, make_batch

    device = pick_device(None)
    dtype = pick_dtype(device)
    shapes = _shapes(smoke)
    resolution = 64 if smoke else 1024
    latent = resolution // 8
    family = get_family("sdxl")
    cross = shapes["sdxl_unet"]["cross_attention_dim"]
    pooled_dim = shapes["clip_g"]["projection_dim"]
    out: dict[str, Any] = {"family": "sdxl", "resolution": resolution, "rank": 8}

    def encoded(batch: int) -> Any:
        return EncodedSet(
            latents=list(torch.randn(batch, 4, latent, latent, device=device)),
            loss_weights=list(torch.ones(batch, 1, latent, latent, device=device)),
            crops=[CropGeometry.uncropped(resolution, resolution)] * batch,
            sample_weights=torch.ones(batch, device=device),
            prompt_embeds=torch.randn(batch, 77, cross, device=device),
            pooled_prompt_embeds=torch.randn(batch, pooled_dim, device=device),
            input_ids=[torch.zeros(batch, 77, dtype=torch.long)],
            num_examples=batch,
            has_flips=False,
            captions=["a photo of sks backpack"] * batch,
        )

    # Eager at batch 1 and 4; compiled at batch 4 (the target), after eager's FLOPs.
    for compiled, batch_sizes in ((False, (1, 4)), (True, (4,))):
        torch.manual_seed(0)
        with torch.device(device):
            unet = UNet2DConditionModel(**shapes["sdxl_unet"])
        unet.to(dtype)
        config = TrainConfig(
            model="sdxl-random",
            class_word="backpack",
            resolution=resolution,
            rank=8,
            max_train_steps=100,
            compile=compiled,
        )
        trainer = LoraTrainer(
            unet, DDPMScheduler(**SDXL_SCHEDULER), config, family, device=device, weight_dtype=dtype
        )
        generator = torch.Generator().manual_seed(0)
        for batch_size in batch_sizes:
            data = encoded(batch_size)
            batch = make_batch(
                [(data, torch.arange(batch_size), torch.zeros(batch_size, dtype=torch.bool))],
                device,
                family,
            )
            label = f"{'compiled' if compiled else 'eager'}_bs{batch_size}"
            clock = time.perf_counter()
            trainer.train_step(batch, generator)  # warm-up (and compile)
            _sync()
            first = time.perf_counter() - clock
            trainer.train_step(batch, generator)
            _sync()
            _reset_peak()
            n = 2 if smoke else 5
            clock = time.perf_counter()
            for _ in range(n):
                trainer.train_step(batch, generator)
            _sync()
            seconds = (time.perf_counter() - clock) / n
            row: dict[str, Any] = {
                "batch": batch_size,
                "s_per_step": round(seconds, 3),
                "images_per_s": round(batch_size / seconds, 2),
                "first_step_s": round(first, 2),
                "peak_gb": _peak_gb(),
            }
            if not compiled:
                counter = FlopCounterMode(display=False)
                with counter:
                    trainer.train_step(batch, generator)
                row["flops_per_step"] = counter.get_total_flops()
            else:
                row["flops_per_step"] = out[f"eager_bs{batch_size}"]["flops_per_step"]
                row["notes"] = list(trainer.notes) + (
                    [] if trainer.compiled else ["compile was undone"]
                )
            achieved = row["flops_per_step"] / seconds
            row["achieved_tflops"] = round(achieved / 1e12, 1)
            if device.startswith("cuda"):
                spec = peak_bf16_flops(torch.cuda.get_device_name())
                if spec:
                    row["share_of_spec_peak"] = round(achieved / spec, 3)
            out[label] = row
            record(out)
            print(
                f"  train {label}: {seconds:.3f} s/step, {row['images_per_s']} img/s, "
                f"{row['achieved_tflops']} TFLOP/s, share {row.get('share_of_spec_peak')}",
                flush=True,
            )
        del trainer, unet
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if torch.cuda.is_available():
        out["matmul_bf16_tflops_measured"] = round(measured_matmul_flops("cuda") / 1e12, 1)
        for row in out.values():
            if isinstance(row, dict) and "achieved_tflops" in row:
                row["share_of_measured_matmul"] = round(
                    row["achieved_tflops"] / out["matmul_bf16_tflops_measured"], 3
                )
    return out


def warm_start_section(smoke: bool, started: float) -> dict[str, Any]:
    """From this process's start to its first SDXL image, with the compile cache warm."""
    from packshot.config import default_cache_dir
    from packshot.models import speed
    from packshot.models.device import pick_device, pick_dtype
    from packshot.shoot import render

    device = pick_device(None)
    pipe = build_pipeline("sdxl", device, pick_dtype(device), smoke)
    built = time.perf_counter()
    speed.make_fast(
        pipe, "unet", speed.Speedups(compile=True), device=device, cache_dir=default_cache_dir()
    )
    size, steps = (64, 3) if smoke else (1024, 30)
    with render.configured(
        pipe,
        render.get_scheduler("dpmpp_2m_karras"),
        [],
        model="sdxl",
        num_inference_steps=steps,
        guidance_scale=7.0,
    ):
        render.render_batch(
            pipe,
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            seeds=[0],
            width=size,
            height=size,
            num_inference_steps=steps,
            guidance_scale=7.0,
        )
    done = time.perf_counter()
    return {
        "process_start_to_first_image_s": round(done - started, 1),
        "build_s": round(built - started, 1),
        "make_fast_and_first_image_s": round(done - built, 1),
        "applied": speed.applied(pipe),
        "notes": speed.speed_notes(pipe),
    }


def run_section(name: str, smoke: bool, started: float) -> dict[str, Any]:
    if name == "sdxl_shoot":
        result = shoot_section("sdxl", smoke=smoke)
    elif name == "sd15_shoot":
        result = shoot_section("sd15", smoke=smoke)
    elif name == "sdxl_fp8":
        result = shoot_section("sdxl", smoke=smoke, fp8=True)
    elif name == "sdxl_train":
        result = train_section(smoke)
    elif name == "warm_start":
        result = warm_start_section(smoke, started)
    else:
        raise SystemExit(f"unknown section {name}; choose from {', '.join(SECTIONS)}")
    return result


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
    }
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            info["driver"] = smi.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    return info


def summarise(results: dict[str, Any], gpu_price: float) -> list[str]:
    """The table the README quotes, one line per figure, with the eager batch-1 beside it."""
    from packshot.shoot.sheet import STUDIO_PRICE_PER_PHOTO

    lines = []
    for name in ("sdxl_shoot", "sd15_shoot", "sdxl_fp8"):
        section = results.get(name) or {}
        eager = (results.get(name.replace("fp8", "shoot")) or {}).get("eager_bs1", {})
        for label in ("eager_bs1", "eager_bs1_cudnn_attention", "fast_bs1", "fast_bs4"):
            if label not in section:
                continue
            row = section[label]
            cost = row["s_per_image"] / 3600 * gpu_price
            lines.append(
                f"{name} {section['size']}px {section['steps']} steps {label}: "
                f"{row['s_per_image']:.3f} s/image (eager bs1 {eager.get('s_per_image')} s), "
                f"peak {row['peak_gb']} GB, "
                f"£{cost:.4f}/image at £{gpu_price}/h vs £{STUDIO_PRICE_PER_PHOTO:.0f}"
            )
        if "warm_new_product_first_image_s" in section:
            lines.append(
                f"{name} first image: cold {section['cold_first_image_s']} s, warm same product "
                f"{section['warm_same_product_first_image_s']} s, warm new product "
                f"{section['warm_new_product_first_image_s']} s"
            )
        if "pixels_vs_bf16" in section:
            lines.append(f"{name} pixels against bf16, same seeds: {section['pixels_vs_bf16']}")
        if section.get("error"):
            lines.append(f"{name}: {section['error']}")
    train = results.get("sdxl_train") or {}
    for label in ("eager_bs1", "eager_bs4", "compiled_bs4"):
        if label in train:
            row = train[label]
            lines.append(
                f"sdxl train {train['resolution']}px {label}: {row['s_per_step']} s/step, "
                f"{row['images_per_s']} img/s, {row['achieved_tflops']} TFLOP/s = "
                f"{row.get('share_of_spec_peak')} of the spec bf16 peak, peak {row['peak_gb']} GB"
            )
    if train.get("error"):
        lines.append(f"sdxl_train: {train['error']}")
    warm = results.get("warm_start") or {}
    if "process_start_to_first_image_s" in warm:
        lines.append(
            f"warm start (compile cache warm): {warm['process_start_to_first_image_s']} s from "
            f"process start to the first SDXL image ({warm['build_s']} s building the model)"
        )
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--section", help=argparse.SUPPRESS)  # one section, in this process
    parser.add_argument("--smoke", action="store_true", help="tiny shapes: the logic on a CPU")
    parser.add_argument("--gpu-price", type=float, default=None, help="GBP per GPU hour")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="output file (default: gpu_throughput.json beside this script; .smoke.json with "
        "--smoke, so a CPU run never overwrites the GPU figures)",
    )
    parser.add_argument(
        "--deadline", type=float, default=None, help="seconds for all sections: skip the rest"
    )
    parser.add_argument(
        "--append", action="store_true", help="add to the sections already in --json"
    )
    args = parser.parse_args(argv)
    if args.json is None:
        args.json = HERE / ("gpu_throughput.smoke.json" if args.smoke else "gpu_throughput.json")

    if args.section:  # a child: one section, its JSON to --json
        _partial.append(args.json)
        result = run_section(args.section, args.smoke, started)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        return result

    from packshot.shoot.sheet import GPU_PRICE_PER_HOUR

    gpu_price = args.gpu_price if args.gpu_price is not None else GPU_PRICE_PER_HOUR
    results: dict[str, Any] = {"benchmark": "gpu_throughput", "machine": machine()}
    if args.append and args.json.exists():
        results = {**json.loads(args.json.read_text()), "machine": results["machine"]}
    results["gpu_price_per_hour_gbp"] = gpu_price
    results["targets"] = {
        "sdxl_1024_30_steps_s_per_image_bs4": TARGET_SDXL_S_PER_IMAGE_BS4,
        "train_share_of_bf16_peak_bs4": TARGET_TRAIN_PEAK_SHARE_BS4,
    }
    if args.smoke:
        results["smoke"] = True
    for name in [s for s in args.sections.split(",") if s]:
        print(f"[{name}]", flush=True)
        part = args.json.with_name(f"{args.json.stem}.{name}.json")
        command = [sys.executable, __file__, "--section", name, "--json", str(part)]
        if args.smoke:
            command.append("--smoke")
        clock = time.perf_counter()
        limit = TIMEOUTS.get(name, 120) * (3 if args.smoke else 1)
        if args.deadline is not None:
            left = args.deadline - (clock - started)
            if left < 30:
                results[name] = {"error": "not run: out of time"}
                continue
            limit = min(limit, int(left))
        error = None
        try:
            done = subprocess.run(command, timeout=limit)
            if done.returncode != 0:
                error = f"exit {done.returncode}"
        except subprocess.TimeoutExpired:
            error = f"stopped at its {limit} s limit"
        results[name] = json.loads(part.read_text()) if part.exists() else {}
        if error:
            results[name]["error"] = error  # what it measured before that is kept
        results[name]["wall_s"] = round(time.perf_counter() - clock, 1)
        part.unlink(missing_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")  # after each: partial is kept
    results["summary"] = summarise(results, gpu_price)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(results["summary"]))
    print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
