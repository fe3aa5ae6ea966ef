"""LoRA export formats: one module per format, registered with `register_export_format`.

A new format (say ComfyUI's layout for a new family) is one module here that builds an
`ExportFormat` and registers it, plus its import below; training writes it, packshot.json lists
it under `files`, and the card, the CLI, the Hub upload and the studio's downloads follow.
"""

from __future__ import annotations

from packshot.train.exports.base import (
    EXPORT_FORMATS,
    ExportFormat,
    register_export_format,
    write_exports,
)
from packshot.train.exports.comfyui import COMFYUI, COMFYUI_WEIGHT_NAME, save_comfyui_lora
from packshot.train.exports.diffusers import DIFFUSERS, save_diffusers_lora
from packshot.train.exports.kohya import KOHYA, KOHYA_WEIGHT_NAME, save_kohya_lora

__all__ = [
    "COMFYUI",
    "COMFYUI_WEIGHT_NAME",
    "DIFFUSERS",
    "EXPORT_FORMATS",
    "KOHYA",
    "KOHYA_WEIGHT_NAME",
    "ExportFormat",
    "register_export_format",
    "save_comfyui_lora",
    "save_diffusers_lora",
    "save_kohya_lora",
    "write_exports",
]
