"""Stable Diffusion 1.5 and SDXL, and their inpainting variants: UNet denoisers trained with
DDPM noise prediction, conditioned by CLIP text encoders (one for SD 1.5, two for SDXL).

Everything packshot does differently for them is here: the parts it loads, prompt encoding
and its 77-token limit, SDXL's size and crop conditioning, the objective (epsilon or
v-prediction, min-SNR-γ weights), LoRA targets and kohya key names. Adapted from diffusers
examples/dreambooth/train_dreambooth_lora.py and train_dreambooth_lora_sdxl.py. torch and
diffusers are imported inside the methods: registering these families stays light.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packshot.errors import UsageError
from packshot.models.families.base import (
    TRAINING_MODEL,
    CropGeometry,
    ModelFamily,
    register_family,
)

if TYPE_CHECKING:
    import torch

_SD_CLASSES = (
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
)
_SDXL_CLASSES = (
    "StableDiffusionXLPipeline",
    "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline",
)

UNET_TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]  # the attention projections
TEXT_ENCODER_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj"]

# peft names a layer's saved weights `….to_q.lora_A.weight`.
_PEFT_KEY = re.compile(r"^(.*)\.lora_([AB])\.weight$")


def to_kohya(
    state_dict: dict[str, torch.Tensor], prefix: str, alpha: float
) -> dict[str, torch.Tensor]:
    """Peft-named LoRA weights of one model → kohya keys under `prefix`, with `.alpha` each.

    `down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight` becomes
    `lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight`.
    Kohya loaders scale each layer by alpha / rank, so alpha = the trained `lora_alpha` gives
    exactly the scale the model was trained with.
    """
    import torch

    out: dict[str, torch.Tensor] = {}
    for key, weight in state_dict.items():
        match = _PEFT_KEY.match(key)
        if match is None:
            raise ValueError(f"Not a LoRA weight in peft naming: `{key}`")
        module, which = match.groups()
        name = f"{prefix}_{module.replace('.', '_')}"
        out[f"{name}.lora_{'down' if which == 'A' else 'up'}.weight"] = weight
        # kohya stores alpha as a float scalar tensor, one per layer
        out[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
    return out


@dataclass(frozen=True)
class StableDiffusionFamily(ModelFamily):
    """What SD 1.5 and SDXL share: a UNet, DDPM noise prediction, CLIP tokenizers, a VAE."""

    # model_index.json component → the kohya/A1111 prefix of its LoRA keys
    kohya_prefixes: tuple[tuple[str, str], ...] = ()

    def native_resolution(self, model_dir: Path) -> int:
        """The UNet's latent size times the VAE's down-sampling (8 for SD; 64 px for the tiny
        stand-ins); the family's where the configs don't say."""
        try:
            unet = json.loads((model_dir / "unet" / "config.json").read_text(encoding="utf-8"))
            vae = json.loads((model_dir / "vae" / "config.json").read_text(encoding="utf-8"))
            return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
        except (OSError, ValueError, KeyError, TypeError):
            return self.resolution

    # -- parts -----------------------------------------------------------------------------

    def load_denoiser(self, model_dir: Path, dtype: Any) -> tuple[Any, Any]:
        """The UNet and the DDPM noise scheduler it was trained with."""
        from diffusers import DDPMScheduler, UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet", dtype=dtype)
        return unet, DDPMScheduler.from_pretrained(model_dir, subfolder="scheduler")

    def _vae(self, model_dir: Path) -> Any:
        import torch
        from diffusers import AutoencoderKL

        # fp32 VAE: SDXL's VAE overflows in fp16, and it runs only once, for the cache
        return AutoencoderKL.from_pretrained(model_dir, subfolder="vae", dtype=torch.float32)

    def encode_images(self, vae: Any, pixels: Any) -> Any:
        """The VAE posterior's mean times its scaling factor, (b, 4, R/8, R/8). The mean, not a
        sample: the cache is then deterministic, and the posterior's noise (σ ≈ 0.01 in SD's
        VAE) is far below the diffusion noise anyway."""
        return vae.encode(pixels).latent_dist.mean * float(vae.config.scaling_factor)

    # -- prompts ---------------------------------------------------------------------------

    def tokenize(self, tokenizers: Sequence[Any], captions: Sequence[str]) -> list[Any]:
        """(n, 77) token ids per tokenizer, padded and truncated to its length as SD does."""
        return [
            tokenizer(
                list(captions),
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            for tokenizer in tokenizers
        ]

    def prompt_tokenizer(self, pipe: Any) -> Any:
        """The first CLIP tokenizer: SDXL's two share its limit."""
        return pipe.tokenizer

    def prompt_token_limit(self, tokenizer: Any) -> int:
        """CLIP reads `model_max_length` tokens (77), two of which are the start and end
        markers; diffusers cuts the rest off."""
        return int(tokenizer.model_max_length) - 2

    # -- the objective: DDPM, epsilon or v-prediction ----------------------------------------

    def draw_timesteps(self, noise_scheduler: Any, size: int, generator: Any) -> Any:
        import torch

        steps = noise_scheduler.config.num_train_timesteps
        return torch.randint(0, steps, (size,), generator=generator)

    def noisy_and_target(
        self, noise_scheduler: Any, latents: Any, noise: Any, timesteps: Any
    ) -> tuple[Any, Any]:
        """Forward diffusion at `timesteps`, and the target: the noise (epsilon) or the
        velocity, per the scheduler config."""
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        prediction_type = noise_scheduler.config.prediction_type
        if prediction_type == "epsilon":
            return noisy, noise
        if prediction_type == "v_prediction":
            return noisy, noise_scheduler.get_velocity(latents, noise, timesteps)
        raise UsageError(f"Unsupported prediction type `{prediction_type}`.")

    def loss_weights(self, noise_scheduler: Any, timesteps: Any, snr_gamma: float) -> Any:
        """min-SNR-γ: down-weight the easy low-noise timesteps (Hang et al. 2023)."""
        import torch
        from diffusers.training_utils import compute_snr

        snr = compute_snr(noise_scheduler, timesteps)
        weight = torch.clamp(snr, max=snr_gamma)
        if noise_scheduler.config.prediction_type == "v_prediction":
            return weight / (snr + 1)
        return weight / snr

    # -- LoRA --------------------------------------------------------------------------------

    @property
    def denoiser_lora_targets(self) -> list[str]:
        return list(UNET_TARGET_MODULES)

    @property
    def text_encoder_lora_targets(self) -> list[str]:
        return list(TEXT_ENCODER_TARGET_MODULES)

    def kohya_state_dict(
        self, states: dict[str, dict[str, Any]], alphas: dict[str, float]
    ) -> dict[str, Any]:
        """`lora_unet_…` and `lora_te…` keys with `.alpha` scalars, as A1111 and ComfyUI read."""
        prefixes = dict(self.kohya_prefixes)
        tensors: dict[str, Any] = {}
        for component, state in states.items():
            tensors.update(to_kohya(state, prefixes[component], alphas[component]))
        return tensors


