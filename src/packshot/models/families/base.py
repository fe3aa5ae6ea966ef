"""The model-family interface and its registry: `ModelFamily`, `register_family`, lookups, and
`detect_family`, which tells a saved diffusers folder's family from its JSON configs.

Each family lives in one module of this package (`sd.py`: SD 1.5, SDXL and their inpainting
variants) and registers itself with `register_family`. This module reads JSON only: no torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packshot.errors import ModelLoadError, UsageError

PipelineKind = Literal["text2img", "inpaint"]
PIPELINE_KINDS: tuple[str, ...] = ("text2img", "inpaint")

# A UNet that takes 9 input channels is an inpainting model:
# 4 noisy latents + 4 latents of the masked photo + 1 mask.
INPAINT_IN_CHANNELS = 9

# `kind` in the packshot.json of a tiny stand-in's folder (`models.standins` writes it): how a
# stand-in is recognised, by a family too (its default size).
STAND_IN_KIND = "packshot-tiny-stand-in"


@dataclass(frozen=True)
class CropGeometry:
    """Where a training image was cut from, in the names of SDXL's size and crop conditioning
    (`original_size`, `crops_coords_top_left`, `target_size` of its pipeline): (height, width)
    and (top, left) pairs, in pixels."""

    original_size: tuple[int, int]  # the photo before it was cropped and resized
    crops_coords_top_left: tuple[int, int]  # what the crop cut away above and left of it,
    # in the pixels of the photo resized as the crop was (0 where the crop is padded)
    target_size: tuple[int, int]  # the size trained at: the image's aspect bucket

    @classmethod
    def uncropped(cls, width: int, height: int) -> CropGeometry:
        """An image trained at its own size, nothing cut away (a square crop of a training set
        whose manifest predates buckets, as packshot always conditioned those)."""
        return cls((height, width), (0, 0), (height, width))


@dataclass(frozen=True)
class ModelFamily:
    """One kind of diffusion model: its facts, and how packshot trains and runs it.

    The facts are fields. The behaviour (loading the parts, encoding prompts, the training
    objective, the denoiser's call, LoRA export) is methods, which a family's module
    implements in a subclass (`sd.StableDiffusionFamily`); this base class only detects and
    loads pipelines, so a family registered with facts alone can be found and run, not trained.
    """

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
    # The text-to-image family whose LoRAs it takes ("sd15" for "sd15-inpaint"); None: itself.
    lineage: str | None = None
    trainable: bool = False  # packshot trains product LoRAs on it (presets/training.json has it)
    text_encoder_trainable: bool = True  # a LoRA may go on its text encoders too
    negative_prompts: bool = True  # its pipeline takes a `negative_prompt`
    # Its diffusers LoRA file in diffusers' own key names (`….lora.down.weight`), as the SD and
    # SDXL examples save it; False: peft's names (`….lora_A.weight`), as the FLUX.2 example does
    # (its loader reads nothing else).
    lora_file_diffusers_names: bool = True
    license: str | None = None  # the Hub license id of its base models, for model cards
    card_tag: str | None = None  # the Hub tag of its base models ("stable-diffusion-xl")
    size_multiple: int = 8  # image sides must be multiples of this (the VAE's down-sampling)
    # Memory of one image relative to an SD 1.5 image of the same size (batch sizing, cost).
    memory_factor: float = 1.0
    fast_lora: str | None = None  # the LCM-LoRA (Hub id) that `--fast` loads on it
    default_scheduler: str = "dpmpp_2m_karras"  # see shoot.render.SCHEDULERS
    # How many reference images of the product its pipeline takes at generation time (`image=`,
    # FLUX.2 [klein]: the instant mode, no training); 0: none.
    reference_images: int = 0
    # The step-distilled sibling `--fast` shoots with, the product's LoRA and all, instead of an
    # LCM-LoRA (FLUX.2 [klein] 4B: black-forest-labs/FLUX.2-klein-4B, 4 steps, no guidance).
    fast_model: str | None = None
    # A shot's (steps, guidance scale) when none are asked for, on the base model and on the
    # step-distilled variant (`is_step_distilled`, and `--fast` with `fast_model`); None:
    # packshot's defaults (`shoot.render.DEFAULT_STEPS`, `DEFAULT_GUIDANCE`). Guidance is in the
    # family's pipeline's own terms (FLUX.2: 1.0 is off; Z-Image: 0.0 is off).
    sampling: tuple[int, float] | None = None
    distilled_sampling: tuple[int, float] | None = None
    inpaint_model: str | None = None  # the inpainting model a placement uses for its LoRAs
    # The `strength` a placement's inpainting call passes; None: the pipeline's default (SD: 1,
    # SDXL: 0.9999 — a new scene from noise).
    inpaint_strength: float | None = None
    # ... and for those trained on its tiny stand-in.
    stand_in_inpaint_model: str | None = None
    # The base models of this family a merchant may pick (Hub id, what it is and needs, for
    # people), as the studio suggests them (`base_models`); any other Hub id works too.
    hub_models: tuple[tuple[str, str], ...] = ()

    @property
    def lora_family(self) -> str:
        """The family whose LoRAs this one takes: its `lineage`, else itself."""
        return self.lineage or self.name

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

    def native_resolution(self, model_dir: Path) -> int:
        """The side length the model in `model_dir` makes by default; the family's here."""
        return self.resolution

    def sampling_defaults(self, model_dir: Path) -> tuple[int, float] | None:
        """(steps, guidance scale) of a shot on the model in `model_dir` when none are asked
        for: `distilled_sampling` on the step-distilled variant, else `sampling`; None:
        packshot's defaults (`shoot.render.DEFAULT_STEPS`, `DEFAULT_GUIDANCE`)."""
        if self.distilled_sampling is not None and self.is_step_distilled(model_dir):
            return self.distilled_sampling
        return self.sampling

    def is_step_distilled(self, model_dir: Path) -> bool:
        """Whether the model in `model_dir` is its family's few-step distilled variant."""
        return False

    # -- behaviour: what a family's module implements --------------------------------------
    # Type names are strings: this module imports no torch. "Tensor" is torch.Tensor.

    def _missing(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"The {self.label} family doesn't implement {what}.")

    @property
    def text_encoder_names(self) -> tuple[str, ...]:
        """model_index.json names of the text encoders, in prompt-encoding order."""
        raise self._missing("text_encoder_names")

    def load_text_parts(self, model_dir: Path, dtype: Any) -> tuple[list[Any], list[Any], Any]:
        """(tokenizers, text encoders, VAE) of the folder: what the training cache needs."""
        raise self._missing("load_text_parts")

    def load_denoiser(self, model_dir: Path, dtype: Any) -> tuple[Any, Any]:
        """(the denoiser, the noise scheduler it was trained with)."""
        raise self._missing("load_denoiser")

    def encode_images(self, vae: Any, pixels: Any) -> Any:
        """Latents of (b, 3, R, R) pixels in [-1, 1], as the denoiser is trained on them."""
        raise self._missing("encode_images")

    def tokenize(self, tokenizers: Sequence[Any], captions: Sequence[str]) -> list[Any]:
        """Token ids of `captions`, one tensor per tokenizer."""
        raise self._missing("tokenize")

    def encode_prompt(
        self, text_encoders: Sequence[Any], input_ids: Sequence[Any]
    ) -> tuple[Any, Any | None]:
        """(prompt embeddings, pooled embeddings or None), as the family's pipeline makes them."""
        raise self._missing("encode_prompt")

    def prompt_tokenizer(self, pipe: Any) -> Any:
        """The tokenizer of a loaded pipeline whose token limit applies to prompts."""
        raise self._missing("prompt_tokenizer")

    def prompt_token_limit(self, tokenizer: Any) -> int:
        """How many tokens of a prompt the text encoder reads (the rest is cut off)."""
        raise self._missing("prompt_token_limit")

    def micro_conditioning(self, crops: Sequence[CropGeometry]) -> Any | None:
        """Extra per-example conditioning of a training batch, from where each image was cut
        (SDXL: its time ids); None for a family that takes none."""
        raise self._missing("micro_conditioning")

    def draw_timesteps(self, noise_scheduler: Any, size: int, generator: Any) -> Any:
        """Training timesteps for `size` examples, from `generator`."""
        raise self._missing("draw_timesteps")

    def noisy_and_target(
        self, noise_scheduler: Any, latents: Any, noise: Any, timesteps: Any
    ) -> tuple[Any, Any]:
        """The training objective: (the denoiser's input, what it must predict)."""
        raise self._missing("noisy_and_target")

    def loss_weights(self, noise_scheduler: Any, timesteps: Any, snr_gamma: float) -> Any:
        """Per-example weights of the loss at `timesteps` (min-SNR-γ for diffusion models)."""
        raise self._missing("loss_weights")

    def predict(
        self,
        denoiser: Any,
        noisy: Any,
        timesteps: Any,
        prompt_embeds: Any,
        pooled_prompt_embeds: Any | None,
        micro_conditioning: Any | None,
    ) -> Any:
        """The denoiser's prediction for a training batch."""
        raise self._missing("predict")

    @property
    def denoiser_lora_targets(self) -> list[str] | str:
        """Module names in the denoiser that get LoRA layers (a list of name endings, or one
        regular expression a whole module name must match, as peft's `target_modules`)."""
        raise self._missing("denoiser_lora_targets")

    @property
    def text_encoder_lora_targets(self) -> list[str]:
        """Module names in the text encoders that get LoRA layers."""
        raise self._missing("text_encoder_lora_targets")

    def kohya_state_dict(
        self, states: dict[str, dict[str, Any]], alphas: dict[str, float]
    ) -> dict[str, Any]:
        """LoRA weights per component (peft naming) → the kohya/A1111/ComfyUI file's tensors."""
        raise self._missing("kohya_state_dict")

    def comfyui_state_dict(self, state: dict[str, Any]) -> dict[str, Any]:
        """The denoiser's LoRA weights (peft naming) → the tensors of its ComfyUI file, under
        the names ComfyUI's LoRA loader maps to the family's layers (a transformer's layout;
        UNet families have `kohya_state_dict`)."""
        raise self._missing("comfyui_state_dict")

    def implements(self, method: str) -> bool:
        """Whether the family's module implements the behaviour `method` (an export format's
        key names, say): export formats fit the families that give their keys."""
        return getattr(type(self), method) is not getattr(ModelFamily, method)


FAMILIES: dict[str, ModelFamily] = {}

# The base model of a training when none is named: SDXL base 1.0, the default for real work.
TRAINING_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
# Instant shots' model when none is named: the step-distilled FLUX.2 [klein] 4B (Apache-2.0),
# which takes reference images and draws in 4 steps.
INSTANT_MODEL = "black-forest-labs/FLUX.2-klein-4B"


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


def trainable_families() -> tuple[str, ...]:
    """Names of the families packshot trains product LoRAs on ("sd15", "sdxl")."""
    return tuple(f.name for f in FAMILIES.values() if f.trainable)


def reference_families() -> tuple[str, ...]:
    """Labels of the families whose pipelines take reference images ("FLUX.2 [klein]")."""
    return tuple(dict.fromkeys(f.label for f in FAMILIES.values() if f.reference_images))


def base_models() -> list[tuple[str, str, ModelFamily]]:
    """Every registered family's suggested base models: (Hub id, note, family)."""
    return [(hub_id, note, f) for f in FAMILIES.values() for hub_id, note in f.hub_models]


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
            f"Pass a folder saved with `save_pretrained`, or a Hub id such as {TRAINING_MODEL}."
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
