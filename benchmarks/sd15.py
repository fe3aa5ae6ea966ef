"""The full-size SD 1.5 (and SDXL UNet) architectures with random weights, for the benchmarks.

The configs are those of runwayml/stable-diffusion-v1-5 (unet/, vae/, text_encoder/,
scheduler/ config.json): the FLOPs and memory of the real model, with nothing downloaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SD15_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
}
SD15_VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
CLIP_L = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}
SD15_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
}
# What the pipeline's own (PNDM) scheduler adds to SD15_SCHEDULER in the real checkpoint.
PNDM_EXTRA = {"set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1}


def build_sd15_pipeline():  # -> StableDiffusionPipeline
    """A random-weight, full-size SD 1.5 pipeline with the real CLIP tokenizer (seed 0)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from packshot.models.standins import build_clip_tokenizer

    torch.manual_seed(0)
    return StableDiffusionPipeline(
        vae=AutoencoderKL(**SD15_VAE),
        text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L)),
        tokenizer=build_clip_tokenizer(),
        unet=UNet2DConditionModel(**SD15_UNET),
        scheduler=PNDMScheduler(**SD15_SCHEDULER, **PNDM_EXTRA),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_sd15_pipeline(out_dir: Path, pipe=None) -> Path:
    """Save `pipe` (default: a new one) as a diffusers folder at `out_dir`, atomically."""
    from packshot.models.standins import clip_tokenizer_files

    pipe = pipe if pipe is not None else build_sd15_pipeline()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    clip_tokenizer_files(tmp / "tokenizer")  # vocab.json + merges.txt, as real checkpoints
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (2.57B parameters), for the GPU
# figures of `train_step.py --family sdxl`. Its text encoders (CLIP-L and OpenCLIP bigG) only
# feed the cache, so that benchmark draws embeddings of their shapes instead of building them.
SDXL_UNET = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}
SDXL_SCHEDULER = {**SD15_SCHEDULER}  # the same scaled-linear betas and epsilon prediction
