"""A shot on disk: its PNG, whose AUTOMATIC1111 `parameters` text chunk holds its recipe, and
its JSON sidecar; written atomically, read back, and kept when a run resumes.

The recipe format is A1111's infotext (`modules/processing.py` `create_infotext`, parsed back
by `modules/infotext_utils.py` `parse_generation_parameters`), which Civitai, ComfyUI and
InvokeAI also read:

    a photo of sks teapot on a table
    Negative prompt: blurry, lowres
    Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7.0, Seed: 123, Size: 512x512, Model: …

Shoots and placements write every shot through `write_shot` (PNG, then sidecar, each through a
temporary file renamed into place), so a shot whose sidecar is there is whole; `written_shot`
is the resume check, `read_sidecar` and `add_scores` the sidecar's reader and its one update.
Every PNG also carries the IPTC digital source type in its XMP (`artifacts.provenance`): the
label marketplaces read to know an image was made with AI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, Self

from PIL import Image, PngImagePlugin

from packshot import __version__
from packshot.artifacts.provenance import PNG_XMP_KEY, SourceType, xmp_packet

PARAMETERS_KEY = "parameters"  # the PNG tEXt keyword A1111 writes and reads
NEGATIVE_PREFIX = "Negative prompt: "
# One `Key: value` of the last line; a value holding a comma is a JSON string (A1111's regex).
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


@dataclass(frozen=True)
class Recipe:
    """Everything needed to make a shot again, in diffusers' names."""

    prompt: str
    negative_prompt: str
    num_inference_steps: int
    sampler: str  # A1111's sampler name: "DPM++ 2M Karras"
    guidance_scale: float
    seed: int
    width: int
    height: int
    model: str  # the base model's name
    lora_hashes: dict[str, str] = field(default_factory=dict)  # LoRA name -> A1111 hash
    lora_scale: float | None = None

    def to_parameters(self) -> str:
        """The A1111 infotext: prompt, negative prompt, then one line of `Key: value`."""
        values: dict[str, Any] = {
            "Steps": self.num_inference_steps,
            "Sampler": self.sampler,
            "CFG scale": self.guidance_scale,
            "Seed": self.seed,
            "Size": f"{self.width}x{self.height}",
            "Model": self.model,
        }
        if self.lora_hashes:
            values["Lora hashes"] = ", ".join(f"{k}: {v}" for k, v in self.lora_hashes.items())
        if self.lora_scale is not None:
            values["Lora scale"] = self.lora_scale
        values["Version"] = f"packshot {__version__}"
        line = ", ".join(f"{key}: {_quote(value)}" for key, value in values.items())
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(NEGATIVE_PREFIX + self.negative_prompt)
        return "\n".join([*lines, line])


class PlannedShot(Protocol):
    """What a planner decided for one shot (`packshot.shoot.plan.PlannedShot`)."""

    prompt: str
    negative_prompt: str
    seed: int
    width: int
    height: int


@dataclass(frozen=True)
class RecipeSettings:
    """The part of the recipe every shot of one run shares."""

    num_inference_steps: int
    sampler: str  # A1111's sampler name: "DPM++ 2M Karras"
    guidance_scale: float
    model: str  # the model reference as given: a Hub id, a folder, a tiny alias
    lora_hashes: dict[str, str] = field(default_factory=dict)  # LoRA name -> A1111 hash
    lora_scale: float | None = None  # the product LoRA's, when there is one

    def recipe(self, shot: PlannedShot) -> Recipe:
        """The recipe of `shot` made with these settings (the model by its name alone)."""
        return Recipe(
            prompt=shot.prompt,
            negative_prompt=shot.negative_prompt,
            num_inference_steps=self.num_inference_steps,
            sampler=self.sampler,
            guidance_scale=self.guidance_scale,
            seed=shot.seed,
            width=shot.width,
            height=shot.height,
            model=Path(self.model.rstrip("/")).name,
            lora_hashes=self.lora_hashes,
            lora_scale=self.lora_scale,
        )


