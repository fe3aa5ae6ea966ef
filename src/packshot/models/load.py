"""Finding and loading a model: `resolve_model` turns a reference into a local diffusers folder
and its family; `load_pipeline` loads it with `from_pretrained` and keeps the last one.

A model reference is a built-in stand-in alias (`tiny`, `tiny-sdxl`, `tiny-inpaint`), a local
diffusers folder or a Hugging Face Hub id; all three end up as a local folder loaded by the
same `from_pretrained` call.
"""

from __future__ import annotations

import difflib
import gc
import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import diffusers
import safetensors
import torch
import transformers
from diffusers import DiffusionPipeline

from packshot.config import default_cache_dir
from packshot.errors import ModelLoadError, ModelNotFoundError, PackshotError, UsageError
from packshot.models.device import pick_device, pick_dtype
from packshot.models.families import (
    TRAINING_MODEL,
    ModelFamily,
    PipelineKind,
    detect_family,
    stand_in_aliases,
)
from packshot.models.hub import download_from_hub, select_hub_files
from packshot.models.names import HUB_ID, folders_allowed
from packshot.models.preprocessors import pipeline_tokenizers
from packshot.models.speed import EAGER, Speedups, make_fast
from packshot.models.standins import read_stand_in_note, stand_in_folder

# packshot reports progress through its own events (bars in the CLI, job events in the
# service); the libraries' own tqdm bars ("Loading weights", "Loading pipeline components")
# would interleave with them, so they are off for every model packshot loads.
diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.disable_progress_bar()

ModelSource = Literal["alias", "local", "hub"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference, resolved to a local diffusers folder and its family."""

    ref: str  # what the caller passed
    path: Path  # the local diffusers folder (absolute)
    family: ModelFamily
    source: ModelSource  # "alias": a built-in tiny stand-in, "local": a folder, "hub": downloaded
    # A packshot tiny stand-in (random weights: its images are noise), by its alias or by the
    # note in its folder: the one place that decides it, never the spelling of `ref`.
    stand_in: bool


def _resolved(ref: str, path: Path, source: ModelSource) -> ResolvedModel:
    stand_in = source == "alias" or read_stand_in_note(path) is not None
    return ResolvedModel(ref, path, detect_family(path), source, stand_in)


def resolve_model(
    ref: str, *, cache_dir: Path | None = None, offline: bool | None = None
) -> ResolvedModel:
    """Turn `ref` (an alias, a folder or a Hub id) into a local diffusers folder.

    Built-in aliases are built once into `<cache_dir>/models/<alias>/`. Hub models go to the
    Hugging Face cache (`HF_HOME`). `offline` None follows `HF_HUB_OFFLINE`; offline, only
    models already downloaded resolve. Within `hub_models_only()` (the studio's jobs) `ref`
    must be an alias or a Hub id, and no folder is looked for.
    """
    # 1. Check the input.
    aliases = stand_in_aliases()
    ref = ref.strip()
    if not ref:
        raise UsageError(
            f"A model is needed: a built-in alias ({', '.join(aliases)}), a diffusers "
            f"folder, or a Hub id such as {TRAINING_MODEL}."
        )

    # 2. A built-in alias (the names are reserved: pass `./tiny` for a folder called tiny).
    if ref in aliases:
        path = stand_in_folder(ref, cache_dir or default_cache_dir())
        return _resolved(ref, path, "alias")

    # 3. A local folder (never for a model a merchant named: the Hub id, or nothing).
    if not folders_allowed():
        if not HUB_ID.match(ref):
            raise UsageError(
                f"`{ref}` is not a model name: name a Hugging Face Hub id (owner/name, such as "
                f"{TRAINING_MODEL}) or a built-in model ({', '.join(aliases)})."
            )
        return _from_hub(ref, offline)
    path = Path(ref).expanduser()
    if path.is_file():
        raise ModelLoadError(
            f"`{ref}` is a single file, but packshot loads diffusers folders (model_index.json "
            "plus one folder per part). Pass such a folder, or a Hub id such as "
            f"{TRAINING_MODEL}. A single-file checkpoint can be converted with diffusers' "
            "`from_single_file(...).save_pretrained(folder)`."
        )
    if path.is_dir():
        path = path.resolve()
        return _resolved(ref, path, "local")

    # 4. A Hub id.
    if HUB_ID.match(ref):
        return _from_hub(ref, offline)

    # 5. Nothing we know.
    if any(c in ref for c in "/\\~") or ref.startswith(".") or path.suffix:
        raise ModelNotFoundError(
            f"Model folder not found: `{ref}` ({path.absolute()}). Check the path, or pass a Hub "
            f"id such as {TRAINING_MODEL}."
        )
    close = difflib.get_close_matches(ref, list(aliases), n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    raise ModelNotFoundError(
        f"`{ref}` is not a built-in model ({', '.join(aliases)}), a folder here, or a Hub "
        f"id (owner/name, such as {TRAINING_MODEL}).{hint}"
    )


def _from_hub(ref: str, offline: bool | None) -> ResolvedModel:
    path = download_from_hub(
        ref,
        select_files=select_hub_files,
        marker="model_index.json",
        wrong_kind=(
            "it is not a diffusers pipeline (no model_index.json). Pick a diffusers version "
            f"of the model, such as {TRAINING_MODEL}."
        ),
        offline=offline,
    )
    return _resolved(ref, path, "hub")


# -- loading pipelines -----------------------------------------------------------------------

# Classes in model_index.json that carry no weights of their own.
_WEIGHTLESS = ("Tokenizer", "TokenizerFast", "Scheduler", "ImageProcessor", "FeatureExtractor")
# Parts packshot never loads (they are passed as None).
_NOT_LOADED = frozenset({"safety_checker", "feature_extractor"})

# diffusers renamed from_pretrained's `torch_dtype` to `dtype` (and warns on the old name);
# older releases only know `torch_dtype`, and would silently ignore `dtype`.
_DTYPE_KWARG = (
    "dtype" if hasattr(diffusers.utils.deprecation_utils, "_resolve_dtype") else "torch_dtype"
)

# The last pipeline loaded: ((path, kind, device, dtype, speedups), pipeline). One at a time,
# since a second SDXL rarely fits beside the first on a GPU. A fast pipeline (merged LoRAs,
# compiled) is never handed to a caller that asked for an eager one, nor the other way round.
_cached: tuple[tuple[str, str, str, torch.dtype, Speedups], DiffusionPipeline] | None = None


def clear_pipeline_cache() -> None:
    """Forget the cached pipeline and give its memory back."""
    global _cached
    _cached = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Switch off diffusers' and transformers' own progress bars ("Loading weights", ...)."""
    libraries = (diffusers.utils.logging, transformers.utils.logging)
    were_enabled = [lib.is_progress_bar_enabled() for lib in libraries]
    for lib in libraries:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in zip(libraries, were_enabled, strict=True):
            if enabled:
                lib.enable_progress_bar()


def _check_parts(path: Path) -> None:
    """Every part model_index.json lists is a folder, and parts with weights have some."""
    index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    for name, value in index.items():
        if name.startswith("_") or name in _NOT_LOADED or not isinstance(value, list):
            continue
        if len(value) != 2 or value[1] is None:  # an optional part saved as [null, null]
            continue
        folder = path / name
        if not folder.is_dir():
            raise ModelLoadError(
                f"The model folder {path} is missing its `{name}/` folder (model_index.json lists "
                f"a {value[1]} there). Download or save the model again."
            )
        if str(value[1]).endswith(_WEIGHTLESS):
            continue
        if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
            raise ModelLoadError(
                f"The model folder {path} has no weights in `{name}/` (no .safetensors or .bin "
                "file). Download or save the model again."
            )


def _find_broken_weights(path: Path) -> Path | None:
    """The first safetensors file under `path` whose header can't be read, if any."""
    for file in sorted(path.glob("*/*.safetensors")):
        try:
            with safetensors.safe_open(str(file), framework="pt") as weights:
                weights.keys()
        except Exception:  # any failure to read it is what we are looking for
            return file
    return None


def _pipeline_class(name: str) -> type[DiffusionPipeline]:
    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, DiffusionPipeline)):
        raise ModelLoadError(
            f"This version of diffusers ({diffusers.__version__}) has no pipeline `{name}`. "
            "Upgrade diffusers."
        )
    return cls


