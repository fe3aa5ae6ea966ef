"""The judge's backbones: resolve a DINO or CLIP reference, load it, embed images and prompts.

A reference is the alias `tiny` (a tiny random stand-in built offline), a local folder saved
with `save_pretrained`, or a Hugging Face Hub id; all three end up as a local folder loaded by
the same `from_pretrained` call. Each image is embedded once per `Embedders` object: results
are kept by (path, size, modification time).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from PIL import Image

from packshot.config import default_cache_dir
from packshot.errors import ModelLoadError, ModelNotFoundError, UsageError
from packshot.judge.config import (
    DEFAULT_CLIP_MODEL,
    DEFAULT_DINO_MODEL,
    TINY_JUDGE_ALIAS,
    JudgeConfig,
)
from packshot.models.device import pick_device
from packshot.models.hub import download_from_hub
from packshot.models.names import HUB_ID
from packshot.models.preprocessors import load_preprocessor
from packshot.testing.judges import (
    JudgeKind,
    quiet_transformers,
    read_judge_note,
    tiny_judge,
)

_EXAMPLES = {"dino": DEFAULT_DINO_MODEL, "clip": DEFAULT_CLIP_MODEL}
# model_type in config.json each kind accepts: DINO (v1) checkpoints are ViTs; DINOv2 works too.
_MODEL_TYPES = {"dino": ("vit", "dinov2"), "clip": ("clip",)}


@dataclass(frozen=True)
class ResolvedJudge:
    """A DINO or CLIP reference, resolved to a local transformers folder."""

    kind: JudgeKind
    ref: str  # what the caller passed
    path: Path
    source: str  # "alias", "local" or "hub"

    @property
    def tiny(self) -> bool:
        return read_judge_note(self.path) is not None


def resolve_judge(ref: str, kind: JudgeKind, *, cache_dir: Path | None = None) -> ResolvedJudge:
    """Turn `ref` (`tiny`, a folder or a Hub id) into a local folder for the `kind` judge."""
    flag = f"--{kind}-model"
    ref = ref.strip()
    if not ref:
        raise UsageError(
            f"{flag} needs a model: `{TINY_JUDGE_ALIAS}`, a folder, or a Hub id such as "
            f"{_EXAMPLES[kind]}."
        )
    # 1. The built-in alias (pass `./tiny` for a folder called tiny).
    if ref == TINY_JUDGE_ALIAS:
        path = tiny_judge(kind, cache_dir or default_cache_dir())
        return ResolvedJudge(kind, ref, path, "alias")
    # 2. A local folder.
    path = Path(ref).expanduser()
    if path.is_dir():
        return _checked(ResolvedJudge(kind, ref, path.resolve(), "local"))
    if path.is_file():
        raise ModelLoadError(
            f"{flag} `{ref}` is a single file; pass the folder it lives in (with config.json), "
            f"or a Hub id such as {_EXAMPLES[kind]}."
        )
    # 3. A Hub id.
    if HUB_ID.match(ref):
        try:
            folder = download_from_hub(
                ref,
                select_files=_select_files,
                marker="config.json",
                wrong_kind="it has no config.json: it is not a transformers model.",
            )
        except ModelNotFoundError as error:  # say which flag it came from
            raise ModelNotFoundError(f"{flag}: {error}") from error
        return _checked(ResolvedJudge(kind, ref, folder, "hub"))
    raise ModelNotFoundError(
        f"{flag} `{ref}` is not `{TINY_JUDGE_ALIAS}`, a folder here ({path.absolute()}), or a "
        f"Hub id (owner/name, such as {_EXAMPLES[kind]})."
    )


def _checked(resolved: ResolvedJudge) -> ResolvedJudge:
    """The folder holds a transformers model of the right kind."""
    flag, path = f"--{resolved.kind}-model", resolved.path
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except OSError:
        raise ModelLoadError(
            f"{flag} {path} has no config.json: it is not a transformers model folder. Pass "
            f"a folder saved with `save_pretrained`, or a Hub id such as "
            f"{_EXAMPLES[resolved.kind]}."
        ) from None
    except ValueError as error:
        raise ModelLoadError(
            f"{flag} {path}/config.json is damaged ({error}). Download or save it again."
        ) from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in _MODEL_TYPES[resolved.kind]:
        raise ModelLoadError(
            f"{flag} {resolved.ref} is a `{model_type}` model, but the {resolved.kind.upper()} "
            f"judge needs one of: {', '.join(_MODEL_TYPES[resolved.kind])} (such as "
            f"{_EXAMPLES[resolved.kind]})."
        )
    return resolved


def _select_files(files: list[str]) -> list[str]:
    """Configs, tokenizer files and one copy of the PyTorch weights (safetensors first)."""
    top = [f for f in files if "/" not in f]
    chosen = [f for f in top if f.endswith((".json", ".txt")) and ".index." not in f]
    for suffix in (".safetensors", ".bin"):
        weights = [f for f in top if f.endswith(suffix) and f.count(".") == 1]
        if weights:
            chosen += weights + [f for f in top if f.endswith(f"{suffix}.index.json")]
            break
    return chosen


def _load(resolved: ResolvedJudge, load: Callable[[Path], Any]) -> Any:
    try:
        with quiet_transformers():
            return load(resolved.path)
    except Exception as error:
        raise ModelLoadError(
            f"Couldn't load the {resolved.kind.upper()} judge `{resolved.ref}` from "
            f"{resolved.path} ({type(error).__name__}: {error}). Download or save it again."
        ) from error


def _features(output: Any) -> torch.Tensor:
    """transformers 4 returns the projected features; 5 a ModelOutput holding them."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


