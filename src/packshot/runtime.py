"""The model runtime: pick a device and dtype, resolve a model reference, load its pipeline.

The only core module that imports torch and diffusers for models. A model reference is a
built-in alias (`tiny`, `tiny-sdxl`, `tiny-inpaint`), a local diffusers folder or a Hugging Face
Hub id; all three end up as a local folder loaded by the same `from_pretrained` call.
"""

from __future__ import annotations

import difflib
import gc
import inspect
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import diffusers
import huggingface_hub
import safetensors
import torch
import transformers
from diffusers import DiffusionPipeline
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.utils import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from packshot.cachedir import build_into_cache
from packshot.config import default_cache_dir
from packshot.errors import ModelLoadError, ModelNotFoundError, PackshotError, UsageError
from packshot.families import ModelFamily, PipelineKind, detect_family
from packshot.testing.pipelines import (
    BUILDER_VERSION,
    TINY_ALIASES,
    build_tiny_pipeline,
    read_stand_in_note,
)

# packshot reports progress through its own events (bars in the CLI, job events in the
# service); the libraries' own tqdm bars ("Loading weights", "Loading pipeline components")
# would interleave with them, so they are off for every model packshot loads.
diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.disable_progress_bar()

ModelSource = Literal["alias", "local", "hub"]
T = TypeVar("T")

DEVICES = ("cuda", "mps", "cpu")
PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}

# Seconds to wait for the Hub's first answer. An unreachable network must fail in seconds,
# not hang: huggingface_hub's own default for this call is to wait forever.
HUB_TIMEOUT_S = 5.0

EXAMPLE_HUB_ID = "stabilityai/stable-diffusion-xl-base-1.0"
# owner/name, as the Hub spells repository ids.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


# -- device and dtype ------------------------------------------------------------------------


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(prefer: str | None = None) -> str:
    """`prefer` if this machine has it, else the best one here: "cuda", then "mps", then "cpu".

    `prefer` is None or "auto" (choose), "cuda", "cuda:N", "mps" or "cpu".
    """
    if prefer is None or prefer == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"

    base, _, index = prefer.partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise UsageError(f"Unknown device `{prefer}`. Choose one of: auto, cuda, cuda:N, mps, cpu.")
    if base == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise UsageError(
                f"Device `{prefer}` was asked for, but torch sees no CUDA GPU here (torch "
                f"{torch.__version__}, {build}). Use `cpu`, or install the CUDA build of torch."
            )
        if index and int(index) >= torch.cuda.device_count():
            raise UsageError(
                f"Device `{prefer}` was asked for, but this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0."
            )
    if base == "mps" and not _mps_available():
        raise UsageError("Device `mps` was asked for, but Apple's MPS isn't available here.")
    return prefer


def return_freed_memory_to_os(threshold: int = 8 << 20) -> bool:
    """glibc only: serve allocations of `threshold` bytes and more by mmap, from now on.

    glibc's default raises its mmap threshold each time a large block is freed (up to 32 MB),
    after which nearly all of a training step's activations come from the heap, whose freed
    holes keep the process's resident memory above what is live. A fixed threshold sends
    every tensor of that size back to the OS when it is freed, but each new one then costs
    fresh, zero-filled pages. Measured on a 512 px SD 1.5 LoRA step (2-core CPU, packshot's
    step, separate processes): glibc's default 21.3 s and 5.53 GB peak RSS; 8 MB 20.4 s and
    5.45 GB; 1 MB 26.9 s and 4.85 GB (a quarter slower: ~3 million page faults a step). 8 MB
    keeps the common 5 MB activations of the 64² blocks on the heap and returns the larger
    ones. Returns whether it was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_mmap_threshold = -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, threshold))
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to do
        return False


def pick_dtype(device: str, precision: str | None = None) -> torch.dtype:
    """The torch dtype to run models in on `device`.

    `precision` None or "auto": bf16 on a CUDA GPU that supports it, else fp16; fp16 on MPS;
    fp32 on the CPU. "fp32", "fp16" and "bf16" are honoured where the device can run them.
    """
    on_cuda = device.startswith("cuda")
    if precision is None or precision == "auto":
        if on_cuda:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device == "mps" else torch.float32

    if precision not in PRECISIONS:
        raise UsageError(f"Unknown precision `{precision}`. Choose one of: auto, fp32, fp16, bf16.")
    if precision == "fp16" and device == "cpu":
        raise UsageError(
            "Precision fp16 can't run on the CPU: many CPU kernels have no half-precision version. "
            "Use fp32 (or bf16 on a recent CPU), or run on a GPU."
        )
    if precision == "bf16" and on_cuda and not torch.cuda.is_bf16_supported():
        raise UsageError(
            f"Precision bf16 was asked for, but this GPU ({torch.cuda.get_device_name(device)}) "
            "doesn't support it. Use fp16."
        )
    return PRECISIONS[precision]


# -- resolving a model reference to a local folder -------------------------------------------


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference, resolved to a local diffusers folder and its family."""

    ref: str  # what the caller passed
    path: Path  # the local diffusers folder (absolute)
    family: ModelFamily
    source: ModelSource  # "alias": a built-in tiny stand-in, "local": a folder, "hub": downloaded


