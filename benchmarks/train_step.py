"""Benchmark: seconds per LoRA training step and peak memory on a full-size SD 1.5 architecture.

Builds the SD 1.5 UNet (860M parameters), VAE (84M) and CLIP ViT-L text encoder (123M) with
random weights from their configs (nothing is downloaded), then does what `packshot train`
does: encode the images and the prompt once, free the VAE and text encoder, load the UNet, add
a rank-4 LoRA and train it, timing the steps after a warm-up. It compares against the diffusers
example `train_dreambooth_lora.py` with the same settings, measured on the 2-core, 24 GB CPU
machine this project was developed on (see REFERENCE). Random weights cost the same FLOPs as
real ones, so the timing holds; only the loss values are meaningless.

    .venv/bin/python benchmarks/train_step.py                      # 512 px, 2 warm-up + 4 steps
    .venv/bin/python benchmarks/train_step.py --steps 2 --resolution 256   # a quick look

On a CUDA GPU (bf16 by default there, as `packshot train` does), with the step's share of the
GPU's peak bf16 rate (FLOPs counted by torch.utils.flop_counter over one step):

    python benchmarks/train_step.py --device cuda                               # SD 1.5, 512 px
    python benchmarks/train_step.py --device cuda --family sdxl --resolution 1024
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
from sd15 import CLIP_L, SD15_SCHEDULER, SD15_UNET, SD15_VAE, SDXL_SCHEDULER, SDXL_UNET

# diffusers examples/dreambooth/train_dreambooth_lora.py at 512 px, batch 1, rank 4, fp32 on
# this project's 2-core CPU machine (the measurement: runs of 2 and 6 steps, so that
# loading drops out), and the targets relative to it.
REFERENCE = {"seconds_per_step": 11.5, "peak_rss_gb": 8.2}
TARGET_RATIO = {"seconds_per_step": 0.70, "peak_rss_gb": 0.75}


# Dense bf16 tensor-core peaks from NVIDIA's data sheets (FLOP/s, without sparsity).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}


def peak_bf16_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def measured_matmul_flops(device: str) -> float:
    """What this GPU does on an 8192³ bf16 matrix product: the practical ceiling."""
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 10 * 2 * 8192**3 / (time.perf_counter() - start)


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024**3 if sys.platform == "darwin" else 1024**2)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument(
        "--channels-last", action="store_true", help="CPU: channels-last UNet (CUDA always is)"
    )
    parser.add_argument(
        "--compare-channels-last",
        action="store_true",
        help="CPU: also time packshot's step with the other UNet memory layout, interleaved",
    )
    parser.add_argument(
        "--profile", action="store_true", help="CUDA: write a torch.profiler table of 2 steps"
    )
    parser.add_argument("--family", choices=["sd15", "sdxl"], default="sd15")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="weights and autocast: auto is bf16 on CUDA, fp32 on the CPU (as packshot train)",
    )
    parser.add_argument(
        "--compare-bare",
        action="store_true",
        help="also time a bare diffusers-style LoRA step (plain convs, plain MSE), interleaved "
        "with packshot's, so that both see the same load on a shared machine",
    )
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).with_name("train_step.json"), help="output"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from packshot.models.device import return_freed_memory_to_os
    from packshot.models.families import CropGeometry, get_family
    from packshot.train import TrainConfig
    from packshot.train.data import EncodedSet
    from packshot.train.step import (
        LoraTrainer,
        make_batch,
        save_memory_on_feed_forward,
        save_memory_on_frozen_convs,
        save_memory_on_geglu,
    )

    if not args.device.startswith("cuda"):
        return_freed_memory_to_os()  # as `packshot train` does on the CPU
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    torch.manual_seed(0)
    device = args.device
    on_cuda = device.startswith("cuda")
    is_sdxl = args.family == "sdxl"
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}.get(
        args.precision, torch.bfloat16 if on_cuda else torch.float32
    )
    latent_size = args.resolution // 8

    # 1. The cache, as `train` builds it: SD 1.5 encodes one image through the VAE and one
    #    prompt through CLIP, then frees both before the UNet exists. SDXL (GPU figures only)
    #    draws latents and embeddings of the real shapes: its encoders never run in the loop.
    pooled = None
    ids = torch.randint(0, CLIP_L["vocab_size"] - 2, (1, 77))
    if is_sdxl:
        latents = torch.randn(1, 4, latent_size, latent_size, device=device)
        embeds = torch.randn(1, 77, SDXL_UNET["cross_attention_dim"], device=device)
        pooled = torch.randn(1, 1280, device=device)
    else:
        vae = AutoencoderKL(**SD15_VAE).to(device).eval()
        text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L)).to(device).eval()
        with torch.no_grad():
            pixels = torch.rand(1, 3, args.resolution, args.resolution, device=device) * 2 - 1
            latents = vae.encode(pixels).latent_dist.mean * SD15_VAE["scaling_factor"]
            embeds = text_encoder(ids.to(device))[0]
        del vae, text_encoder, pixels
        gc.collect()
        if on_cuda:
            torch.cuda.empty_cache()
    encoded = EncodedSet(
        latents=list(latents),
        loss_weights=list(torch.ones(1, 1, latent_size, latent_size, device=device)),
        crops=[CropGeometry.uncropped(args.resolution, args.resolution)],
        sample_weights=torch.ones(1, device=device),
        prompt_embeds=embeds,
        pooled_prompt_embeds=pooled,
        input_ids=[ids],
        num_examples=1,
        has_flips=False,
        captions=["a photo of sks backpack"],
    )
    timings["cache_s"] = time.perf_counter() - clock
    rss_after_cache = peak_rss_gb()

    # 2. The UNet (in the training dtype, as `train` loads it) with a rank-4 LoRA on its
    #    attention projections, AdamW, the real step.
    clock = time.perf_counter()
    with torch.device(device):  # built where it runs: a 2.6B CPU init takes minutes
        unet = UNet2DConditionModel(**(SDXL_UNET if is_sdxl else SD15_UNET))
    if dtype != torch.float32:
        unet.to(dtype)
    config = TrainConfig(
        model=f"{args.family}-random",
        class_word="backpack",
        resolution=args.resolution,
        rank=args.rank,
        max_train_steps=args.warmup + args.steps + 1,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    scheduler = DDPMScheduler(**(SDXL_SCHEDULER if is_sdxl else SD15_SCHEDULER))
    family = get_family(args.family)
    trainer = LoraTrainer(unet, scheduler, config, family, device=device, weight_dtype=dtype)
    if args.channels_last:
        unet.to(memory_format=torch.channels_last)
    timings["build_unet_s"] = time.perf_counter() - clock
    trainable = sum(p.numel() for p in trainer.parameters)
    batch = make_batch(
        [
            (
                encoded,
                torch.zeros(args.batch_size, dtype=torch.long),
                torch.zeros(args.batch_size, dtype=torch.bool),
            )
        ],
        device,
        family,
    )
    generator = torch.Generator().manual_seed(0)

    def sync() -> None:
        if on_cuda:
            torch.cuda.synchronize()

    # 3. Warm-up, then the timed steps (interleaved with bare steps when comparing).
    patched = [m for m in unet.modules() if "forward" in vars(m)]  # convs, GEGLUs, feed-forwards

    def bare_step() -> None:
        """The diffusers example's UNet step: plain convs and GEGLU, unweighted MSE, same
        optimizer."""
        for module in patched:
            del module.forward  # back to the class's forward
        noise, timesteps = trainer.draw_noise(batch, generator)
        noisy = trainer.noise_scheduler.add_noise(batch.latents, noise, timesteps)
        pred = unet(noisy, timesteps, batch.prompt_embeds, return_dict=False)[0]
        torch.nn.functional.mse_loss(pred.float(), noise.float()).backward()
        torch.nn.utils.clip_grad_norm_(trainer.parameters, 1.0)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        save_memory_on_frozen_convs(unet)
        save_memory_on_geglu(unet)
        save_memory_on_feed_forward(unet)

    for _ in range(args.warmup):
        trainer.train_step(batch, generator)
    sync()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    durations, bare, other_layout = [], [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        trainer.train_step(batch, generator)
        sync()
        durations.append(time.perf_counter() - start)
        if args.compare_channels_last and not on_cuda:
            flip = torch.contiguous_format if args.channels_last else torch.channels_last
            unet.to(memory_format=flip)
            start = time.perf_counter()
            trainer.train_step(batch, generator)
            other_layout.append(time.perf_counter() - start)
            back = torch.channels_last if args.channels_last else torch.contiguous_format
            unet.to(memory_format=back)
        if args.compare_bare and not is_sdxl:
            start = time.perf_counter()
            bare_step()
            sync()
            bare.append(time.perf_counter() - start)
    flops = None
    if on_cuda:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            trainer.train_step(batch, generator)
        flops = counter.get_total_flops()
    profile_table = None
    if on_cuda and args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(2):
                trainer.train_step(batch, generator)
            sync()
        events = prof.key_averages()
        try:
            profile_table = events.table(sort_by="self_device_time_total", row_limit=25)
        except (AttributeError, KeyError):  # older torch names it after CUDA
            profile_table = events.table(sort_by="self_cuda_time_total", row_limit=25)
        args.json.with_suffix(".profile.txt").write_text(profile_table)
        busy_us = sum(getattr(e, "self_device_time_total", 0) for e in events)
        profile_summary = {
            "gpu_busy_ms_per_step": round(busy_us / 2 / 1e3, 1),
            "cpu_ms_per_step": round(sum(e.self_cpu_time_total for e in events) / 2 / 1e3, 1),
        }

    seconds = sum(durations) / len(durations)
    peak = peak_rss_gb()
    result: dict[str, Any] = {
        "benchmark": "train_step",
        "resolution": args.resolution,
        "rank": args.rank,
        "batch_size": args.batch_size,
        "family": args.family,
        "dtype": str(dtype).removeprefix("torch."),
        "device": device,
        "threads": torch.get_num_threads(),
        "gradient_checkpointing": args.gradient_checkpointing,
        "unet_parameters": sum(p.numel() for p in unet.parameters()),
        "trainable_parameters": trainable,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "seconds_per_step": round(seconds, 3),
        "step_seconds": [round(d, 3) for d in durations],
        "peak_rss_gb": round(peak, 3),
        "peak_rss_after_cache_gb": round(rss_after_cache, 3),
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        # other processes on the same cores slow the steps down: read timings with this
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
    }
    if bare:
        # Same process, same load: packshot's step against the bare UNet step that the issue
        # puts at ~7.8 s on a quiet machine (the diffusers script's 11.5 s is this plus its
        # per-step VAE and text-encoder passes and data loading).
        result["bare_seconds_per_step"] = round(sum(bare) / len(bare), 3)
        result["bare_step_seconds"] = [round(d, 3) for d in bare]
        result["ratio_to_bare_step"] = round(seconds / result["bare_seconds_per_step"], 3)
    if other_layout:
        # Same process, same load: the step with the other memory layout of the UNet.
        key = "nchw" if args.channels_last else "channels_last"
        result[f"{key}_seconds_per_step"] = round(sum(other_layout) / len(other_layout), 3)
        result[f"{key}_step_seconds"] = [round(d, 3) for d in other_layout]
        result[f"ratio_to_{key}"] = round(seconds / result[f"{key}_seconds_per_step"], 3)
    if on_cuda:
        name = torch.cuda.get_device_name(device)
        result["gpu"] = name
        result["peak_cuda_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1024**3, 3)
        result["flops_per_step"] = flops
        achieved = flops / seconds if flops else None
        result["achieved_tflops"] = round(achieved / 1e12, 1) if achieved else None
        spec = peak_bf16_flops(name)
        if achieved and spec:
            result["peak_bf16_tflops_spec"] = spec / 1e12
            result["share_of_spec_peak"] = round(achieved / spec, 3)
        matmul = measured_matmul_flops(device)
        result["matmul_bf16_tflops_measured"] = round(matmul / 1e12, 1)
        if achieved:
            result["share_of_measured_matmul"] = round(achieved / matmul, 3)
        result["sdpa_backends"] = {
            "flash": torch.backends.cuda.flash_sdp_enabled(),
            "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
        }
        if profile_table is not None:
            result["profile"] = profile_summary
        result["attention_processors"] = sorted(
            {type(p).__name__ for p in unet.attn_processors.values()}
        )
    cpu_reference = not on_cuda and not is_sdxl and args.batch_size == 1
    if args.resolution == 512 and args.rank == 4 and cpu_reference:
        result["reference"] = REFERENCE
        result["ratio"] = {k: round(result[k] / REFERENCE[k], 3) for k in REFERENCE}
        result["target_ratio"] = TARGET_RATIO
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"{seconds:.3f} s/step, {args.family} at {args.resolution} px (rank {args.rank}, batch "
        f"{args.batch_size}, {result['dtype']} on {device})"
    )
    if on_cuda:
        print(
            f"peak CUDA memory {result['peak_cuda_memory_gb']:.2f} GB; "
            f"{result['achieved_tflops']} TFLOP/s = {result.get('share_of_spec_peak')} of the "
            f"spec bf16 peak, {result.get('share_of_measured_matmul')} of a measured matmul"
        )
    print(f"peak RSS {peak:.2f} GB")
    if "ratio" in result:
        print(
            f"vs the issue's figures for diffusers' train_dreambooth_lora.py (11.5 s, 8.2 GB, "
            f"from another machine: benchmarks/compare_diffusers.py measures the script here): "
            f"{result['ratio']['seconds_per_step']:.2f}× time, "
            f"{result['ratio']['peak_rss_gb']:.2f}× memory"
        )
    if bare:
        print(
            f"bare diffusers-style UNet step, same run: {result['bare_seconds_per_step']:.2f} s "
            f"(packshot's step {result['ratio_to_bare_step']:.2f}× of it)"
        )
    for key in ("nchw", "channels_last"):
        if f"{key}_seconds_per_step" in result:
            print(
                f"packshot's step with a {key} UNet, same run: "
                f"{result[f'{key}_seconds_per_step']:.2f} s"
            )
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
