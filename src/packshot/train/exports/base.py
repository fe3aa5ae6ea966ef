"""An export format of a trained LoRA: its file name, who reads it, and how it is written.

Each format is one module of `packshot.train.exports` that calls `register_export_format`;
the training run writes every registered format that fits the model's family into the model
folder, and packshot.json's `files` lists them (format name → file name), which is where the
model card, the CLI, the Hub upload and the studio's downloads read them from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from packshot.models.families import ModelFamily
from packshot.train.config import TrainConfig

# (the file's path, the base model's family, the models that carry a LoRA by their
# model_index.json names — the denoiser, and the text encoders when trained — the run's config)
Writer = Callable[[Path, ModelFamily, dict[str, torch.nn.Module], TrainConfig], None]


@dataclass(frozen=True)
class ExportFormat:
    """One file format a product model's LoRA is saved in."""

    name: str  # its key in packshot.json's `files`: "diffusers", "kohya"
    file_name: str  # in the model folder
    readers: str  # the tools that load it, for people: "AUTOMATIC1111, ComfyUI"
    write: Writer
    # The `ModelFamily` method that gives the file's key names (`kohya_state_dict`): the format
    # fits the families whose module implements it; None: every family.
    family_method: str | None = None

    def fits(self, family: ModelFamily) -> bool:
        return self.family_method is None or family.implements(self.family_method)


EXPORT_FORMATS: dict[str, ExportFormat] = {}


def trainer_metadata(config: TrainConfig | None) -> dict[str, str]:
    """The safetensors metadata kohya's own trainer writes, which A1111 and ComfyUI show: the
    base model and the rank."""
    metadata = {"format": "pt"}
    if config is not None:
        metadata |= {"ss_base_model": config.model, "ss_network_dim": str(config.rank)}
    return metadata


def register_export_format(export: ExportFormat, *, replace: bool = False) -> ExportFormat:
    """Add `export` to the formats every training run writes (the built-in ones use this too)."""
    if not replace:
        for other in EXPORT_FORMATS.values():
            if export.name == other.name or export.file_name == other.file_name:
                raise ValueError(
                    f"An export format named `{other.name}` ({other.file_name}) is already "
                    "registered: pick another name and file name, or pass replace=True."
                )
    EXPORT_FORMATS[export.name] = export
    return export


def write_exports(
    folder: Path,
    family: ModelFamily,
    models: dict[str, torch.nn.Module],
    config: TrainConfig,
) -> dict[str, str]:
    """Write every registered format that fits `family` into `folder`: format → file name."""
    written: dict[str, str] = {}
    for export in EXPORT_FORMATS.values():
        if export.fits(family):
            export.write(folder / export.file_name, family, models, config)
            written[export.name] = export.file_name
    return written
