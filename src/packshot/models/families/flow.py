"""What packshot's flow-matching transformer families share (FLUX.2 [klein], Z-Image): the
rectified-flow objective of diffusers' flow-matching DreamBooth examples, the side their tiny
stand-ins draw at, a text encoder that stays frozen, and the Qwen3 chat template their prompts
go through.

The objective, as train_dreambooth_lora_flux2_klein.py and train_dreambooth_lora_z_image.py
train with their default `--weighting_scheme=none`: σ drawn uniformly from the scheduler's
training sigmas (shifted where its config shifts them), zσ = (1 - σ)·x + σ·noise, the target
noise - x, the loss unweighted. How the transformer is called, and the sign of its answer, is
each family's `predict`. torch is imported inside the methods: registering stays light.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packshot.errors import UsageError
from packshot.models.families.base import STAND_IN_KIND, CropGeometry, ModelFamily

# The side a tiny stand-in draws at by default: its transformer's config has no sample size.
STAND_IN_RESOLUTION = 64


def qwen_chat_text(tokenizer: Any, prompt: str, *, thinking: bool) -> str:
    """`prompt` as one user turn of Qwen3's chat template, the assistant's turn opened after
    it, as the pipelines wrap it: FLUX.2 [klein] with thinking off (an empty think block),
    Z-Image with thinking on (no block)."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=thinking,
    )


def qwen_tokenize(
    tokenizer: Any, captions: Sequence[str], max_length: int, *, thinking: bool
) -> list[Any]:
    """[(n, max_length) token ids, (n, max_length) attention mask] of `captions` in the chat
    template, padded and cut to `max_length` as the pipelines do; the encoder must see the
    padding masked."""
    out = tokenizer(
        [qwen_chat_text(tokenizer, c, thinking=thinking) for c in captions],
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_tensors="pt",
    )
    return [out["input_ids"], out["attention_mask"]]


def qwen_prompt_token_limit(tokenizer: Any, max_length: int, *, thinking: bool) -> int:
    """How many tokens of a prompt fit in `max_length` once the chat template wraps it."""
    wrapper = qwen_chat_text(tokenizer, "", thinking=thinking)
    return max_length - len(tokenizer(wrapper, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class FlowMatchingFamily(ModelFamily):
    """A transformer trained with the rectified-flow objective, its text encoder frozen."""

    def native_resolution(self, model_dir: Path) -> int:
        """The family's resolution; the tiny stand-in's 64 px where its packshot.json says so."""
        try:
            note = json.loads((model_dir / "packshot.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return self.resolution
        if isinstance(note, dict) and note.get("kind") == STAND_IN_KIND:
            return STAND_IN_RESOLUTION
        return self.resolution

    def prompt_tokenizer(self, pipe: Any) -> Any:
        """The pipeline's one tokenizer."""
        return pipe.tokenizer

    def micro_conditioning(self, crops: Sequence[CropGeometry]) -> Any | None:
        """None: the transformer reads an image's size from its latents (`predict`)."""
        return None

    # -- the objective: rectified flow ------------------------------------------------------

    def draw_timesteps(self, noise_scheduler: Any, size: int, generator: Any) -> Any:
        """Uniform over the scheduler's training timesteps (the examples' default weighting
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
        """zσ = (1 - σ)·x + σ·noise; the transformer is trained towards the velocity noise - x."""
        sigma = self._sigmas(noise_scheduler, timesteps, latents.ndim).to(latents.dtype)
        return (1.0 - sigma) * latents + sigma * noise, noise - latents

    def loss_weights(self, noise_scheduler: Any, timesteps: Any, snr_gamma: float) -> Any:
        """Ones: min-SNR-γ is a diffusion weighting; the examples' flow loss is unweighted."""
        import torch

        return torch.ones(timesteps.shape[0], device=timesteps.device)

    # -- LoRA --------------------------------------------------------------------------------

    @property
    def text_encoder_lora_targets(self) -> list[str]:
        raise UsageError(
            f"packshot trains {self.label} LoRAs on the transformer only, as the diffusers "
            "example does: its text encoder stays frozen. Train without --train-text-encoder."
        )
