"""The model-family interface and its registry: `ModelFamily`, `register_family`, lookups, and
`detect_family`, which tells a saved diffusers folder's family from its JSON configs.

Each family lives in one module of this package (`sd.py`: SD 1.5, SDXL and their inpainting
variants) and registers itself with `register_family`. This module reads JSON only: no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packshot.errors import ModelLoadError, UsageError

PipelineKind = Literal["text2img", "inpaint"]
PIPELINE_KINDS: tuple[str, ...] = ("text2img", "inpaint")

# A UNet that takes 9 input channels is an inpainting model:
# 4 noisy latents + 4 latents of the masked photo + 1 mask.
INPAINT_IN_CHANNELS = 9


@dataclass(frozen=True)
class ModelFamily:
    """One kind of diffusion model, and the diffusers classes that run it."""

    name: str  # "sd15", "sdxl", "sd15-inpaint", ...
    label: str  # for people: "Stable Diffusion 1.5"
    text2img_pipeline: str | None  # diffusers class name; None: the family can't do text-to-image
    inpaint_pipeline: str | None  # diffusers class name; None: the family can't inpaint
    resolution: int  # native side length in pixels: what it was trained at
    text_encoders: int  # how many text encoders model_index.json lists (SDXL: 2)
    is_inpaint: bool  # a dedicated inpainting model (its denoiser also takes the mask and photo)
    # `_class_name` values of model_index.json that belong to this family.
    class_names: tuple[str, ...] = ()
    denoiser: str = "unet"  # the model_index.json component that denoises ("transformer" in DiTs)
    stand_in: str | None = None  # the alias of its tiny stand-in (packshot.models.standins)

    @property
    def base_area(self) -> int:
        """Aspect-ratio buckets keep about this many pixels (width x height) whatever the shape."""
        return self.resolution * self.resolution

    def pipeline_class_name(self, kind: str) -> str:
        """The diffusers class that runs this family for `kind`; a UsageError if it can't."""
        if kind not in PIPELINE_KINDS:
            raise UsageError(f"`kind` must be one of {', '.join(PIPELINE_KINDS)}, not `{kind}`.")
        name = self.text2img_pipeline if kind == "text2img" else self.inpaint_pipeline
        if name is None:
            if kind == "text2img":
                raise UsageError(
                    f"This is an inpainting model ({self.label}): it only fills masked areas of a "
                    "photo and can't make images from text alone. Use an SD 1.5 or SDXL model."
                )
            raise UsageError(f"{self.label} models can't inpaint. Use an SD 1.5 or SDXL model.")
        return name


FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily, *, replace: bool = False) -> ModelFamily:
    """Add `family` to FAMILIES, so that `detect_family` and `load_pipeline` know it."""
    if family.name in FAMILIES and not replace:
        raise ValueError(f"A model family named `{family.name}` is already registered.")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> ModelFamily:
    """The registered family called `name` ("sd15", "sdxl", ...)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UsageError(
            f"Unknown model family `{name}`. Known families: {', '.join(FAMILIES)}."
        ) from None


def stand_in_aliases() -> dict[str, ModelFamily]:
    """Each built-in stand-in alias ("tiny", "tiny-sdxl", ...) and the family it stands in for."""
    return {f.stand_in: f for f in FAMILIES.values() if f.stand_in is not None}


def _read_json(path: Path, model_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelLoadError(f"Can't read {path}: {error.strerror or error}.") from error
    except ValueError as error:
        raise ModelLoadError(
            f"{path} is not valid JSON ({error}). The model folder {model_dir} is damaged: "
            "download or save it again."
        ) from error
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} should hold a JSON object. Save {model_dir} again.")
    return data


def _supported() -> str:
    return "; ".join(f"{f.name} ({', '.join(f.class_names)})" for f in FAMILIES.values())


def detect_family(model_dir: Path) -> ModelFamily:
    """The family of the diffusers pipeline saved in `model_dir`, read from its JSON configs.

    `model_index.json` gives the pipeline class and the text encoders; the denoiser's
    `config.json` tells an inpainting model (9 input channels) from a plain one.
    """
    # 1. The pipeline class.
    index_path = model_dir / "model_index.json"
    if not index_path.is_file():
        raise ModelLoadError(
            f"`{model_dir}` is a folder but not a diffusers pipeline (no model_index.json). "
            "Pass a folder saved with `save_pretrained`, or a Hub id such as "
            "stabilityai/stable-diffusion-xl-base-1.0"
        )
    index = _read_json(index_path, model_dir)
    class_name = index.get("_class_name")
    if not isinstance(class_name, str):
        raise ModelLoadError(f"{index_path} has no `_class_name`: it is not a diffusers pipeline.")
    candidates = [f for f in FAMILIES.values() if class_name in f.class_names]
    if not candidates:
        raise ModelLoadError(
            f"`{model_dir}` is a {class_name}, which packshot can't run. "
            f"Supported model families: {_supported()}."
        )

    # 2. How many text encoders it lists (an optional one may be saved as [null, null]).
    text_encoders = sum(
        1
        for key, value in index.items()
        if key.startswith("text_encoder") and isinstance(value, list) and value and value[0]
    )

    # 3. Inpainting or not: the denoiser's input channels.
    matches = []
    for family in candidates:
        config_path = model_dir / family.denoiser / "config.json"
        in_channels = None
        if config_path.is_file():
            in_channels = _read_json(config_path, model_dir).get("in_channels")
        is_inpaint = in_channels == INPAINT_IN_CHANNELS
        if family.is_inpaint == is_inpaint and family.text_encoders == text_encoders:
            matches.append(family)
    if not matches:
        raise ModelLoadError(
            f"`{model_dir}` is a {class_name} with {text_encoders} text encoder(s) and a denoiser "
            "packshot doesn't recognise (see its unet/config.json `in_channels`). "
            f"Supported model families: {_supported()}."
        )
    return matches[0]
