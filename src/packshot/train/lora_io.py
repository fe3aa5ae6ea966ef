"""The LoRA adapter packshot trains: adding it to a model, and its weights in peft naming.

Which layers get adapters is the model family's (`ModelFamily.denoiser_lora_targets`); the
files the weights are saved in are the export formats' (`packshot.train.exports`).
"""

from __future__ import annotations

import re

import torch
from diffusers import ModelMixin
from peft import LoraConfig, inject_adapter_in_model


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