def resolve_model(
    ref: str, *, cache_dir: Path | None = None, offline: bool | None = None
) -> ResolvedModel:
    """Turn `ref` (an alias, a folder or a Hub id) into a local diffusers folder.

    Built-in aliases are built once into `<cache_dir>/models/<alias>/`. Hub models go to the
    Hugging Face cache (`HF_HOME`). `offline` None follows `HF_HUB_OFFLINE`; offline, only
    models already downloaded resolve.
    """
    # 1. Check the input.
    ref = ref.strip()
    if not ref:
        raise UsageError(
            f"A model is needed: a built-in alias ({', '.join(TINY_ALIASES)}), a diffusers "
            f"folder, or a Hub id such as {EXAMPLE_HUB_ID}."
        )

    # 2. A built-in alias (the names are reserved: pass `./tiny` for a folder called tiny).
    if ref in TINY_ALIASES:
        path = _tiny_model(ref, cache_dir or default_cache_dir())
        return ResolvedModel(ref, path, detect_family(path), "alias")

    # 3. A local folder.
    path = Path(ref).expanduser()
    if path.is_file():
        raise ModelLoadError(
            f"`{ref}` is a single file, but packshot loads diffusers folders (model_index.json "
            "plus one folder per part). Pass such a folder, or a Hub id such as "
            f"{EXAMPLE_HUB_ID}. A single-file checkpoint can be converted with diffusers' "
            "`from_single_file(...).save_pretrained(folder)`."
        )
    if path.is_dir():
        path = path.resolve()
        return ResolvedModel(ref, path, detect_family(path), "local")

    # 4. A Hub id.
    if HUB_ID.match(ref):
        path = download_from_hub(
            ref,
            select_files=select_hub_files,
            marker="model_index.json",
            wrong_kind=(
                "it is not a diffusers pipeline (no model_index.json). Pick a diffusers version "
                f"of the model, such as {EXAMPLE_HUB_ID}."
            ),
            offline=offline,
        )
        return ResolvedModel(ref, path, detect_family(path), "hub")

    # 5. Nothing we know.
    if any(c in ref for c in "/\\~") or ref.startswith(".") or path.suffix:
        raise ModelNotFoundError(
            f"Model folder not found: `{ref}` ({path.absolute()}). Check the path, or pass a Hub "
            f"id such as {EXAMPLE_HUB_ID}."
        )
    close = difflib.get_close_matches(ref, list(TINY_ALIASES), n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    raise ModelNotFoundError(
        f"`{ref}` is not a built-in model ({', '.join(TINY_ALIASES)}), a folder here, or a Hub "
        f"id (owner/name, such as {EXAMPLE_HUB_ID}).{hint}"
    )


def _is_current_stand_in(folder: Path, alias: str) -> bool:
    note = read_stand_in_note(folder)
    return (
        note is not None
        and note.get("alias") == alias
        and note.get("builder_version") == BUILDER_VERSION
        and (folder / "model_index.json").is_file()
    )


def _tiny_model(alias: str, cache_dir: Path) -> Path:
    """The folder of the tiny stand-in `alias`, built on first use (atomically)."""
    return build_into_cache(
        cache_dir.expanduser().resolve() / "models" / alias,
        lambda folder: build_tiny_pipeline(alias, folder),
        lambda folder: _is_current_stand_in(folder, alias),
        f"the built-in model `{alias}`",
    )


def _offline_requested() -> bool:
    """Whether Hub downloads are switched off (`HF_HUB_OFFLINE`, read now, or at hub import)."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return value in {"1", "ON", "YES", "TRUE"} or bool(huggingface_hub.constants.HF_HUB_OFFLINE)


# Which files of a Hub repo a download fetches (see select_hub_files).
_CONFIG_SUFFIXES = (".json", ".txt", ".model")  # configs, tokenizer vocab/merges, sentencepiece
# packshot always turns the safety checker off: its 1.2 GB of weights are never downloaded.
_SKIPPED_FOLDERS = frozenset({"safety_checker"})


def _is_variant(weight_name: str) -> bool:
    """`diffusion_pytorch_model.fp16.safetensors`, `model.fp16-00001-of-00002.safetensors`: yes."""
    stem = weight_name.rsplit(".", 1)[0]
    return "." in stem


def select_hub_files(files: list[str]) -> list[str]:
    """The files of a Hub repo that a diffusers pipeline needs, with no duplicate weights.

    Per component folder: its configs and tokenizer files, and its weights as safetensors
    (pickle `.bin` only where there are no safetensors); no fp16/non-EMA variants, no ONNX, Flax
    or single-file checkpoints at the top.
    """
    chosen = [f for f in files if f == "model_index.json"]
    folders: dict[str, list[str]] = {}
    for file in files:
        folder, slash, name = file.partition("/")
        if slash and "/" not in name and folder not in _SKIPPED_FOLDERS:
            folders.setdefault(folder, []).append(name)
    for folder, names in sorted(folders.items()):
        for suffix in (".safetensors", ".bin"):
            weights = [n for n in names if n.endswith(suffix) and not _is_variant(n)]
            if weights:
                weights += [n for n in names if n.endswith(f"{suffix}.index.json")]
                break
        configs = [n for n in names if n.endswith(_CONFIG_SUFFIXES) and ".index." not in n]
        chosen += [f"{folder}/{n}" for n in sorted(configs + weights)]
    return chosen


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the network is down": builtins, and those of whichever HTTP client
    the installed huggingface_hub uses (httpx2, httpx or requests, by version)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError, LocalEntryNotFoundError]
    for module, name in (
        ("httpx2", "TransportError"),
        ("httpx", "TransportError"),
        ("requests", "ConnectionError"),
        ("requests", "Timeout"),
    ):
        error = getattr(sys.modules.get(module), name, None)
        if isinstance(error, type) and issubclass(error, BaseException):
            errors.append(error)
    return tuple(errors)


_LOGIN = "`hf auth login` (`huggingface-cli login` in older versions)"


def _download_elsewhere(repo_id: str) -> str:
    return (
        f"download it on a machine with internet (`hf download {repo_id} --local-dir DIR`; "
        "`huggingface-cli download` in older versions) and pass the folder"
    )


def _offline_error(repo_id: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"`{repo_id}` isn't in the local Hugging Face cache, and Hub downloads are switched off "
        f"(HF_HUB_OFFLINE is set). Unset HF_HUB_OFFLINE, or {_download_elsewhere(repo_id)}."
    )


def _unreachable_error(repo_id: str, error: BaseException) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"Can't reach the Hugging Face Hub to download `{repo_id}` ({type(error).__name__}: "
        f"{error}), and it isn't in the local cache. Check this machine's internet connection, "
        f"or {_download_elsewhere(repo_id)}."
    )


def _hub_answer_error(repo_id: str, error: BaseException) -> ModelNotFoundError | None:
    """The one clear error for an answer of the Hub (not found, gated, ...); None if there was
    no answer (a network failure). Anything else is a bug and is raised as it is."""
    if isinstance(error, OfflineModeIsEnabled):
        return _offline_error(repo_id)
    if isinstance(error, HFValidationError):
        return ModelNotFoundError(
            f"`{repo_id}` is not a valid Hugging Face Hub id ({error}). Hub ids look like "
            f"owner/name, such as {EXAMPLE_HUB_ID}."
        )
    if isinstance(error, GatedRepoError):
        return ModelNotFoundError(
            f"`{repo_id}` is gated on the Hugging Face Hub: accept its licence on "
            f"https://huggingface.co/{repo_id}, then log in on this machine with {_LOGIN}."
        )
    if isinstance(error, RepositoryNotFoundError | RevisionNotFoundError):
        return ModelNotFoundError(
            f"`{repo_id}` was not found on the Hugging Face Hub, nor as a folder "
            f"({Path(repo_id).absolute()}). Check the spelling (owner/name, such as "
            f"{EXAMPLE_HUB_ID}). If it is a private model, log in first with {_LOGIN}."
        )
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "error"
        if status in (401, 403):
            return ModelNotFoundError(
                f"The Hugging Face Hub refused access to `{repo_id}` (HTTP {status}). If it is "
                f"private or gated, accept its terms on https://huggingface.co/{repo_id} and log "
                f"in with {_LOGIN}."
            )
        return ModelNotFoundError(
            f"The Hugging Face Hub answered HTTP {status} for `{repo_id}`. Try again later, or "
            f"{_download_elsewhere(repo_id)}."
        )
    if isinstance(error, _network_errors()):
        return None
    raise error


def _cached_snapshot(
    repo_id: str, select_files: Callable[[list[str]], list[str]], marker: str
) -> Path | None:
    """The complete cached download of `repo_id` (it holds `marker`), offline, or None."""
    # Ask for the same files a download would have fetched, so the check for a complete
    # snapshot doesn't count the files we skipped on purpose (only newer huggingface_hub).
    patterns = None
    cached_tree = getattr(huggingface_hub, "get_cached_repo_tree", None)
    if cached_tree is not None:
        try:
            patterns = select_files([entry.path for entry in cached_tree(repo_id)])
        except Exception:  # no listing cached: check nothing more than older versions did
            patterns = None
    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        return None
    return folder if (folder / marker).is_file() else None


def _within(seconds: float, call: Callable[[], T]) -> T:
    """`call()`, or a TimeoutError after `seconds` of wall-clock time.

    The HTTP timeout alone is not enough: a DNS lookup with no answering name server blocks
    for the resolver's own timeout (often 10-20 s) and no HTTP client can interrupt it. The
    call runs in a daemon thread, which is left behind on timeout and never delays an exit.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed over to the calling thread below
            outcome["error"] = error

    thread = threading.Thread(target=run, name="packshot-hub-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# Hub downloads already resolved in this process: a worker asks the Hub once per model, not
# per job. Keyed by (repo id, marker file), as the same id could be fetched for two uses.
_hub_folders: dict[tuple[str, str], Path] = {}


def download_from_hub(
    repo_id: str,
    *,
    select_files: Callable[[list[str]], list[str]],
    marker: str,
    wrong_kind: str,
    offline: bool | None = None,
) -> Path:
    """Download the files `select_files` picks from `repo_id` into the Hugging Face cache.

    The one Hub path for every model packshot loads (pipelines, judges): it fails within
    seconds when the Hub is unreachable, falls back to a complete cached copy, and turns every
    Hub failure into one ModelNotFoundError that says what to do. A repo without `marker`
    (e.g. model_index.json) raises ModelLoadError: "`repo_id` is on the Hub, but {wrong_kind}".
    """
    key = (repo_id, marker)
    if key in _hub_folders and _hub_folders[key].is_dir():
        return _hub_folders[key]

    # 1. Offline: only what is on disk already.
    if _offline_requested() if offline is None else offline:
        folder = _cached_snapshot(repo_id, select_files, marker)
        if folder is None:
            raise _offline_error(repo_id)
        return folder

    # 2. Ask the Hub what the repo holds, within seconds. Unreachable: try the cache.
    try:
        info = _within(HUB_TIMEOUT_S, lambda: HfApi().model_info(repo_id, timeout=HUB_TIMEOUT_S))
    except Exception as error:
        answer = _hub_answer_error(repo_id, error)
        if answer is not None:
            raise answer from error
        folder = _cached_snapshot(repo_id, select_files, marker)
        if folder is None:
            raise _unreachable_error(repo_id, error) from error
        return folder

    # 3. Download the files it needs, at the commit we just saw.
    files = [sibling.rfilename for sibling in info.siblings or []]
    if marker not in files:
        raise ModelLoadError(f"`{repo_id}` is on the Hugging Face Hub, but {wrong_kind}")
    try:
        folder = snapshot_download(
            repo_id,
            revision=info.sha,
            allow_patterns=select_files(files),
            etag_timeout=HUB_TIMEOUT_S,
        )
    except Exception as error:
        answer = _hub_answer_error(repo_id, error)
        raise (answer or _unreachable_error(repo_id, error)) from error
    _hub_folders[key] = Path(folder)
    return Path(folder)


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

# The last pipeline loaded: ((path, kind, device, dtype), pipeline). One at a time, since a
# second SDXL rarely fits beside the first on a GPU.
_cached: tuple[tuple[str, str, str, torch.dtype], DiffusionPipeline] | None = None


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
) -> DiffusionPipeline:
    """Load the diffusers pipeline of model `ref` for `kind` ("text2img" or "inpaint").

    Aliases, folders and Hub ids all go through the family's `from_pretrained`. The safety
    checker is off, attention is PyTorch's SDPA (diffusers' default), progress bars are off.
    The last pipeline loaded is kept and returned again for the same (folder, kind, device,
    dtype): callers that change it (a LoRA, a scheduler) must undo that when done.
    """
    global _cached

    # 1. Resolve the model, the pipeline class, the device and the dtype.
    resolved = resolve_model(ref, cache_dir=cache_dir)
    cls = _pipeline_class(resolved.family.pipeline_class_name(kind))
    device = pick_device(device)
    if not isinstance(dtype, torch.dtype):
        dtype = pick_dtype(device, dtype)

    # 2. The cached pipeline, if it is this one.
    key = (str(resolved.path), kind, device, dtype)
    if _cached is not None and _cached[0] == key:
        return _cached[1]
    clear_pipeline_cache()  # free the old one before loading the next

    # 3. Check the folder, then load it.
    _check_parts(resolved.path)
    options: dict[str, Any] = {_DTYPE_KWARG: dtype}
    if "safety_checker" in inspect.signature(cls.__init__).parameters:
        options.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        with _quiet_loading():
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
    _cached = (key, pipe)
    return pipe


# -- reports ---------------------------------------------------------------------------------


def _native_resolution(resolved: ResolvedModel) -> int:
    """The side length the model makes by default: its UNet's latent size times the VAE's
    down-sampling (8 for SD; 64 px for the tiny stand-ins); the family's where unknown."""
    try:
        unet = json.loads((resolved.path / "unet" / "config.json").read_text(encoding="utf-8"))
        vae = json.loads((resolved.path / "vae" / "config.json").read_text(encoding="utf-8"))
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError):
        return resolved.family.resolution


def describe_model(resolved: ResolvedModel) -> dict[str, Any]:
    """A JSON-ready summary of a resolved model, for reports and run metadata."""
    note = read_stand_in_note(resolved.path)
    return {
        "ref": resolved.ref,
        "family": resolved.family.name,
        "family_label": resolved.family.label,
        "source": resolved.source,
        "path": str(resolved.path),
        "resolution": _native_resolution(resolved),
        "tiny_stand_in": note is not None,
        # For people reading a report: the stand-ins' images are noise by design.
        "note": str(note["note"]) if note else None,
    }
