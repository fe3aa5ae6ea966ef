"""Save trained LoRA layers in the two formats every tool reads: diffusers/peft and kohya/A1111.

`pytorch_lora_weights.safetensors` is what `pipeline.load_lora_weights(DIR)` reads with no
extra arguments; `pytorch_lora_weights_kohya.safetensors` is what AUTOMATIC1111, ComfyUI,
SD.Next and InvokeAI read (`lora_unet_…` / `lora_te…` keys with `.alpha` scalars).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from peft import LoraConfig

from packshot.artifacts.product_model import DIFFUSERS_WEIGHT_NAME

UNET_TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]  # the attention projections
TEXT_ENCODER_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj"]

# Kohya prefixes: SD 1.x has one text encoder (`lora_te_`), SDXL two (`lora_te1_`, `lora_te2_`).
KOHYA_TE_PREFIXES = {1: ["lora_te"], 2: ["lora_te1", "lora_te2"]}


def lora_config(rank: int, target_modules: list[str]) -> LoraConfig:
    """The adapter packshot trains: alpha = rank, so its scale alpha/rank is exactly 1."""
    return LoraConfig(
        r=rank,
        lora_alpha=rank,
        init_lora_weights="gaussian",
        target_modules=target_modules,
    )


# peft names a layer's weights `….to_q.lora_A.<adapter>.weight` inside the model, and
# `….to_q.lora_A.weight` in saved files.
_ADAPTER_KEY = re.compile(r"\.lora_([AB])\.default\.weight$")
_FILE_KEY = re.compile(r"\.lora_([AB])\.weight$")


def add_lora(model: torch.nn.Module, config: LoraConfig) -> None:
    """Add a LoRA adapter named "default" to a diffusers UNet or a transformers text encoder.

    The UNet goes through diffusers' `add_adapter`. Text encoders get peft's
    `inject_adapter_in_model` directly: transformers 5's `add_adapter` asks for peft ≥ 0.22,
    and the layers injected are the same. The config is kept on the model for the savers.
    """
    from diffusers import ModelMixin
    from peft import inject_adapter_in_model

    if isinstance(model, ModelMixin):
        model.add_adapter(config)
    else:
        inject_adapter_in_model(config, model, adapter_name="default")
    model._packshot_lora_config = config  # type: ignore[assignment]


def adapter_config(model: torch.nn.Module) -> LoraConfig:
    """The LoraConfig `add_lora` gave `model`."""
    return model._packshot_lora_config  # type: ignore[return-value]


def lora_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights of `model` in peft file naming (`….to_q.lora_A.weight`), fp32 copies."""
    return {
        _ADAPTER_KEY.sub(r".lora_\1.weight", k): v.detach().to("cpu", torch.float32).clone()
        for k, v in model.state_dict().items()
        if _ADAPTER_KEY.search(k)
    }


def load_lora_state_dict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Copy saved adapter weights (`lora_state_dict` naming) back into `model`'s adapter."""
    expected = {k for k in model.state_dict() if _ADAPTER_KEY.search(k)}
    mapped = {_FILE_KEY.sub(r".lora_\1.default.weight", k): v for k, v in state_dict.items()}
    if set(mapped) != expected:
        raise ValueError(
            f"The saved LoRA weights don't fit {type(model).__name__}: "
            f"{len(set(mapped) ^ expected)} layer(s) differ."
        )
    model.load_state_dict(mapped, strict=False)


def save_diffusers_lora(
    out_dir: Path,
    pipeline_class: type,
    unet: torch.nn.Module,
    text_encoders: list[torch.nn.Module],
) -> Path:
    """Write `pytorch_lora_weights.safetensors` with the pipeline class's `save_lora_weights`.

    `text_encoders` are the ones that carry a LoRA (empty when only the UNet was trained). The
    adapter config goes into the file's metadata so loaders rebuild exactly rank and alpha.
    """
    from diffusers.utils import convert_state_dict_to_diffusers

    kwargs: dict[str, object] = {
        "unet_lora_layers": convert_state_dict_to_diffusers(lora_state_dict(unet)),
        "unet_lora_adapter_metadata": adapter_config(unet).to_dict(),
    }
    names = ["text_encoder", "text_encoder_2"]
    for name, encoder in zip(names, text_encoders, strict=False):
        kwargs[f"{name}_lora_layers"] = convert_state_dict_to_diffusers(lora_state_dict(encoder))
        kwargs[f"{name}_lora_adapter_metadata"] = adapter_config(encoder).to_dict()
    pipeline_class.save_lora_weights(
        out_dir, weight_name=DIFFUSERS_WEIGHT_NAME, safe_serialization=True, **kwargs
    )
    return out_dir / DIFFUSERS_WEIGHT_NAME


def to_kohya(
    state_dict: dict[str, torch.Tensor], prefix: str, alpha: float
) -> dict[str, torch.Tensor]:
    """Peft-named LoRA weights of one model → kohya keys under `prefix`, with `.alpha` each.

    `down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight` becomes
    `lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight`.
    Kohya loaders scale each layer by alpha / rank, so alpha = the trained `lora_alpha` gives
    exactly the scale the model was trained with.
    """
    out: dict[str, torch.Tensor] = {}
    pattern = re.compile(r"^(.*)\.lora_([AB])\.weight$")
    for key, weight in state_dict.items():
        match = pattern.match(key)
        if match is None:
            raise ValueError(f"Not a LoRA weight in peft naming: `{key}`")
        module, which = match.groups()
        name = f"{prefix}_{module.replace('.', '_')}"
        out[f"{name}.lora_{'down' if which == 'A' else 'up'}.weight"] = weight
        # kohya stores alpha as a float scalar tensor, one per layer
        out[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
    return out


def save_kohya_lora(
    path: Path,
    unet: torch.nn.Module,
    text_encoders: list[torch.nn.Module],
    num_text_encoders: int,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the kohya/A1111 file: the UNet's and the trained text encoders' layers, with alphas."""
    from safetensors.torch import save_file

    tensors = to_kohya(lora_state_dict(unet), "lora_unet", adapter_config(unet).lora_alpha)
    prefixes = KOHYA_TE_PREFIXES[num_text_encoders]
    for prefix, encoder in zip(prefixes, text_encoders, strict=False):
        tensors.update(
            to_kohya(lora_state_dict(encoder), prefix, adapter_config(encoder).lora_alpha)
        )
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})
    return path
