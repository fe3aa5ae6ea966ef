"""Z-Image: a single-stream flow-matching transformer (ZImageTransformer2DModel) conditioned by a
Qwen3 text encoder, trained with the rectified-flow objective (`flow.FlowMatchingFamily`).

Everything packshot does differently for it is here: the prompt through Qwen3's chat template
(thinking on) and its penultimate hidden layer, kept at each prompt's own length; the FLUX.1
VAE's shifted and scaled latents; the transformer's call on a list of latents and prompts, its
time running from 1 (noise) to 0 and its answer negated (noise - x); the LoRA targets and the
ComfyUI file's names. Matched to diffusers examples/dreambooth/train_dreambooth_lora_z_image.py
and ZImagePipeline. torch and diffusers are imported inside the methods: registering stays light.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packshot.models.families.base import register_family
from packshot.models.families.flow import (
    FlowMatchingFamily,
    qwen_prompt_token_limit,
    qwen_tokenize,
)

# ZImagePipeline's defaults: prompts padded to 512 tokens, Qwen3's chat template with thinking
# on, the embedding its second-to-last hidden layer (2560 wide for Qwen3-4B).
MAX_SEQUENCE_LENGTH = 512

# The diffusers example's default `--lora_layers`: every attention's q, k, v and output, in the
# main layers and in the noise and context refiners.
TRANSFORMER_LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]

# The step-distilled 6B: `--fast`'s model, and a base model of its own.
TURBO_MODEL = "Tongyi-MAI/Z-Image-Turbo"

_PEFT_KEY = re.compile(r"^(.*)\.lora_([AB])\.weight$")


@dataclass(frozen=True)
class ZImage(FlowMatchingFamily):
    """Z-Image 6B: the foundation model (guidance, ~50 steps) or Turbo (8 steps, no guidance)."""

    def is_step_distilled(self, model_dir: Path) -> bool:
        """Z-Image-Turbo, by its name: its folder holds the foundation model's very configs
        (model_index.json has no `is_distilled`), so the folder's name says it, or for a Hub
        download the repo's (`…/models--Tongyi-MAI--Z-Image-Turbo/snapshots/<revision>`), as
        `shoot.render.is_turbo` tells SD-Turbo."""
        name = model_dir.name
        if model_dir.parent.name == "snapshots":
            name = model_dir.parent.parent.name
        return "turbo" in name.lower()

    # -- parts -----------------------------------------------------------------------------

    @property
    def text_encoder_names(self) -> tuple[str, ...]:
        return ("text_encoder",)

    def load_text_parts(self, model_dir: Path, dtype: Any) -> tuple[list[Any], list[Any], Any]:
        """The Qwen2 tokenizer, the Qwen3 encoder and the FLUX.1 VAE (fp32: it runs once)."""
        import torch
        from diffusers import AutoencoderKL
        from transformers import Qwen3Model

        from packshot.models.preprocessors import load_preprocessor

        tokenizer = load_preprocessor(model_dir / "tokenizer", "AutoTokenizer")
        encoder = Qwen3Model.from_pretrained(model_dir, subfolder="text_encoder", dtype=dtype)
        vae = AutoencoderKL.from_pretrained(model_dir, subfolder="vae", dtype=torch.float32)
        return [tokenizer], [encoder], vae

    def load_denoiser(self, model_dir: Path, dtype: Any) -> tuple[Any, Any]:
        """The transformer and the flow-matching scheduler whose (shifted) sigmas training
        draws from, as the example's `noise_scheduler_copy`."""
        from diffusers import FlowMatchEulerDiscreteScheduler, ZImageTransformer2DModel

        transformer = ZImageTransformer2DModel.from_pretrained(
            model_dir, subfolder="transformer", dtype=dtype
        )
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(
            model_dir, subfolder="scheduler"
        )
        return transformer, scheduler

    def encode_images(self, vae: Any, pixels: Any) -> Any:
        """(b, 16, R/8, R/8): the posterior's mode, shifted and scaled by the VAE's factors, as
        the example trains and the pipeline decodes."""
        latents = vae.encode(pixels).latent_dist.mode()
        return (latents - vae.config.shift_factor) * vae.config.scaling_factor

    # -- prompts ---------------------------------------------------------------------------

    def tokenize(self, tokenizers: Sequence[Any], captions: Sequence[str]) -> list[Any]:
        """[(n, 512) token ids, (n, 512) attention mask] of the prompts in the chat
        template, thinking on: the mask also says how long each prompt is, which the
        transformer sees."""
        (tokenizer,) = tokenizers
        return qwen_tokenize(tokenizer, captions, MAX_SEQUENCE_LENGTH, thinking=True)

    def encode_prompt(
        self, text_encoders: Sequence[Any], input_ids: Sequence[Any]
    ) -> tuple[Any, Any | None]:
        """((n, 512, hidden) Qwen3's second-to-last layer, (n, 512) the prompt's tokens): the
        pipeline hands the transformer each prompt's rows without the padding, so the mask
        travels beside the embedding (in the pooled embedding's place) and `predict` cuts."""
        (encoder,) = text_encoders
        ids, mask = input_ids
        hidden = encoder(
            input_ids=ids.to(encoder.device),
            attention_mask=mask.to(encoder.device).bool(),
            output_hidden_states=True,
        ).hidden_states[-2]
        return hidden, mask.to(hidden.device)

    def prompt_token_limit(self, tokenizer: Any) -> int:
        """512 tokens, less what the chat template wraps around the prompt."""
        return qwen_prompt_token_limit(tokenizer, MAX_SEQUENCE_LENGTH, thinking=True)

    # -- the denoiser ----------------------------------------------------------------------

    def predict(
        self,
        denoiser: Any,
        noisy: Any,
        timesteps: Any,
        prompt_embeds: Any,
        pooled_prompt_embeds: Any | None,
        micro_conditioning: Any | None,
    ) -> Any:
        """The velocity noise - x for (b, C, h, w) latents. The transformer takes lists (one
        (C, 1, h, w) latent and one prompt of its own length each) and time (1000 - t) / 1000,
        and answers x - noise: negated, as the example and the pipeline do."""
        import torch

        if pooled_prompt_embeds is None:
            raise ValueError("Z-Image's `predict` needs the prompts' token mask (encode_prompt).")
        mask = pooled_prompt_embeds.bool()
        prompts = [embeds[keep] for embeds, keep in zip(prompt_embeds, mask, strict=True)]
        latents = list(noisy.unsqueeze(2).unbind(dim=0))
        # The time stays float32, as the pipeline passes it (the transformer embeds it in
        # float32): bf16 steps by 4 above t = 512, so 987.3 would become 988 and the time
        # (1000 - t) / 1000 0.012 instead of 0.0127.
        out = denoiser(latents, (1000 - timesteps.float()) / 1000, prompts, return_dict=False)[0]
        return -torch.stack(out, dim=0).squeeze(2)

    # -- LoRA --------------------------------------------------------------------------------

    @property
    def denoiser_lora_targets(self) -> list[str]:
        return list(TRANSFORMER_LORA_TARGETS)

    def comfyui_state_dict(self, state: dict[str, Any]) -> dict[str, Any]:
        """Peft-named transformer LoRA weights → ComfyUI's Z-Image layout: the diffusers layer
        names under `diffusion_model.` (`diffusion_model.layers.N.attention.to_q.lora_A.weight`,
        `.lora_B.weight`), which ComfyUI's Lumina2/Z-Image branch of `model_lora_keys_unet`
        maps onto its fused `attention.qkv` (q, k and v as slices of it) and `attention.out`
        (comfy/utils.py `z_image_to_diffusers`); the layout ai-toolkit's Z-Image LoRAs have,
        which diffusers' ZImagePipeline converts on reading. No `.alpha`: ComfyUI and
        diffusers then apply up @ down at scale 1, the trained scale (alpha = rank)."""
        out: dict[str, Any] = {}
        for key, weight in state.items():
            if _PEFT_KEY.match(key) is None:
                raise ValueError(f"Not a LoRA weight in peft naming: `{key}`")
            out[f"diffusion_model.{key}"] = weight.contiguous()
        return out