ImageKey = tuple[str, int, int]  # (absolute path, size in bytes, mtime in ns)


def image_key(path: Path) -> ImageKey:
    """What decides whether a cached embedding of the file at `path` is still its own."""
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


class Embedders:
    """The DINO and CLIP backbones of one `JudgeConfig`, loaded once, with embedding caches.

    `dino(images)` and `clip_image(images)` take (key, PIL image) pairs and return one row per
    image; an image whose key was seen before is not run again. `clip_text(prompts)` embeds
    prompts. Every tensor returned is float32 on the CPU.
    """

    def __init__(self, config: JudgeConfig, *, cache_dir: Path | None = None) -> None:
        # 1. Resolve both references first, so a wrong one fails before any loading.
        self.config = config
        self.dino_ref = resolve_judge(config.dino_model, "dino", cache_dir=cache_dir)
        self.clip_ref = resolve_judge(config.clip_model, "clip", cache_dir=cache_dir)
        self.device = pick_device(config.device)

        # 2. Load. float32 everywhere: scores are reported to 3 decimals and bf16 keeps ~3
        # significant digits; the judges are small next to a diffusion model.
        def load_dino(path: Path) -> tuple[Any, Any]:
            config_type = json.loads((path / "config.json").read_text())["model_type"]
            if config_type == "vit":  # DINO has no pooler; ViTModel would add a random one
                model = transformers.ViTModel.from_pretrained(path, add_pooling_layer=False)
            else:
                model = transformers.AutoModel.from_pretrained(path)
            return model, transformers.AutoImageProcessor.from_pretrained(path)

        def load_clip(path: Path) -> tuple[Any, Any]:
            model = transformers.CLIPModel.from_pretrained(path)
            return model, load_preprocessor(path, "CLIPProcessor")  # its tokenizer: 0.4 s

        self.dino_model, self.dino_processor = _load(self.dino_ref, load_dino)
        self.clip_model, self.clip_processor = _load(self.clip_ref, load_clip)
        for model in (self.dino_model, self.clip_model):
            model.to(self.device, torch.float32).eval()
        self._dino: dict[ImageKey, torch.Tensor] = {}
        self._clip: dict[ImageKey, torch.Tensor] = {}
        self.runs = {"dino": 0, "clip": 0}  # images actually run through each backbone

    def describe(self) -> dict[str, Any]:
        """Which backbones judged, for reports."""
        return {
            "dino_model": self.dino_ref.ref,
            "dino_path": str(self.dino_ref.path),
            "clip_model": self.clip_ref.ref,
            "clip_path": str(self.clip_ref.path),
            "tiny_stand_in": self.dino_ref.tiny or self.clip_ref.tiny,
            "device": self.device,
        }

    @torch.inference_mode()
    def _dino_batch(self, images: list[Image.Image]) -> torch.Tensor:
        inputs = self.dino_processor(images=images, return_tensors="pt")
        out = self.dino_model(pixel_values=inputs["pixel_values"].to(self.device))
        return out.last_hidden_state[:, 0]  # the CLS token after the final norm, as DINO's

    @torch.inference_mode()
    def _clip_batch(self, images: list[Image.Image]) -> torch.Tensor:
        inputs = self.clip_processor(images=images, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device)
        return _features(self.clip_model.get_image_features(pixel_values=pixels))

    def _cached(
        self,
        items: Sequence[tuple[ImageKey, Image.Image]],
        cache: dict[ImageKey, torch.Tensor],
        run: Callable[[list[Image.Image]], torch.Tensor],
        name: str,
    ) -> torch.Tensor:
        todo = {key: image for key, image in items if key not in cache}
        keys = list(todo)
        for start in range(0, len(keys), self.config.batch_size):
            batch = keys[start : start + self.config.batch_size]
            rows = run([todo[k].convert("RGB") for k in batch]).float().cpu()
            cache.update(zip(batch, rows, strict=True))
            self.runs[name] += len(batch)
        if not items:
            return torch.empty(0, 0)
        return torch.stack([cache[key] for key, _ in items])

    def dino(self, items: Sequence[tuple[ImageKey, Image.Image]]) -> torch.Tensor:
        """DINO CLS embeddings, (N, D)."""
        return self._cached(items, self._dino, self._dino_batch, "dino")

    def clip_image(self, items: Sequence[tuple[ImageKey, Image.Image]]) -> torch.Tensor:
        """CLIP image embeddings (after the projection), (N, D)."""
        return self._cached(items, self._clip, self._clip_batch, "clip")

    @torch.inference_mode()
    def clip_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """CLIP text embeddings (after the projection), (N, D); prompts cut at 77 tokens."""
        rows = []
        for start in range(0, len(prompts), self.config.batch_size):
            batch = list(prompts[start : start + self.config.batch_size])
            inputs = self.clip_processor(
                text=batch, return_tensors="pt", padding=True, truncation=True
            )
            out = self.clip_model.get_text_features(
                input_ids=inputs["input_ids"].to(self.device),
                attention_mask=inputs["attention_mask"].to(self.device),
            )
            rows.append(_features(out).float().cpu())
        return torch.cat(rows) if rows else torch.empty(0, 0)
