"""FLUX.2 [klein]: a flow-matching transformer (Flux2Transformer2DModel) conditioned by a Qwen3
text encoder, trained with the rectified-flow objective (`flow.FlowMatchingFamily`); it also
takes reference images.

Everything packshot does differently for it is here: the Qwen3 chat-template prompt and the
three hidden layers its embeddings stack, the VAE's 2x2 patchified and batch-normalised
latents, the transformer's call with its position ids, the LoRA targets and the ComfyUI
file's names (BFL's layers, q, k and v fused). Matched to diffusers
examples/dreambooth/train_dreambooth_lora_flux2_klein.py and Flux2KleinPipeline. torch and
diffusers are imported inside the methods: registering the family stays light.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packshot.models.families.base import INSTANT_MODEL, register_family
from packshot.models.families.flow import (
    FlowMatchingFamily,
    qwen_prompt_token_limit,
    qwen_tokenize,
)

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

# ComfyUI's (BFL's) name of each diffusers layer a LoRA may sit on (comfy/lora.py maps
# `diffusion_model.<layer>` to the layer and reads `<key>.lora_A.weight` / `.lora_B.weight`).
# q, k and v of a double block's stream are one fused `qkv` layer there.
_COMFYUI_FUSED_QKV = {
    ("to_q", "to_k", "to_v"): "img_attn.qkv",
    ("add_q_proj", "add_k_proj", "add_v_proj"): "txt_attn.qkv",
}
_COMFYUI_DOUBLE = {
    "attn.to_out.0": "img_attn.proj",
    "attn.to_add_out": "txt_attn.proj",
    "ff.linear_in": "img_mlp.0",
    "ff.linear_out": "img_mlp.2",
    "ff_context.linear_in": "txt_mlp.0",
    "ff_context.linear_out": "txt_mlp.2",
}
_COMFYUI_SINGLE = {"attn.to_qkv_mlp_proj": "linear1", "attn.to_out": "linear2"}
_PEFT_KEY = re.compile(r"^(.*)\.lora_([AB])\.weight$")
_BLOCK = re.compile(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class Flux2Klein(FlowMatchingFamily):
    """FLUX.2 [klein] 4B/9B, base (guidance, ~50 steps) or step-distilled (4 steps)."""

    def is_step_distilled(self, model_dir: Path) -> bool:
        """model_index.json's `is_distilled` (FLUX.2-klein-4B: true; -base-4B: false)."""
        try:
            index = json.loads((model_dir / "model_index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(index, dict) and index.get("is_distilled") is True

    # -- parts -----------------------------------------------------------------------------

    @property
    def text_encoder_names(self) -> tuple[str, ...]:
        return ("text_encoder",)

    def load_text_parts(self, model_dir: Path, dtype: Any) -> tuple[list[Any], list[Any], Any]:
        """The Qwen2 tokenizer, the Qwen3 encoder and the FLUX.2 VAE (fp32: it runs once)."""
        import torch
        from diffusers import AutoencoderKLFlux2
        from transformers import Qwen3ForCausalLM

        from packshot.models.preprocessors import load_preprocessor

        tokenizer = load_preprocessor(model_dir / "tokenizer", "AutoTokenizer")
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

    def tokenize(self, tokenizers: Sequence[Any], captions: Sequence[str]) -> list[Any]:
        """[(n, 512) token ids, (n, 512) attention mask] of the prompts in the chat
        template, thinking off."""
        (tokenizer,) = tokenizers
        return qwen_tokenize(tokenizer, captions, MAX_SEQUENCE_LENGTH, thinking=False)

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

    def prompt_token_limit(self, tokenizer: Any) -> int:
        """512 tokens, less what the chat template wraps around the prompt."""
        return qwen_prompt_token_limit(tokenizer, MAX_SEQUENCE_LENGTH, thinking=False)

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

    def comfyui_state_dict(self, state: dict[str, Any]) -> dict[str, Any]:
        """Peft-named transformer LoRA weights → the layout ComfyUI loads for FLUX.2 models.

        Keys are `diffusion_model.<BFL layer name>.lora_A.weight` (down) and `.lora_B.weight`
        (up): `double_blocks.N.img_attn.qkv`, `img_attn.proj`, `img_mlp.0` / `.2`, the `txt_…`
        stream, `single_blocks.N.linear1` / `linear2` (ComfyUI's generic layout for every
        model; also ai-toolkit's FLUX.2 layout, which diffusers' Flux2KleinPipeline converts on
        reading). A LoRA on q, k and v becomes one LoRA on the fused layer of rank 3r: the
        three down matrices stacked, the up matrices block-diagonal, so that up @ down is
        exactly the three updates stacked. No `.alpha`: both ComfyUI and diffusers then apply
        up @ down at scale 1, which is the trained scale (alpha = rank).
        """
        import torch

        layers: dict[str, dict[str, Any]] = {}
        for key, weight in state.items():
            match = _PEFT_KEY.match(key)
            if match is None:
                raise ValueError(f"Not a LoRA weight in peft naming: `{key}`")
            layers.setdefault(match.group(1), {})[match.group(2)] = weight

        out: dict[str, Any] = {}

        def put(name: str, down: Any, up: Any) -> None:
            out[f"diffusion_model.{name}.lora_A.weight"] = down.contiguous()
            out[f"diffusion_model.{name}.lora_B.weight"] = up.contiguous()

        for module in list(layers):
            if module not in layers:  # consumed by a fused qkv group
                continue
            block = _BLOCK.match(module)
            if block is None:
                raise ValueError(f"No ComfyUI name for the LoRA layer `{module}`.")
            kind, index, rest = block.groups()
            if kind == "single_transformer_blocks":
                if rest not in _COMFYUI_SINGLE:
                    raise ValueError(f"No ComfyUI name for the LoRA layer `{module}`.")
                weights = layers.pop(module)
                put(f"single_blocks.{index}.{_COMFYUI_SINGLE[rest]}", weights["A"], weights["B"])
                continue
            prefix = f"transformer_blocks.{index}"
            group = next((g for g in _COMFYUI_FUSED_QKV if rest.removeprefix("attn.") in g), None)
            if group is not None and rest.startswith("attn."):
                names = [f"{prefix}.attn.{p}" for p in group]
                missing = [n for n in names if n not in layers]
                if missing:
                    raise ValueError(
                        f"ComfyUI fuses q, k and v: a LoRA on {module} needs all three ({missing})."
                    )
                parts = [layers.pop(n) for n in names]
                down = torch.cat([p["A"] for p in parts], dim=0)
                up = torch.block_diag(*[p["B"] for p in parts])
                put(f"double_blocks.{index}.{_COMFYUI_FUSED_QKV[group]}", down, up)
                continue
            if rest not in _COMFYUI_DOUBLE:
                raise ValueError(f"No ComfyUI name for the LoRA layer `{module}`.")
            weights = layers.pop(module)
            put(f"double_blocks.{index}.{_COMFYUI_DOUBLE[rest]}", weights["A"], weights["B"])
        return out


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
        fast_model=INSTANT_MODEL,  # the step-distilled 4B, black-forest-labs/FLUX.2-klein-4B
        # Flux2KleinPipeline's defaults for the base model; the distilled model's recipe (its
        # model card: 4 steps, no classifier-free guidance, which 1.0 is in its pipeline).
        sampling=(50, 4.0),
        distilled_sampling=(4, 1.0),
        reference_images=4,  # the instant mode's 1-4 photos (intake.references)
        inpaint_model=None,  # the base model inpaints: Flux2KleinInpaintPipeline
        inpaint_strength=1.0,  # its pipeline's default is 0.8: the grey canvas would show
        stand_in_inpaint_model=None,
        hub_models=(
            (
                "black-forest-labs/FLUX.2-klein-base-4B",
                "FLUX.2 [klein] 4B: sharper labels and text; trains in ~10 GB of GPU memory "
                "(a 24 GB card)",
            ),
            (
                INSTANT_MODEL,
                "FLUX.2 [klein] 4B distilled: 4-step shots, instant shots from your photos; "
                "trains in ~10 GB of GPU memory",
            ),
        ),
    )
)
