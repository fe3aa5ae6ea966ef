"""The diffusers/peft LoRA file: what `pipeline.load_lora_weights(DIR)` reads with no arguments.

It is also the file packshot itself shoots with, so its name is the product model's
(`artifacts.product_model.DIFFUSERS_WEIGHT_NAME`).
"""

from __future__ import annotations

from pathlib import Path

import diffusers
import torch
from diffusers.utils import convert_state_dict_to_diffusers

from packshot.artifacts.product_model import DIFFUSERS_WEIGHT_NAME
from packshot.models.families import ModelFamily
from packshot.train.config import TrainConfig
from packshot.train.exports.base import ExportFormat, register_export_format
from packshot.train.lora_io import adapter_config, lora_state_dict


def save_diffusers_lora(
    path: Path,
    family: ModelFamily,
    models: dict[str, torch.nn.Module],
    config: TrainConfig | None = None,
) -> None:
    """Write the LoRA with the family's pipeline class's `save_lora_weights`.

    `models` are the ones that carry a LoRA by their model_index.json names. The adapter
    config goes into the file's metadata so loaders rebuild exactly rank and alpha.
    """
    kwargs: dict[str, object] = {}
    for name, model in models.items():  # `unet_lora_layers`, `text_encoder_lora_layers`, …
        state = lora_state_dict(model)
        if family.lora_file_diffusers_names:
            state = convert_state_dict_to_diffusers(state)
        kwargs[f"{name}_lora_layers"] = state
        kwargs[f"{name}_lora_adapter_metadata"] = adapter_config(model).to_dict()
    pipeline_class = getattr(diffusers, family.pipeline_class_name("text2img"))
    pipeline_class.save_lora_weights(
        path.parent, weight_name=path.name, safe_serialization=True, **kwargs
    )


DIFFUSERS = register_export_format(
    ExportFormat(
        name="diffusers",
        file_name=DIFFUSERS_WEIGHT_NAME,
        readers="diffusers (`pipe.load_lora_weights(DIR)`), packshot",
        write=save_diffusers_lora,
    )
)