def load_pipeline(
    ref: str,
    *,
    kind: PipelineKind = "text2img",
    device: str | None = None,
    dtype: torch.dtype | str | None = None,
    cache_dir: Path | None = None,
    speedups: Speedups = EAGER,
) -> DiffusionPipeline:
    """Load the diffusers pipeline of model `ref` for `kind` ("text2img" or "inpaint").

    Aliases, folders and Hub ids all go through the family's `from_pretrained`. The safety
    checker is off, attention is PyTorch's SDPA (diffusers' default), progress bars are off.
    The last pipeline loaded is kept and returned again for the same (folder, kind, device,
    dtype): callers that change it (a LoRA, a scheduler) must undo that when done.
    `speedups` makes it fast (`packshot.models.speed`: its LoRAs are then set through
    `speed.use_loras`, its calls made through `speed.call`); `speed.speed_notes` says what
    had to stay off.
    """
    global _cached

    # 1. Resolve the model, the pipeline class, the device and the dtype.
    resolved = resolve_model(ref, cache_dir=cache_dir)
    cls = _pipeline_class(resolved.family.pipeline_class_name(kind))
    device = pick_device(device)
    if not isinstance(dtype, torch.dtype):
        dtype = pick_dtype(device, dtype)

    # 2. The cached pipeline, if it is this one.
    key = (str(resolved.path), kind, device, dtype, speedups)
    if _cached is not None and _cached[0] == key:
        return _cached[1]
    if _cached is not None:
        clear_pipeline_cache()  # free the old one before loading the next

    # 3. Check the folder, then load it.
    _check_parts(resolved.path)
    options: dict[str, Any] = {_DTYPE_KWARG: dtype}
    if "safety_checker" in inspect.signature(cls.__init__).parameters:
        options.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        with _quiet_loading():
            options.update(pipeline_tokenizers(resolved.path))  # loaded once per process
            pipe = cls.from_pretrained(resolved.path, **options)
    except Exception as error:
        broken = _find_broken_weights(resolved.path)
        part = f" `{broken.relative_to(resolved.path)}` is damaged." if broken else ""
        raise ModelLoadError(
            f"Couldn't load the {resolved.family.label} model in {resolved.path}.{part} "
            f"Download or save it again. ({type(error).__name__}: {error})"
        ) from error

    # 4. Move it to the device.
    try:
        pipe = pipe.to(device)
    except torch.OutOfMemoryError as error:
        raise PackshotError(
            f"Not enough memory on `{device}` for the {resolved.family.label} model in "
            f"{resolved.path} ({dtype}). Close other programs using it, or use a smaller model."
        ) from error
    pipe.set_progress_bar_config(disable=True)
    if speedups.active:
        make_fast(
            pipe,
            resolved.family.denoiser,
            speedups,
            device=device,
            cache_dir=cache_dir or default_cache_dir(),
        )
    _cached = (key, pipe)
    return pipe
