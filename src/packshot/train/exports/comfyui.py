"""The ComfyUI LoRA file of a transformer family: the denoiser's layers under the names
ComfyUI's LoRA loader maps to them, which are the family's (`ModelFamily.comfyui_state_dict`:
FLUX.2 [klein]'s BFL layer names, Z-Image's diffusers names under `diffusion_model.`).

Kohya's `lora_unet_…` names are a UNet layout; for a transformer ComfyUI reads
`<key>.lora_A.weight` / `<key>.lora_B.weight` (comfy/lora.py's `load_lora`) under the keys
its `model_lora_keys_unet` maps for that model. The family's mapping says which; both
families' files are also read by their diffusers pipeline's `load_lora_weights`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from packshot.models.families import ModelFamily
from packshot.train.config import TrainConfig
from packshot.train.exports.base import ExportFormat, register_export_format, trainer_metadata
from packshot.train.lora_io import lora_state_dict

COMFYUI_WEIGHT_NAME = "pytorch_lora_weights_comfyui.safetensors"


def save_comfyui_lora(
    path: Path,
    family: ModelFamily,
    models: dict[str, torch.nn.Module],
    config: TrainConfig | None = None,
) -> None:
    """Write the denoiser's LoRA under the family's ComfyUI names, the base model in the
    metadata."""
    tensors = family.comfyui_state_dict(lora_state_dict(models[family.denoiser]))
    save_file(tensors, str(path), metadata=trainer_metadata(config))


COMFYUI = register_export_format(
    ExportFormat(
        name="comfyui",
        file_name=COMFYUI_WEIGHT_NAME,
        readers="ComfyUI (LoraLoaderModelOnly), diffusers (`weight_name=`)",
        write=save_comfyui_lora,
        family_method="comfyui_state_dict",
    )
)