def _quote(value: Any) -> str:
    """A1111's `quote`: values with a comma, colon or quote become JSON strings."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text and '"' not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            return text
    return text


def parse_parameters(text: str) -> dict[str, Any]:
    """Read an A1111 infotext back: {"prompt", "negative_prompt", and each `Key: value`}.

    The last line is the settings when it holds at least three `Key: value` pairs (A1111's
    rule); the lines before it are the prompt, then the negative prompt.
    """
    *lines, last = text.strip().split("\n")
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    for line in lines:
        if line.startswith(NEGATIVE_PREFIX) or negative_lines:
            negative_lines.append(
                line.removeprefix(NEGATIVE_PREFIX) if not negative_lines else line
            )
        else:
            prompt_lines.append(line)
    result: dict[str, Any] = {
        "prompt": "\n".join(prompt_lines),
        "negative_prompt": "\n".join(negative_lines),
    }
    for key, value in _PARAM.findall(last):
        result[key.strip()] = _unquote(value.strip())
    return result


def recipe_from_parameters(text: str) -> Recipe:
    """The `Recipe` an infotext written by `Recipe.to_parameters` describes."""
    values = parse_parameters(text)
    width, height = (int(side) for side in values["Size"].split("x"))
    hashes = {}
    for pair in values.get("Lora hashes", "").split(","):
        name, _, digest = pair.strip().rpartition(": ")
        if name:
            hashes[name] = digest
    return Recipe(
        prompt=values["prompt"],
        negative_prompt=values["negative_prompt"],
        num_inference_steps=int(values["Steps"]),
        sampler=values["Sampler"],
        guidance_scale=float(values["CFG scale"]),
        seed=int(values["Seed"]),
        width=width,
        height=height,
        model=values.get("Model", ""),
        lora_hashes=hashes,
        lora_scale=float(values["Lora scale"]) if "Lora scale" in values else None,
    )


def lora_hash(path: Path) -> str:
    """A1111's LoRA hash ("AutoV3"): sha256 of a safetensors file after its header, 12 digits.

    Hashing only the tensors, not the JSON header, gives the same hash for the same weights
    whatever metadata a tool wrote (A1111 `modules/hashes.py` `addnet_hash_safetensors`).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        (header_length,) = struct.unpack("<Q", fh.read(8))
        fh.seek(8 + header_length)
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def save_png(image: Image.Image, path: Path, parameters: str, *, source_type: SourceType) -> Path:
    """Write `image` as a PNG with `parameters` in its `parameters` text chunk and the IPTC
    digital source type `source_type` in its XMP (`iTXt` `XML:com.adobe.xmp`)."""
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, parameters)
    xmp = xmp_packet(source_type, creator_tool=f"packshot {__version__}").decode()
    info.add_itxt(PNG_XMP_KEY, xmp)
    image.save(path, format="PNG", pnginfo=info)
    return path


def read_parameters(path: Path) -> str | None:
    """The `parameters` text of a PNG, or None if it has none."""
    with Image.open(path) as image:
        text = image.info.get(PARAMETERS_KEY)
    return str(text) if text is not None else None


def sidecar_path(png: Path) -> Path:
    """The JSON sidecar beside a shot's PNG: the same name, `.json`."""
    return png.with_suffix(".json")


def write_shot(
    image: Image.Image,
    png: Path,
    recipe: Recipe,
    extra: dict[str, Any],
    *,
    source_type: SourceType,
) -> Path:
    """Write a shot: its PNG (the recipe in `parameters`, the IPTC digital source type
    `source_type` in its XMP), then its sidecar (the same recipe in diffusers' names, the
    source type, plus packshot's own fields `extra`); returns the sidecar's path.

    Each file goes through a temporary file renamed into place, and the sidecar comes last: a
    run cut off at any moment leaves no half-written file under a shot's name.
    """
    tmp = png.with_name(f".{png.name}.tmp")
    save_png(image, tmp, recipe.to_parameters(), source_type=source_type)
    os.replace(tmp, png)
    data = {
        "parameters": recipe.to_parameters(),
        "prompt": recipe.prompt,
        "negative_prompt": recipe.negative_prompt,
        "num_inference_steps": recipe.num_inference_steps,
        "sampler": recipe.sampler,
        "guidance_scale": recipe.guidance_scale,
        "seed": recipe.seed,
        "width": recipe.width,
        "height": recipe.height,
        "model": recipe.model,
        "lora_hashes": recipe.lora_hashes,
        "lora_scale": recipe.lora_scale,
        "digital_source_type": source_type,
        **extra,
    }
    return write_json(sidecar_path(png), data)


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """`data` as indented UTF-8 JSON in `path`, through a temporary file renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_sidecar(png: Path) -> dict[str, Any] | None:
    """The sidecar of the shot `png`, or None when it has none or it can't be read."""
    try:
        data = json.loads(sidecar_path(png).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def written_shot(png: Path, planned: PlannedShot) -> dict[str, Any] | None:
    """The sidecar of a shot already written as `planned` (kept on a resume), else None.

    A shot counts as written when its PNG and its sidecar (written last) are both there and
    the sidecar records the planned prompt, negative prompt, seed and size; anything else is
    rendered again. (A run's other settings are the caller's to hold the same.)
    """
    if not png.is_file():
        return None
    data = read_sidecar(png)
    if data is None:
        return None
    for name in ("prompt", "negative_prompt", "seed", "width", "height"):
        if data.get(name) != getattr(planned, name):
            return None
    return data


def add_scores(png: Path, scores: dict[str, Any]) -> Path:
    """Record the judges' `scores` in the shot's sidecar; returns the sidecar's path."""
    path = sidecar_path(png)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["scores"] = scores
    return write_json(path, data)


@dataclass(frozen=True)
class ShotRecord:
    """One delivered image of a shoot, as `shoot.json` lists it: a shoot job's result and a
    catalogue shoot's summary are lists of them (`file` relative to their folder)."""

    file: str
    preset: str | None = None
    description: str | None = None
    prompt: str | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    scores: dict[str, Any] | None = None
    # Each marketplace profile's verdict when the run delivered it (`deliver.deliver_run`):
    # [{profile, label, status, title}], the title saying why it fails or warns
    badges: list[dict[str, str]] | None = None

    @classmethod
    def listed(cls, image: dict[str, Any], file: str, **more: Any) -> Self:
        """The record of `image`, an entry of `shoot.json`'s images, its file named `file`;
        `more` sets the other fields (a catalogue's, the badges of a delivery)."""
        listed = {
            f.name: image.get(f.name)
            for f in fields(ShotRecord)
            if f.name != "file" and f.name not in more
        }
        return cls(file=file, **listed, **more)
