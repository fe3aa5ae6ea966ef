"""The ComfyUI LoRA file of a FLUX.2 [klein] model: the transformer's layers under ComfyUI's
(BFL's) own names, which ComfyUI's LoRA loader and diffusers' FLUX.2 converter both read.

Kohya's `lora_unet_…` names are a UNet layout; for FLUX.2 ComfyUI loads the generic layout
it accepts for every model (comfy/lora.py: `model_lora_keys_unet` maps `diffusion_model.<layer>`
to the layer, and `load_lora` reads `<key>.lora_A.weight` / `<key>.lora_B.weight`), where the
layers are BFL's: `double_blocks.N.img_attn.qkv` (q, k and v fused), `img_attn.proj`,
`img_mlp.0` / `.2`, the `txt_…` stream, and `single_blocks.N.linear1` / `linear2`. It is
also ai-toolkit's FLUX.2 layout, which diffusers' `Flux2KleinPipeline.load_lora_weights`
converts on reading (`_convert_non_diffusers_flux2_lora_to_diffusers`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from packshot.models.families import ModelFamily
from packshot.train.config import TrainConfig
from packshot.train.exports.base import ExportFormat, register_export_format, trainer_metadata
from packshot.train.lora_io import lora_state_dict

COMFYUI_WEIGHT_NAME = "pytorch_lora_weights_comfyui.safetensors"

# The ComfyUI/BFL name of each diffusers layer a LoRA may sit on. q, k and v of a double
# block's stream are one fused `qkv` layer there.
_FUSED_QKV = {
    ("to_q", "to_k", "to_v"): "img_attn.qkv",
    ("add_q_proj", "add_k_proj", "add_v_proj"): "txt_attn.qkv",
}
_DOUBLE_RENAMES = {
    "attn.to_out.0": "img_attn.proj",
    "attn.to_add_out": "txt_attn.proj",
    "ff.linear_in": "img_mlp.0",
    "ff.linear_out": "img_mlp.2",
    "ff_context.linear_in": "txt_mlp.0",
    "ff_context.linear_out": "txt_mlp.2",
}
_SINGLE_RENAMES = {"attn.to_qkv_mlp_proj": "linear1", "attn.to_out": "linear2"}
_PEFT_KEY = re.compile(r"^(.*)\.lora_([AB])\.weight$")


def _split(key: str) -> tuple[str, str]:
    match = _PEFT_KEY.match(key)
    if match is None:
        raise ValueError(f"Not a LoRA weight in peft naming: `{key}`")
    return match.group(1), match.group(2)


def comfyui_lora_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Peft-named transformer LoRA weights → the layout ComfyUI loads for FLUX.2 models.

    Keys are `diffusion_model.<BFL layer name>.lora_A.weight` (down) and `.lora_B.weight` (up).
    A LoRA on q, k and v becomes one LoRA on the fused layer of rank 3r: the
    three down matrices stacked, the up matrices block-diagonal, so that up @ down is exactly
    the three updates stacked. No `.alpha`: both ComfyUI and diffusers then apply up @ down at
    scale 1, which is the trained scale (alpha = rank). diffusers reads the same file back
    through its `_convert_non_diffusers_flux2_lora_to_diffusers`.
    """
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, weight in state.items():
        module, which = _split(key)
        layers.setdefault(module, {})[which] = weight

    out: dict[str, torch.Tensor] = {}

    def put(name: str, down: torch.Tensor, up: torch.Tensor) -> None:
        out[f"diffusion_model.{name}.lora_A.weight"] = down.contiguous()
        out[f"diffusion_model.{name}.lora_B.weight"] = up.contiguous()

    for module in list(layers):
        if module not in layers:  # consumed by a fused qkv group
            continue
        block = re.match(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)$", module)
        if block is None:
            raise ValueError(f"No ComfyUI name for the LoRA layer `{module}`.")
        kind, index, rest = block.groups()
        if kind == "single_transformer_blocks":
            if rest not in _SINGLE_RENAMES:
                raise ValueError(f"No ComfyUI name for the LoRA layer `{module}`.")
            weights = layers.pop(module)
            put(f"single_blocks.{index}.{_SINGLE_RENAMES[rest]}", weights["A"], weights["B"])
            continue
        prefix = f"transformer_blocks.{index}"
        group = next((g for g in _FUSED_QKV if rest.removeprefix("attn.") in g), None)
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
            put(f"double_blocks.{index}.{_FUSED_QKV[group]}", down, up)
            continue
        if rest not in _DOUBLE_RENAMES:
            raise ValueError(f"No ComfyUI name for the LoRA layer `{module}`.")
        weights = layers.pop(module)
        put(f"double_blocks.{index}.{_DOUBLE_RENAMES[rest]}", weights["A"], weights["B"])
    return out


def save_comfyui_lora(
    path: Path,
    family: ModelFamily,
    models: dict[str, torch.nn.Module],
    config: TrainConfig | None = None,
) -> None:
    """Write the transformer's LoRA in ComfyUI's FLUX.2 layout, the base model in the metadata."""
    tensors = comfyui_lora_state_dict(lora_state_dict(models[family.denoiser]))
    save_file(tensors, str(path), metadata=trainer_metadata(config))


COMFYUI = register_export_format(
    ExportFormat(
        name="comfyui",
        file_name=COMFYUI_WEIGHT_NAME,
        readers="ComfyUI (LoraLoaderModelOnly), diffusers (`weight_name=`)",
        write=save_comfyui_lora,
        families=("flux2-klein",),
    )
)