Z_IMAGE = register_family(
    ZImage(
        name="z-image",
        label="Z-Image",
        text2img_pipeline="ZImagePipeline",
        inpaint_pipeline="ZImageInpaintPipeline",
        resolution=1024,
        text_encoders=1,
        is_inpaint=False,
        class_names=("ZImagePipeline", "ZImageImg2ImgPipeline", "ZImageInpaintPipeline"),
        denoiser="transformer",
        stand_in="tiny-zimage",
        trainable=True,
        license="apache-2.0",  # Z-Image and Z-Image-Turbo alike
        card_tag="z-image",
        size_multiple=16,  # 8x VAE, then 2x2 patches
        # Not measured on a GPU: FLUX.2 [klein]'s, a transformer of the same kind (6B here).
        memory_factor=4.0,
        default_scheduler="model",  # its FlowMatchEulerDiscreteScheduler (shift 3)
        text_encoder_trainable=False,
        lora_file_diffusers_names=False,  # peft's names, as the example saves them
        negative_prompts=True,  # its guidance runs against the negative prompt ("" by default)
        fast_model=TURBO_MODEL,
        # ZImagePipeline's defaults for the foundation model; Z-Image-Turbo's model card: 9
        # steps (8 forward passes), guidance 0.0, which is off in its pipeline.
        sampling=(50, 5.0),
        distilled_sampling=(9, 0.0),
        reference_images=0,  # text only: the instant mode refuses it
        inpaint_model=None,  # the base model inpaints: ZImageInpaintPipeline
        inpaint_strength=None,  # its pipeline's default, 1.0: a new scene from noise
        stand_in_inpaint_model=None,
        hub_models=(
            (
                "Tongyi-MAI/Z-Image",
                "Z-Image 6B: sharp printed text; more GPU memory than FLUX.2 [klein] 4B",
            ),
            (TURBO_MODEL, "Z-Image 6B Turbo: 9-step shots"),
        ),
    )
)
