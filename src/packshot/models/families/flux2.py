"""FLUX.2 [klein]: a flow-matching transformer (Flux2Transformer2DModel) conditioned by a Qwen3
text encoder, trained with the rectified-flow objective; it also takes reference images.

Everything packshot does differently for it is here: the Qwen3 chat-template prompt and the
three hidden layers its embeddings stack, the VAE's 2x2 patchified and batch-normalised
latents, the objective (noisy = (1 - σ)·x + σ·noise, target = noise - x, σ drawn uniformly
from the scheduler's training sigmas, no loss weighting), the transformer's call with its
position ids, and the LoRA targets (its ComfyUI file is `train.exports.comfyui`'s). Matched to
diffusers examples/dreambooth/train_dreambooth_lora_flux2_klein.py and Flux2KleinPipeline.
torch and diffusers are imported inside the methods: registering the family stays light.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packshot.errors import UsageError
from packshot.models.families.base import CropGeometry, ModelFamily, register_family

# Flux2KleinPipeline's defaults: prompts padded to 512 tokens, and the prompt embedding is the
# hidden states of these three Qwen3 layers stacked along the feature axis (3 x 2560 = 7680
# for klein 4B's Qwen3-4B). The diffusers example's `--text_encoder_out_layers` default
# (10, 20, 30) differs from the pipeline's; a LoRA is used through the pipeline, so packshot
# trains on what the pipeline feeds the transformer.
MAX_SEQUENCE_LENGTH = 512
TEXT_ENCODER_OUT_LAYERS = (9, 18, 27)

# The diffusers example's default targets: the image stream's attention in the double blocks
# (to_q/k/v, to_out.0) and the single blocks' fused qkv+mlp input and their output projection
# (`attn.to_out` is a Linear there, a ModuleList in the double blocks, hence the pattern).
TRANSFORMER_LORA_TARGETS = (
    r".*\.(to_q|to_k|to_v|to_out\.0|to_qkv_mlp_proj)$"
    r"|.*single_transformer_blocks\.\d+\.attn\.to_out$"
)

# Flux2KleinPipeline's defaults for the base model; the distilled model's recipe (its model
# card: 4 steps, no classifier-free guidance).
BASE_STEPS, BASE_GUIDANCE = 50, 4.0
DISTILLED_STEPS = 4

# The side the tiny stand-in makes by default (its transformer config has no sample size).
_STAND_IN_RESOLUTION = 64


@dataclass(frozen=True)
class Flux2Klein(ModelFamily):
    """FLUX.2 [klein] 4B/9B, base (guidance, ~50 steps) or step-distilled (4 steps)."""

    def native_resolution(self, model_dir: Path) -> int:
        """1024 px; the tiny stand-in's 64 px where the folder's packshot.json says so."""
        try:
            note = json.loads((model_dir / "packshot.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return self.resolution
        if isinstance(note, dict) and note.get("kind") == "packshot-tiny-stand-in":
            return _STAND_IN_RESOLUTION
        return self.resolution

    def is_step_distilled(self, model_dir: Path) -> bool:
        """model_index.json's `is_distilled` (FLUX.2-klein-4B: true; -base-4B: false)."""
        try:
            index = json.loads((model_dir / "model_index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(index, dict) and index.get("is_distilled") is True

    def sampling_defaults(self, model_dir: Path) -> tuple[int, float] | None:
        """The base model: Flux2KleinPipeline's 50 steps at guidance 4; the distilled one: 4
        steps, guidance off (its pipeline ignores it)."""
        if self.is_step_distilled(model_dir):
            return DISTILLED_STEPS, 1.0
        return BASE_STEPS, BASE_GUIDANCE

    # -- parts -----------------------------------------------------------------------------

    @property
    def text_encoder_names(self) -> tuple[str, ...]:
        return ("text_encoder",)

    def load_text_parts(self, model_dir: Path, dtype: Any) -> tuple[list[Any], list[Any], Any]:
        """The Qwen2 tokenizer, the Qwen3 encoder and the FLUX.2 VAE (fp32: it runs once)."""
        import torch
        from diffusers import AutoencoderKLFlux2
        from transformers import AutoTokenizer, Qwen3ForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(model_dir / "tokenizer")
        encoder = Qwen3ForCausalLM.from_pretrained(model_dir, subfolder="text_encoder", dtype=dtype)
        vae = AutoencoderKLFlux2.from_pretrained(model_dir, subfolder="vae", dtype=torch.float32)
        return [tokenizer], [encoder], vae

    def load_denoiser(self, model_dir: Path, dtype: Any) -> tuple[Any, Any]:
        """The transformer and the flow-matching scheduler whose sigmas training draws from."""
        from diffusers import FlowMatchEulerDiscreteScheduler, Flux2Transformer2DModel

        transformer = Flux2Transformer2DModel.from_pretrained(
            model_dir, subfolder="transformer", dtype=dtype
        )
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(
            model_dir, subfolder="scheduler"
        )
        return transformer, scheduler

    def encode_images(self, vae: Any, pixels: Any) -> Any:
        """(b, 4·C, R/16, R/16): the posterior's mode, patchified 2x2 and normalised by the
        VAE's batch-norm statistics, as the example and the pipeline feed the transformer."""
        from diffusers import Flux2KleinPipeline

        latents = vae.encode(pixels).latent_dist.mode()
        latents = Flux2KleinPipeline._patchify_latents(latents)
        mean = vae.bn.running_mean.view(1, -1, 1, 1).to(latents)
        std = (vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).sqrt().to(latents)
        return (latents - mean) / std

    # -- prompts ---------------------------------------------------------------------------

    def _chat_text(self, tokenizer: Any, prompt: str) -> str:
        """The prompt inside Qwen3's chat template, thinking off, as Flux2KleinPipeline does."""
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=False,
        )

    def tokenize(self, tokenizers: Sequence[Any], captions: Sequence[str]) -> list[Any]:
        """[(n, 512) token ids, (n, 512) attention mask]: one tokenizer, whose padding the
        encoder must see masked."""
        (tokenizer,) = tokenizers
        out = tokenizer(
            [self._chat_text(tokenizer, c) for c in captions],
            padding="max_length",
            max_length=MAX_SEQUENCE_LENGTH,
            truncation=True,
            return_tensors="pt",
        )
        return [out["input_ids"], out["attention_mask"]]

    def encode_prompt(
        self, text_encoders: Sequence[Any], input_ids: Sequence[Any]
    ) -> tuple[Any, Any | None]:
        """(n, 512, 3·hidden): layers 9, 18 and 27 of Qwen3 side by side; no pooled embedding."""
        import torch

        (encoder,) = text_encoders
        ids, mask = input_ids
        out = encoder(
            input_ids=ids.to(encoder.device),
            attention_mask=mask.to(encoder.device),
            output_hidden_states=True,
            use_cache=False,
        )
        stacked = torch.stack([out.hidden_states[k] for k in TEXT_ENCODER_OUT_LAYERS], dim=1)
        n, layers, length, width = stacked.shape
        return stacked.permute(0, 2, 1, 3).reshape(n, length, layers * width), None

    def prompt_tokenizer(self, pipe: Any) -> Any:
        return pipe.tokenizer

    def prompt_token_limit(self, tokenizer: Any) -> int:
        """512 tokens, less what the chat template wraps around the prompt."""
        wrapper = tokenizer(self._chat_text(tokenizer, ""), add_special_tokens=False)["input_ids"]
        return MAX_SEQUENCE_LENGTH - len(wrapper)

    def micro_conditioning(self, crops: Sequence[CropGeometry]) -> Any | None:
        """None: FLUX.2 reads an image's size from its latents' position ids (`predict`)."""
        return None

    # -- the objective: rectified flow ------------------------------------------------------

    def draw_timesteps(self, noise_scheduler: Any, size: int, generator: Any) -> Any:
        """Uniform over the scheduler's training timesteps (the example's default weighting
        scheme "none": uniform sampling, uniform loss)."""
        import torch

        steps = noise_scheduler.config.num_train_timesteps
        u = torch.rand(size, generator=generator)
        return noise_scheduler.timesteps[(u * steps).long().clamp(max=steps - 1)]

    def _sigmas(self, noise_scheduler: Any, timesteps: Any, ndim: int) -> Any:
        schedule = noise_scheduler.timesteps.to(timesteps.device)
        index = (schedule[None, :] == timesteps[:, None]).float().argmax(dim=1)
        sigma = noise_scheduler.sigmas.to(timesteps.device)[index]
        return sigma.view(-1, *([1] * (ndim - 1)))

    def noisy_and_target(
        self, noise_scheduler: Any, latents: Any, noise: Any, timesteps: Any
    ) -> tuple[Any, Any]:
        """zσ = (1 - σ)·x + σ·noise; the transformer predicts the velocity noise - x."""
        sigma = self._sigmas(noise_scheduler, timesteps, latents.ndim).to(latents.dtype)
        return (1.0 - sigma) * latents + sigma * noise, noise - latents

    def loss_weights(self, noise_scheduler: Any, timesteps: Any, snr_gamma: float) -> Any:
        """Ones: min-SNR-γ is a diffusion weighting; the example's flow loss is unweighted."""
        import torch

        return torch.ones(timesteps.shape[0], device=timesteps.device)

    def predict(
        self,
        denoiser: Any,
        noisy: Any,
        timesteps: Any,
        prompt_embeds: Any,
        pooled_prompt_embeds: Any | None,
        micro_conditioning: Any | None,
    ) -> Any:
        """The transformer's velocity for (b, C, h, w) latents, packed to tokens and back. The
        latents' own h and w set the tokens' position ids (row, column) and the unpacking, so
        a non-square bucket trains as the pipeline draws at that size."""
        import torch
        from diffusers import Flux2KleinPipeline

        img_ids = Flux2KleinPipeline._prepare_latent_ids(noisy).to(noisy.device)
        txt_ids = Flux2KleinPipeline._prepare_text_ids(prompt_embeds).to(noisy.device)
        guidance = None
        if denoiser.config.guidance_embeds:  # klein has none; the example passes 1.0 then
            guidance = torch.ones(noisy.shape[0], device=noisy.device)
        tokens = Flux2KleinPipeline._pack_latents(noisy)
        pred = denoiser(
            hidden_states=tokens,
            timestep=timesteps.to(noisy.dtype) / 1000,
            guidance=guidance,
            encoder_hidden_states=prompt_embeds,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0][:, : tokens.shape[1]]
        b, c, h, w = noisy.shape
        return pred.permute(0, 2, 1).reshape(b, c, h, w)

    # -- LoRA --------------------------------------------------------------------------------

    @property
    def denoiser_lora_targets(self) -> str:  # type: ignore[override]
        return TRANSFORMER_LORA_TARGETS

    @property
    def text_encoder_lora_targets(self) -> list[str]:
        raise UsageError(
            f"packshot trains {self.label} LoRAs on the transformer only, as the diffusers "
            "example does: its Qwen3 text encoder stays frozen. Train without "
            "--train-text-encoder."
        )


FLUX2_KLEIN = register_family(
    Flux2Klein(
        name="flux2-klein",
        label="FLUX.2 [klein]",
        text2img_pipeline="Flux2KleinPipeline",
        inpaint_pipeline="Flux2KleinInpaintPipeline",
        resolution=1024,
        text_encoders=1,
        is_inpaint=False,
        class_names=("Flux2KleinPipeline", "Flux2KleinInpaintPipeline"),
        denoiser="transformer",
        stand_in="tiny-flux2",
        trainable=True,
        license="apache-2.0",  # klein 4B; klein 9B is under the FLUX non-commercial license
        card_tag="flux2",
        size_multiple=16,  # 8x VAE, then 2x2 patches
        memory_factor=4.0,
        default_scheduler="model",  # its FlowMatchEulerDiscreteScheduler, with the pipeline's mu
        text_encoder_trainable=False,
        lora_file_diffusers_names=False,
        negative_prompts=False,  # its guidance runs against the empty prompt
        fast_model="black-forest-labs/FLUX.2-klein-4B",  # the step-distilled 4B
        reference_images=4,  # the instant mode's 1-4 photos (intake.references)
        inpaint_model=None,  # the base model inpaints: Flux2KleinInpaintPipeline
        inpaint_strength=1.0,  # its pipeline's default is 0.8: the grey canvas would show
        stand_in_inpaint_model=None,
    )
)