@dataclass(frozen=True)
class StableDiffusion15(StableDiffusionFamily):
    """SD 1.5: one CLIP text encoder, conditioned on its last hidden state."""

    @property
    def text_encoder_names(self) -> tuple[str, ...]:
        return ("text_encoder",)

    def load_text_parts(self, model_dir: Path, dtype: Any) -> tuple[list[Any], list[Any], Any]:
        from transformers import CLIPTextModel

        from packshot.models.preprocessors import load_preprocessor

        tokenizer = load_preprocessor(model_dir / "tokenizer", "CLIPTokenizer")
        encoder = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder", dtype=dtype)
        return [tokenizer], [encoder], self._vae(model_dir)

    def encode_prompt(
        self, text_encoders: Sequence[Any], input_ids: Sequence[Any]
    ) -> tuple[Any, Any | None]:
        """The text encoder's last hidden state, (n, 77, 768); no pooled embedding."""
        (encoder,) = text_encoders
        ids = input_ids[0].to(encoder.device)
        return encoder(ids)[0], None

    def micro_conditioning(self, crops: Sequence[CropGeometry]) -> Any | None:
        return None

    def predict(
        self,
        denoiser: Any,
        noisy: Any,
        timesteps: Any,
        prompt_embeds: Any,
        pooled_prompt_embeds: Any | None,
        micro_conditioning: Any | None,
    ) -> Any:
        return denoiser(noisy, timesteps, prompt_embeds, added_cond_kwargs=None, return_dict=False)[
            0
        ]


@dataclass(frozen=True)
class StableDiffusionXL(StableDiffusionFamily):
    """SDXL: two CLIP text encoders whose penultimate layers are concatenated, the second's
    pooled projection, and the image's size and crop as extra conditioning ("time ids")."""

    @property
    def text_encoder_names(self) -> tuple[str, ...]:
        return ("text_encoder", "text_encoder_2")

    def load_text_parts(self, model_dir: Path, dtype: Any) -> tuple[list[Any], list[Any], Any]:
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        from packshot.models.preprocessors import load_preprocessor

        tokenizer = load_preprocessor(model_dir / "tokenizer", "CLIPTokenizer")
        encoder = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder", dtype=dtype)
        vae = self._vae(model_dir)
        tokenizer_2 = load_preprocessor(model_dir / "tokenizer_2", "CLIPTokenizer")
        encoder_2 = CLIPTextModelWithProjection.from_pretrained(
            model_dir, subfolder="text_encoder_2", dtype=dtype
        )
        return [tokenizer, tokenizer_2], [encoder, encoder_2], vae

    def encode_prompt(
        self, text_encoders: Sequence[Any], input_ids: Sequence[Any]
    ) -> tuple[Any, Any | None]:
        """Both encoders' penultimate hidden states concatenated, (n, 77, 2048), and the second
        encoder's pooled projection (n, 1280)."""
        import torch

        hidden, pooled = [], None
        for encoder, ids in zip(text_encoders, input_ids, strict=True):
            out = encoder(ids.to(encoder.device), output_hidden_states=True)
            pooled = out[0]  # the last encoder's (CLIPTextModelWithProjection) text_embeds
            hidden.append(out.hidden_states[-2])  # SDXL conditions on the penultimate layer
        return torch.cat(hidden, dim=-1), pooled

    def micro_conditioning(self, crops: Sequence[CropGeometry]) -> Any | None:
        """(B, 6) time ids, as the diffusers SDXL script's `add_time_ids`: each image's original
        size (height, width), its crop's top-left corner (top, left) and its target size, the
        aspect bucket it trains at (height, width)."""
        import torch

        return torch.tensor(
            [[*c.original_size, *c.crops_coords_top_left, *c.target_size] for c in crops]
        )

    def predict(
        self,
        denoiser: Any,
        noisy: Any,
        timesteps: Any,
        prompt_embeds: Any,
        pooled_prompt_embeds: Any | None,
        micro_conditioning: Any | None,
    ) -> Any:
        added = {"text_embeds": pooled_prompt_embeds, "time_ids": micro_conditioning}
        return denoiser(
            noisy, timesteps, prompt_embeds, added_cond_kwargs=added, return_dict=False
        )[0]


