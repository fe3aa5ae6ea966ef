"""The one typed training config (`TrainConfig`) and the presets it starts from.

Field names follow the diffusers DreamBooth-LoRA scripts (`learning_rate`, `max_train_steps`,
`rank`, …) so that a value read in their README means the same thing here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from packshot.errors import UsageError
from packshot.models.families import trainable_families

PresetName = Literal["quick", "standard", "best"]
PRESET_NAMES: tuple[str, ...] = ("quick", "standard", "best")
PRESETS_FILE = Path(__file__).resolve().parents[1] / "presets" / "training.json"


class TrainConfig(BaseModel):
    """Everything that decides what a training run does; saved whole into `packshot.json`."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # --- what to train -------------------------------------------------------------------
    model: str = Field(description="Base model: Hub id, local diffusers folder, or tiny alias.")
    class_word: str = Field(description='The kind of product, e.g. "headphones".')
    token: str = "sks"  # rare token bound to the product (DreamBooth paper; diffusers README)
    product: str | None = None  # the merchant's name for it, e.g. "bose headphones"
    preset: PresetName | None = None  # recorded for the model card; values already applied

    # --- the LoRA and the optimisation -----------------------------------------------------
    resolution: int = 512
    max_train_steps: int = 500
    train_batch_size: int = 1
    learning_rate: float = 1e-4
    rank: int = 4
    lr_scheduler: Literal[
        "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts"
    ] = "constant_with_warmup"
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2  # diffusers scripts' default
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0  # diffusers scripts' default gradient clipping
    use_8bit_adam: bool = True  # only takes effect where bitsandbytes and CUDA are present
    seed: int = 0

    # --- the loss --------------------------------------------------------------------------
    # min-SNR-γ weighting (Hang et al. 2023); 5.0 is the paper's and diffusers' recommendation.
    # None turns it off (plain MSE).
    snr_gamma: float | None = 5.0
    # Offset noise (crosslabs.org "Diffusion with offset noise"): lets the model learn very
    # dark or very bright packshots on plain backgrounds; 0.0357 is what SDXL's base was
    # trained with, small enough not to wash out mid-tones.
    noise_offset: float = 0.0357
    # Loss weight outside the product mask (inside it is 1). Below 1 so that a background the
    # merchant's photos share doesn't leak into every shot; above 0 so that the edge of the
    # product and its shadow are still learned. 1.0 turns masking off.
    background_weight: float = 0.3
    random_flip: bool = True  # horizontal flips double a small set (diffusers --random_flip)
    # Aspect-ratio buckets (kohya's --enable_bucket, on in ai-toolkit and OneTrainer): each
    # photo trains at the bucket nearest its aspect, about resolution² pixels in the family's
    # size multiple (`packshot.models.sizes`), so a landscape photo keeps its frame and the
    # LoRA learns the shapes merchants shoot in. On by default: a square crop of a landscape
    # photo loses its sides, or pads them when the product is wide. False: square crops.
    buckets: bool = True

    # --- prior preservation (DreamBooth paper) -----------------------------------------------
    with_prior_preservation: bool = False
    prior_loss_weight: float = 1.0  # diffusers README's value
    num_class_images: int = 100  # diffusers README's value (200 for SDXL in some guides)
    class_prompt: str | None = None  # default: "a photo of a {class_word}"
    class_inference_steps: int = 25  # steps to generate each class image with

    # --- text encoder ---------------------------------------------------------------------
    train_text_encoder: bool = False  # LoRA on the text encoder(s) too; no embedding cache
    text_encoder_lr: float | None = None  # default: learning_rate

    # --- memory and precision --------------------------------------------------------------
    gradient_checkpointing: bool = False
    # Regional torch.compile of the denoiser's repeated blocks (packshot.models.speed): faster
    # steps on a GPU after a compile of a minute or less (cached on disk for the next run).
    compile: bool = False
    # "auto": bf16 on a GPU that has it, else fp16 on CUDA, fp32 on CPU/MPS.
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    device: str | None = None  # None: pick_device()

    # --- checkpoints and samples ---------------------------------------------------------
    checkpointing_steps: int = 250  # 0: no checkpoints
    checkpoints_total_limit: int = 2  # keep the newest K complete checkpoints
    validation_steps: int = 0  # sample shots every N steps; 0: only at the end
    validation_prompt: str | None = None  # default: the instance prompt
    validation_seeds: list[int] = Field(default_factory=lambda: [0, 1])
    validation_inference_steps: int = 25
    sample_at_end: bool = True

    # --- failure handling ----------------------------------------------------------------
    nan_lr_factor: float = 0.5  # after a NaN/inf loss: roll back and scale lr by this, once
    # Debug hook: make the loss NaN at this step (1-based), the first `debug_nan_times` times
    # the run reaches it. 1 exercises the roll-back; 2 the failure after it.
    debug_nan_at_step: int | None = None
    debug_nan_times: int = 1

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.resolution < 64 or self.resolution % 8:
            raise ValueError(f"`resolution` must be a multiple of 8, ≥ 64, got {self.resolution}")
        for name in ("max_train_steps", "train_batch_size", "rank", "class_inference_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate}")
        for name in ("lr_warmup_steps", "checkpointing_steps", "validation_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be ≥ 0, got {getattr(self, name)}")
        if self.checkpoints_total_limit < 1:
            raise ValueError(
                f"`checkpoints_total_limit` must be ≥ 1, got {self.checkpoints_total_limit}"
            )
        if not 0.0 <= self.background_weight <= 1.0:
            raise ValueError(f"`background_weight` must be in [0, 1], got {self.background_weight}")
        if not 0.0 < self.nan_lr_factor < 1.0:
            raise ValueError(f"`nan_lr_factor` must be in (0, 1), got {self.nan_lr_factor}")
        if not self.token.strip() or not self.class_word.strip():
            raise ValueError("`token` and `class_word` must not be empty")
        return self

    # --- derived values ----------------------------------------------------------------------
    @property
    def instance_prompt(self) -> str:
        """The prompt that names the product, as in the diffusers README: "a photo of sks dog"."""
        return f"a photo of {self.token} {self.class_word}"

    @property
    def class_prompt_text(self) -> str:
        return self.class_prompt or f"a photo of {self.class_word}"

    def run_signature(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run it resumes (not bookkeeping)."""
        volatile = {
            "checkpointing_steps",
            "checkpoints_total_limit",
            "validation_steps",
            "sample_at_end",
            "device",
            "debug_nan_at_step",
            "debug_nan_times",
        }
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in volatile}

    @classmethod
    def from_preset(
        cls, family: str, preset: PresetName = "standard", **overrides: Any
    ) -> TrainConfig:
        """A config from `presets/training.json` for `family`, then `overrides` (None skipped)."""
        values = dict(load_presets(family)[preset])
        values["preset"] = preset
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            raise UsageError(_validation_message(exc)) from None


def load_presets(family: str) -> dict[str, dict[str, Any]]:
    """The presets of one family, without their `_comment`s."""
    if family not in trainable_families():
        raise UsageError(
            f"No training presets for model family {family!r}; packshot trains "
            f"{', '.join(trainable_families())} base models."
        )
    data = json.loads(PRESETS_FILE.read_text())
    return {
        name: {k: v for k, v in values.items() if not k.startswith("_")}
        for name, values in data[family].items()
    }


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "Invalid training config: " + "; ".join(parts)
