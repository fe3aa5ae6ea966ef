"""The judge's settings in one typed, validated object: `JudgeConfig`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from packshot.errors import UsageError

DEFAULT_DINO_MODEL = "facebook/dino-vits16"  # DINO ViT-S/16, the paper's subject-fidelity backbone
# The DreamBooth paper doesn't name its CLIP. ViT-B/32 is the one most DreamBench comparisons
# use, so our CLIP-I/CLIP-T sit on the paper's scale (CLIP-T 0.305); it is also 4x cheaper than
# ViT-L/14 on a CPU. `--clip-model openai/clip-vit-large-patch14` gives torchmetrics' default.
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
TINY_JUDGE_ALIAS = "tiny"  # `--dino-model tiny` / `--clip-model tiny`: the random stand-ins

# Default "product present" threshold on a shot's DINO score (mean cosine to the product's
# photos), for DINO ViT-S/16 only. Derived from published DreamBench means, not measured here
# (real DINO weights can't be downloaded on the machine this was written on):
#   0.774  real photos of a subject vs each other                      (DreamBooth, Table 1)
#   0.668  DreamBooth shots on Stable Diffusion                        (Table 1)
#   0.569  Textual Inversion shots, often a look-alike                 (Table 1)
#   0.493  shots of *other* subjects of the same class vs the subject  (PRES, Table 3)
# 0.58 sits half-way between "another product of the same class" (0.493) and "a typical
# DreamBooth shot" (0.668). These are means over many shots; per-shot scores spread around
# them, so calibrate on your own backbone and photos with `packshot.judge.calibrate`.
DEFAULT_PRESENT_THRESHOLD = 0.58
# With photos of other products of the same class: a shot must also be closer to this product
# than to the nearest other one by this much DINO. Same-subject vs same-class-other differ by
# ~0.28 on average (0.774 vs 0.493), so 0.02 only rejects real confusions.
DEFAULT_OTHER_MARGIN = 0.02


@dataclass(frozen=True)
class JudgeConfig:
    """Which backbones judge the shots, where they run, and when a product counts as present."""

    dino_model: str = DEFAULT_DINO_MODEL  # Hub id, local folder, or `tiny`
    clip_model: str = DEFAULT_CLIP_MODEL  # Hub id, local folder, or `tiny`
    device: str | None = None  # None/"auto": cuda, then mps, then cpu
    batch_size: int = 16  # images per forward pass; ViT-S/16 at 224 px needs ~20 MB per image
    present_threshold: float = DEFAULT_PRESENT_THRESHOLD
    other_margin: float = DEFAULT_OTHER_MARGIN
    # Near-ties in product fidelity are decided by prompt fidelity: DINO scores that round to
    # the same multiple of this step rank as equal (per-shot DINO spreads over ~0.1).
    rank_step: float = 0.01
    # The product's unique token ("sks") and class word ("teapot"): CLIP-T reads the prompt with
    # the token replaced by the class word. A shot's sidecar, when it names them, wins.
    token: str | None = None
    class_word: str | None = None

    def __post_init__(self) -> None:
        for name in ("dino_model", "clip_model"):
            if not str(getattr(self, name)).strip():
                raise UsageError(
                    f"`{name}` is empty: pass a Hub id, a local folder or the alias `tiny`."
                )
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise UsageError(f"`batch_size` must be a whole number, got {self.batch_size!r}.")
        if self.batch_size < 1:
            raise UsageError(f"`batch_size` must be at least 1, got {self.batch_size}.")
        for name, low, high in (
            ("present_threshold", -1.0, 1.0),
            ("other_margin", -2.0, 2.0),
            ("rank_step", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UsageError(f"`{name}` must be a number, got {value!r}.")
            if not math.isfinite(value) or not low <= value <= high:
                raise UsageError(f"`{name}` must be between {low:g} and {high:g}, got {value}.")

    @classmethod
    def for_models(
        cls, dino_model: str | None, clip_model: str | None, *, stand_in: bool, **settings: Any
    ) -> JudgeConfig:
        """The judges named, else the tiny stand-in judges for shots of a tiny stand-in model
        (offline demo, tests: random weights judging random weights), else the defaults;
        `settings` that are None keep their defaults too."""
        tiny = TINY_JUDGE_ALIAS if stand_in else None
        values = {"dino_model": dino_model or tiny, "clip_model": clip_model or tiny, **settings}
        return cls(**{k: v for k, v in values.items() if v is not None})

    def replace(self, **changes: Any) -> JudgeConfig:
        """A copy with `changes` applied (and validated)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JudgeConfig:
        """The inverse of `to_dict`; unknown keys (from a newer packshot) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
