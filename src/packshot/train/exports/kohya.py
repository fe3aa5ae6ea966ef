"""The kohya LoRA file: what AUTOMATIC1111, ComfyUI, SD.Next and InvokeAI read.

The key names are the family's (`ModelFamily.kohya_state_dict`): `lora_unet_…` for the UNet,
`lora_te_…` / `lora_te1_…`, `lora_te2_…` for the text encoders, each layer with its `.alpha`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from packshot.models.families import ModelFamily
from packshot.train.config import TrainConfig
from packshot.train.exports.base import ExportFormat, register_export_format, trainer_metadata
from packshot.train.lora_io import adapter_config, lora_state_dict

KOHYA_WEIGHT_NAME = "pytorch_lora_weights_kohya.safetensors"


def save_kohya_lora(
    path: Path,
    family: ModelFamily,
    models: dict[str, torch.nn.Module],
    config: TrainConfig | None = None,
) -> None:
    """Write the layers of `models` under the family's kohya key names, with alphas; the
    base model and rank go into the file's metadata as kohya's own trainer writes them."""
    tensors = family.kohya_state_dict(
        {name: lora_state_dict(model) for name, model in models.items()},
        {name: adapter_config(model).lora_alpha for name, model in models.items()},
    )
    save_file(tensors, str(path), metadata=trainer_metadata(config))


KOHYA = register_export_format(
    ExportFormat(
        name="kohya",
        file_name=KOHYA_WEIGHT_NAME,
        readers="AUTOMATIC1111, ComfyUI, SD.Next, InvokeAI",
        write=save_kohya_lora,
        family_method="kohya_state_dict",  # a UNet layout: SD 1.5, SDXL
    )
)