_SD15_FACTS: dict[str, Any] = {
    "resolution": 512,
    "text_encoders": 1,
    "class_names": _SD_CLASSES,
    "kohya_prefixes": (("unet", "lora_unet"), ("text_encoder", "lora_te")),
    "license": "creativeml-openrail-m",
    "card_tag": "stable-diffusion",
    "fast_lora": "latent-consistency/lcm-lora-sdv1-5",
    "inpaint_model": "stable-diffusion-v1-5/stable-diffusion-inpainting",
    "stand_in_inpaint_model": "tiny-inpaint",
}
_SDXL_FACTS: dict[str, Any] = {
    "resolution": 1024,
    "text_encoders": 2,
    "class_names": _SDXL_CLASSES,
    "kohya_prefixes": (
        ("unet", "lora_unet"),
        ("text_encoder", "lora_te1"),
        ("text_encoder_2", "lora_te2"),
    ),
    "license": "openrail++",
    "card_tag": "stable-diffusion-xl",
    "memory_factor": 4.0,  # ~4 GiB per 1024² image with guidance in fp16, against SD 1.5's ~1
    "fast_lora": "latent-consistency/lcm-lora-sdxl",
    "inpaint_model": "diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
    # No SDXL inpainting stand-in: the SD 1.5 one, which a placement refuses for an SDXL LoRA
    # with a message that names the real SDXL inpainting model.
    "stand_in_inpaint_model": "tiny-inpaint",
}

SD15 = register_family(
    StableDiffusion15(
        name="sd15",
        label="Stable Diffusion 1.5",
        text2img_pipeline="StableDiffusionPipeline",
        # A plain SD 1.5 model can still inpaint: diffusers blends the mask into the latents.
        inpaint_pipeline="StableDiffusionInpaintPipeline",
        is_inpaint=False,
        stand_in="tiny",
        trainable=True,
        hub_models=(
            (
                "stable-diffusion-v1-5/stable-diffusion-v1-5",
                "Stable Diffusion 1.5: the lightest, trains on an 8 GB GPU",
            ),
        ),
        **_SD15_FACTS,
    )
)
SDXL = register_family(
    StableDiffusionXL(
        name="sdxl",
        label="Stable Diffusion XL",
        text2img_pipeline="StableDiffusionXLPipeline",
        inpaint_pipeline="StableDiffusionXLInpaintPipeline",
        is_inpaint=False,
        stand_in="tiny-sdxl",
        trainable=True,
        hub_models=((TRAINING_MODEL, "Stable Diffusion XL: trains on a 16 GB GPU"),),
        **_SDXL_FACTS,
    )
)
SD15_INPAINT = register_family(
    StableDiffusion15(
        name="sd15-inpaint",
        label="Stable Diffusion 1.5 Inpainting",
        text2img_pipeline=None,
        inpaint_pipeline="StableDiffusionInpaintPipeline",
        is_inpaint=True,
        stand_in="tiny-inpaint",
        lineage="sd15",
        **{**_SD15_FACTS, "fast_lora": None},  # no LCM-LoRA for inpainting models
    )
)
# Without it, diffusers/stable-diffusion-xl-1.0-inpainting-0.1 would pass for a plain SDXL model
# and fail at its first step with a channel mismatch.
SDXL_INPAINT = register_family(
    StableDiffusionXL(
        name="sdxl-inpaint",
        label="Stable Diffusion XL Inpainting",
        text2img_pipeline=None,
        inpaint_pipeline="StableDiffusionXLInpaintPipeline",
        is_inpaint=True,
        lineage="sdxl",
        **{**_SDXL_FACTS, "fast_lora": None},
    )
)
