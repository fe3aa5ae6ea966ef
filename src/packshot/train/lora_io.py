"""Save trained LoRA layers in the two formats every tool reads: diffusers/peft and kohya/A1111.

`pytorch_lora_weights.safetensors` is what `pipeline.load_lora_weights(DIR)` reads with no
extra arguments; `pytorch_lora_weights_kohya.safetensors` is what AUTOMATIC1111, ComfyUI,
SD.Next and InvokeAI read. Which layers get adapters and how the kohya keys are named is
the model family's (`ModelFamily.denoiser_lora_targets`, `.kohya_state_dict`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from peft import LoraConfig

from packshot.artifacts.product_model import DIFFUSERS_WEIGHT_NAME
from packshot.models.families import ModelFamily


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
    out_dir: Path, family: ModelFamily, models: dict[str, torch.nn.Module]
) -> Path:
    """Write `pytorch_lora_weights.safetensors` with the pipeline class's `save_lora_weights`.

    `models` are the ones that carry a LoRA by their model_index.json names (the denoiser, and
    the text encoders when they were trained). The adapter config goes into the file's
    metadata so loaders rebuild exactly rank and alpha.
    """
    import diffusers
    from diffusers.utils import convert_state_dict_to_diffusers

    kwargs: dict[str, object] = {}
    for name, model in models.items():  # `unet_lora_layers`, `text_encoder_lora_layers`, …
        kwargs[f"{name}_lora_layers"] = convert_state_dict_to_diffusers(lora_state_dict(model))
        kwargs[f"{name}_lora_adapter_metadata"] = adapter_config(model).to_dict()
    pipeline_class = getattr(diffusers, family.pipeline_class_name("text2img"))
    pipeline_class.save_lora_weights(
        out_dir, weight_name=DIFFUSERS_WEIGHT_NAME, safe_serialization=True, **kwargs
    )
    return out_dir / DIFFUSERS_WEIGHT_NAME


def save_kohya_lora(
    path: Path,
    family: ModelFamily,
    models: dict[str, torch.nn.Module],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the kohya/A1111 file: the layers of `models` (as in `save_diffusers_lora`) under
    the family's key names, with alphas."""
    from safetensors.torch import save_file

    tensors = family.kohya_state_dict(
        {name: lora_state_dict(model) for name, model in models.items()},
        {name: adapter_config(model).lora_alpha for name, model in models.items()},
    )
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})
    return path
