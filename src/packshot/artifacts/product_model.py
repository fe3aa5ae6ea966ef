"""The product model: the folder `packshot train` writes, its file names and its `packshot.json`.

A trained model folder holds (every name is defined here, once):

    packshot.json                           the metadata (`ProductModel`), written last
    pytorch_lora_weights.safetensors        the LoRA, diffusers/peft format: load_lora_weights(DIR)
    pytorch_lora_weights_kohya.safetensors  the LoRA, kohya format: AUTOMATIC1111, ComfyUI
                                            (each export format's file: `train.exports`,
                                            listed in packshot.json's `files`)
    README.md                               the model card, with Hub front-matter
    samples/                                sample shots: step-000012-seed0.png
    training-set/                           the product's crops the LoRA learnt (judging reads them)
    checkpoints/                            the run's last complete checkpoints

A run writes into `<folder>.partial` (with its `run.json`) and renames it into place when done.
The LoRA files themselves are written by `packshot.train.lora_io`; this module needs no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packshot import __version__
from packshot.errors import UsageError

MODEL_KIND = "packshot-model"  # `kind` in packshot.json: tells a product model from other folders
SCHEMA_VERSION = 1  # of packshot.json; files from before versioning (packshot 0.1.0) read as 1
METADATA_FILE = "packshot.json"
DIFFUSERS_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # the name load_lora_weights looks for
CARD_FILE = "README.md"
SAMPLES_DIR = "samples"
TRAINING_SET_DIR = "training-set"
CHECKPOINTS_DIR = "checkpoints"
RUN_FILE = "run.json"  # in the work folder only: the config a resumed run must match
PARTIAL_SUFFIX = ".partial"  # the work folder of a run: `<folder>.partial`

SHOOT_FILES = (METADATA_FILE, DIFFUSERS_WEIGHT_NAME)  # all that shooting and placing read
UNREAD_PARTS = (CHECKPOINTS_DIR, SAMPLES_DIR)  # parts of the folder that no job reads
UNLISTED_PARTS = (CHECKPOINTS_DIR, TRAINING_SET_DIR)  # never handed out: big, or the merchant's

# packshot.json's optional keys and the JSON types each may hold (None is always allowed).
_OPTIONAL_TYPES: dict[str, tuple[type, ...]] = {
    "packshot_version": (str,),
    "created_at": (str,),
    "base_model_source": (str,),
    "family": (str,),
    "product": (str,),
    "instance_prompt": (str,),
    "config": (dict,),
    "photos": (list,),
    "num_photos": (int,),
    "device": (str,),
    "dtype": (str,),
    "optimizer": (str,),
    "timings": (dict,),
    "final_step": (int,),
    "final_loss": (int, float),
    "resumed_from": (int,),
    "nan_rollbacks": (int,),
    "probe_loss": (dict,),
    "buckets": (list,),
    "files": (dict,),
}
_REQUIRED = ("base_model", "token", "class_word")


def work_dir_for(model_dir: Path) -> Path:
    """The sibling folder a training run writes into; renamed to `model_dir` when complete."""
    return model_dir.parent / f"{model_dir.name}{PARTIAL_SUFFIX}"


@dataclass(frozen=True)
class SourcePhoto:
    """One photo the model was trained on: its file name and the sha256 of its bytes."""

    file: str
    sha256: str


@dataclass(frozen=True)
class ProductModel:
    """A trained product model: its folder and what its `packshot.json` says.

    `ProductModel.load(folder)` checks the folder and reads it; `save()` writes packshot.json
    atomically (a temporary file renamed). Only `base_model`, `token` and `class_word` are
    needed to shoot; the rest records how the model was made.
    """

    model_dir: Path
    base_model: str  # Hub id, local folder or stand-in alias the LoRA was trained on
    token: str  # the rare word that stands for the product: "sks"
    class_word: str  # what the product is: "backpack"
    family: str | None = None  # the base model's family: "sd15", "sdxl"
    product: str | None = None  # the merchant's name for it: "Trail backpack"
    instance_prompt: str | None = None  # "a photo of sks backpack"
    base_model_source: str | None = None  # how base_model resolved: "alias", "hub", "local"
    config: dict[str, Any] = field(default_factory=dict)  # TrainConfig.model_dump(mode="json")
    photos: list[SourcePhoto] = field(default_factory=list)
    device: str | None = None  # "cuda", "mps", "cpu"
    dtype: str | None = None  # the weights' dtype while training: "float32", "bfloat16"
    optimizer: str | None = None  # "AdamW" or "AdamW8bit"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage: "train_s"
    final_step: int | None = None
    final_loss: float | None = None
    resumed_from: int | None = None  # the checkpoint step a resumed run started from
    nan_rollbacks: int = 0
    probe_loss: dict[str, float | None] = field(default_factory=dict)  # fixed batch: start, end
    # The aspect buckets it trained at: [{"width": 576, "height": 448, "photos": 3}, …] (one,
    # the square, with buckets off); None: trained before packshot recorded them (square).
    buckets: list[dict[str, int]] | None = None
    samples: list[str] = field(default_factory=list)  # sample shots, relative to the folder
    # The LoRA in each export format (`train.exports`): format name → file name. The diffusers
    # file is always there: shooting reads it.
    exports: dict[str, str] = field(default_factory=lambda: {"diffusers": DIFFUSERS_WEIGHT_NAME})
    packshot_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    extra: dict[str, Any] = field(default_factory=dict)  # keys this packshot doesn't know: kept

    @property
    def trained_on_stand_in(self) -> bool:
        """Whether its base resolved to a tiny stand-in when it was trained (noise by design)."""
        return self.base_model_source == "alias"

    # -- paths -------------------------------------------------------------------------------

    @property
    def metadata_path(self) -> Path:
        return self.model_dir / METADATA_FILE

    @property
    def lora_path(self) -> Path:
        """The LoRA in diffusers/peft format (what shooting loads)."""
        return self.model_dir / DIFFUSERS_WEIGHT_NAME

    @property
    def export_paths(self) -> dict[str, Path]:
        """The LoRA's file in each export format: {"diffusers": …, "kohya": …}."""
        return {name: self.model_dir / file for name, file in self.exports.items()}

    @property
    def card_path(self) -> Path:
        return self.model_dir / CARD_FILE

    @property
    def samples_dir(self) -> Path:
        return self.model_dir / SAMPLES_DIR

    @property
    def sample_paths(self) -> list[Path]:
        return [self.model_dir / name for name in self.samples]

    @property
    def training_set_dir(self) -> Path:
        """The product's crops the LoRA learnt (present unless deleted by hand)."""
        return self.model_dir / TRAINING_SET_DIR

    @property
    def checkpoints_dir(self) -> Path:
        return self.model_dir / CHECKPOINTS_DIR

    # -- save and load -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The content of packshot.json (the keys in the order packshot has always written)."""
        data: dict[str, Any] = {
            "kind": MODEL_KIND,
            "schema_version": SCHEMA_VERSION,
            "packshot_version": self.packshot_version,
            "created_at": self.created_at,
            "base_model": self.base_model,
            "base_model_source": self.base_model_source,
            "family": self.family,
            "token": self.token,
            "class_word": self.class_word,
            "product": self.product,
            "instance_prompt": self.instance_prompt,
            "config": self.config,
            "photos": [{"file": p.file, "sha256": p.sha256} for p in self.photos],
            "num_photos": len(self.photos),
            "device": self.device,
            "dtype": self.dtype,
            "optimizer": self.optimizer,
            "timings": self.timings,
            "final_step": self.final_step,
            "final_loss": self.final_loss,
            "resumed_from": self.resumed_from,
            "nan_rollbacks": self.nan_rollbacks,
            "probe_loss": self.probe_loss,
            "files": {**self.exports, "samples": self.samples},
        }
        if self.buckets is not None:
            data["buckets"] = self.buckets
        data.update({k: v for k, v in self.extra.items() if k not in data})
        return data

    def save(self) -> Path:
        """Write packshot.json into the folder, atomically (a temporary file renamed); its path."""
        self.model_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.model_dir / f".{METADATA_FILE}.tmp"
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.metadata_path)
        return self.metadata_path

    @classmethod
    def load(cls, model_dir: Path | str) -> ProductModel:
        """The model in `model_dir`, after checking it is a finished product model.

        Raises UsageError naming the folder and what to do: no such folder, no packshot.json
        (or another artifact's), a damaged one, one from a newer packshot, no LoRA.
        """
        model_dir = Path(model_dir)
        meta_path = model_dir / METADATA_FILE
        # 1. The folder and its packshot.json.
        if not model_dir.is_dir():
            raise UsageError(
                f"Model folder not found: {model_dir}. Pass the folder `packshot train` wrote."
            )
        meta: Any = None
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise UsageError(
                    f"Can't read {meta_path} ({error}). Train the model again."
                ) from None
        if not isinstance(meta, dict) or meta.get("kind") != MODEL_KIND:
            what = (
                f"it has no {METADATA_FILE}"
                if meta is None
                else f"its {METADATA_FILE} is not a trained model's (`kind` is not {MODEL_KIND})"
            )
            hint = (
                " It is a diffusers base model: shoot with it alone with --base."
                if (model_dir / "model_index.json").is_file()
                else ""
            )
            raise UsageError(
                f"{model_dir} is not a packshot model: {what}.{hint} Pass the folder "
                "`packshot train` wrote."
            )

        # 2. Its schema version: a newer packshot may have written what this one can't read.
        version = meta.get("schema_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise UsageError(
                f"{meta_path} has a bad `schema_version` ({version!r}). Train the model again."
            )
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"{model_dir} was written by a newer packshot (packshot.json schema version "
                f"{version}; this packshot {__version__} reads up to {SCHEMA_VERSION}). Upgrade "
                "packshot to use it, or train the model again with this one."
            )

        # 3. The fields: the three that shooting needs, then the record of the run.
        for key in _REQUIRED:
            if not isinstance(meta.get(key), str) or not meta[key].strip():
                raise UsageError(f"{meta_path} has no `{key}`. Train the model again.")
        for key, types in _OPTIONAL_TYPES.items():
            value = meta.get(key)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                raise UsageError(
                    f"{meta_path} is damaged: `{key}` is {value!r}. Train the model again."
                )
        photos = []
        for photo in meta.get("photos") or []:
            if not isinstance(photo, dict) or not all(
                isinstance(photo.get(k), str) for k in ("file", "sha256")
            ):
                raise UsageError(
                    f"{meta_path} is damaged: a photo is {photo!r}. Train the model again."
                )
            photos.append(SourcePhoto(photo["file"], photo["sha256"]))
        for bucket in meta.get("buckets") or []:
            if not isinstance(bucket, dict) or not all(
                isinstance(bucket.get(k), int) for k in ("width", "height", "photos")
            ):
                raise UsageError(
                    f"{meta_path} is damaged: a bucket is {bucket!r}. Train the model again."
                )
        files = meta.get("files") or {}
        samples = files.get("samples") or []
        if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples):
            raise UsageError(
                f"{meta_path} is damaged: `files.samples` is {samples!r}. Train the model again."
            )
        exports = {k: v for k, v in files.items() if k != "samples"}
        exports.setdefault("diffusers", DIFFUSERS_WEIGHT_NAME)
        for name, file in exports.items():
            if not isinstance(file, str) or Path(file).name != file or file.startswith("."):
                raise UsageError(
                    f"{meta_path} is damaged: `files.{name}` is {file!r}. Train the model again."
                )

        # 4. The LoRA, which packshot.json (written last) promises.
        if not (model_dir / DIFFUSERS_WEIGHT_NAME).is_file():
            raise UsageError(
                f"{model_dir} has no {DIFFUSERS_WEIGHT_NAME}: the training run didn't finish. "
                "Train again, or resume it."
            )

        known = {"kind", "schema_version", *_REQUIRED, *_OPTIONAL_TYPES}
        optional = {k: meta[k] for k in _OPTIONAL_TYPES if meta.get(k) is not None}
        for key in ("photos", "num_photos", "files"):  # derived: photos, samples, constants
            optional.pop(key, None)
        return cls(
            model_dir=model_dir,
            base_model=meta["base_model"],
            token=meta["token"],
            class_word=meta["class_word"],
            photos=photos,
            samples=list(samples),
            exports=exports,
            extra={k: v for k, v in meta.items() if k not in known},
            **optional,
        )
