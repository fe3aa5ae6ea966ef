"""Tiny, randomly initialised DINO-ViT and CLIP judges, saved with `save_pretrained`.

They stand in for `facebook/dino-vits16` and a CLIP ViT in tests and the offline demo: the same
transformers classes (`ViTModel` + `ViTImageProcessor`, `CLIPModel` + `CLIPProcessor` with the
real CLIP BPE tokenizer), the same folder layout and `from_pretrained` path, but a few channels
and random weights, so their scores measure nothing about products.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
import transformers
from transformers import CLIPConfig, CLIPModel, CLIPProcessor, ViTConfig, ViTModel

from packshot.cachedir import build_into_cache
from packshot.errors import UsageError
from packshot.models.standins import CLIP_MAX_LENGTH, CLIP_VOCAB_SIZE, build_clip_tokenizer

JudgeKind = Literal["dino", "clip"]
JUDGE_KINDS: tuple[JudgeKind, ...] = ("dino", "clip")

# Bump when a change here changes what gets built: cached stand-ins with another number are rebuilt.
JUDGE_BUILDER_VERSION = 1
STAND_IN_KIND = "packshot-tiny-judge"  # `kind` in the folder's packshot.json

# Tiny sizes. Real ones: ViT-S/16 at 224 px (384 wide, 12 layers); CLIP ViT-B/32 at 224 px.
_IMAGE_SIZE = 32  # px the processors resize to
_PATCH = 8  # 4x4 patches + CLS
_HIDDEN = 32
_LAYERS = 2
_HEADS = 4
_INTERMEDIATE = 37  # an odd size on purpose, as in transformers' own tests
_PROJECTION = 16  # CLIP's shared image/text embedding width (ViT-B/32: 512)

# ImageNet statistics, as facebook/dino-vits16's preprocessor_config.json has them.
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No "Loading weights" bars, no "falling back to the PIL image processor" notes."""
    logging = transformers.utils.logging
    bars, level = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _image_processor(name: str) -> Any:
    """transformers' `name` image processor class, looked up quietly: without torchvision,
    transformers 5 swaps in its PIL version and says so once."""
    with quiet_transformers():
        return getattr(transformers, name)


def build_tiny_dino(out_dir: Path, seed: int = 0) -> Path:
    """A tiny random DINO ViT (`ViTModel`, no pooler, as DINO has none) and its processor."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = ViTConfig(
            image_size=_IMAGE_SIZE,
            patch_size=_PATCH,
            hidden_size=_HIDDEN,
            num_hidden_layers=_LAYERS,
            num_attention_heads=_HEADS,
            intermediate_size=_INTERMEDIATE,
            qkv_bias=True,
        )
        model = ViTModel(config, add_pooling_layer=False)
    processor = _image_processor("ViTImageProcessor")(
        do_resize=True,
        size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE},
        image_mean=_IMAGENET_MEAN,
        image_std=_IMAGENET_STD,
    )
    _save(model, processor, out_dir)
    return out_dir


def build_tiny_clip(out_dir: Path, seed: int = 0) -> Path:
    """A tiny random `CLIPModel` with a `CLIPProcessor` around the real CLIP BPE tokenizer."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = CLIPConfig(
            text_config={
                "vocab_size": CLIP_VOCAB_SIZE,  # the real vocabulary, so every token id is valid
                "max_position_embeddings": CLIP_MAX_LENGTH,
                "hidden_size": _HIDDEN,
                "intermediate_size": _INTERMEDIATE,
                "num_attention_heads": _HEADS,
                "num_hidden_layers": _LAYERS,
                "bos_token_id": 49406,
                "eos_token_id": 49407,
                "pad_token_id": 49407,
            },
            vision_config={
                "image_size": _IMAGE_SIZE,
                "patch_size": _PATCH,
                "hidden_size": _HIDDEN,
                "intermediate_size": _INTERMEDIATE,
                "num_attention_heads": _HEADS,
                "num_hidden_layers": _LAYERS,
            },
            projection_dim=_PROJECTION,
        )
        model = CLIPModel(config)
    image_processor = _image_processor("CLIPImageProcessor")(
        size={"shortest_edge": _IMAGE_SIZE},
        crop_size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE},
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=build_clip_tokenizer())
    _save(model, processor, out_dir)
    return out_dir


def _save(model: Any, processor: Any, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():  # its "Writing model shards" bar
        model.save_pretrained(out_dir, safe_serialization=True)
        processor.save_pretrained(out_dir)


def build_tiny_judge(kind: JudgeKind, out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny `kind` judge ("dino" or "clip") into `out_dir`, with its packshot.json.

    Written last, packshot.json marks a finished build.
    """
    if kind not in JUDGE_KINDS:
        raise UsageError(f"`{kind}` is not a judge kind. Choose one of: {', '.join(JUDGE_KINDS)}.")
    (build_tiny_dino if kind == "dino" else build_tiny_clip)(out_dir, seed)
    note = {
        "kind": STAND_IN_KIND,
        "judge": kind,
        "seed": seed,
        "builder_version": JUDGE_BUILDER_VERSION,
        "note": "A packshot tiny judge: random weights, its scores say nothing about products. "
        "For tests and the offline demo only.",
        "transformers_version": transformers.__version__,
    }
    (out_dir / "packshot.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    return out_dir


def read_judge_note(folder: Path) -> dict[str, object] | None:
    """The packshot.json of a tiny judge folder, or None for any other folder."""
    try:
        note = json.loads((folder / "packshot.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) and note.get("kind") == STAND_IN_KIND else None


def _is_current(folder: Path, kind: JudgeKind) -> bool:
    note = read_judge_note(folder)
    return (
        note is not None
        and note.get("judge") == kind
        and note.get("builder_version") == JUDGE_BUILDER_VERSION
        and (folder / "config.json").is_file()
    )


def tiny_judge(kind: JudgeKind, cache_dir: Path) -> Path:
    """The folder of the tiny `kind` judge, built on first use into `<cache_dir>/judges/`.

    Built in a temporary folder beside its final place and renamed into it, so a build that
    dies half-way is never used (`packshot.cachedir.build_into_cache`).
    """
    return build_into_cache(
        cache_dir.expanduser().resolve() / "judges" / f"tiny-{kind}",
        lambda folder: build_tiny_judge(kind, folder),
        lambda folder: _is_current(folder, kind),
        f"the tiny {kind} judge",
    )
