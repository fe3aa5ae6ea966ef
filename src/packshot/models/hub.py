"""The Hugging Face Hub: downloads that fail fast and say why (what a Hub id looks like is
`packshot.models.names`).

`download_from_hub` is the one Hub path for every model packshot loads (pipelines, judges):
within seconds when the Hub is unreachable, a complete cached copy when there is one, and one
ModelNotFoundError that says what to do for every Hub failure. No torch here.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import huggingface_hub
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

from packshot.errors import ModelLoadError, ModelNotFoundError, ModelUnavailableError
from packshot.models.families import TRAINING_MODEL
from packshot.models.names import folders_allowed

T = TypeVar("T")

# Seconds to wait for the Hub's first answer. An unreachable network must fail in seconds,
# not hang: huggingface_hub's own default for this call is to wait forever.
HUB_TIMEOUT_S = 5.0


def offline_requested() -> bool:
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
    return ModelUnavailableError(
        f"`{repo_id}` isn't in the local Hugging Face cache, and Hub downloads are switched off "
        f"(HF_HUB_OFFLINE is set). Unset HF_HUB_OFFLINE, or {_download_elsewhere(repo_id)}."
    )


def _unreachable_error(repo_id: str, error: BaseException) -> ModelNotFoundError:
    return ModelUnavailableError(
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
            f"owner/name, such as {TRAINING_MODEL}."
        )
    if isinstance(error, GatedRepoError):
        return ModelUnavailableError(
            f"`{repo_id}` is gated on the Hugging Face Hub: accept its licence on "
            f"https://huggingface.co/{repo_id}, then log in on this machine with {_LOGIN}."
        )
    if isinstance(error, RepositoryNotFoundError | RevisionNotFoundError):
        # A folder was looked for only where folders are allowed (never a studio job's).
        folder = f", nor as a folder ({Path(repo_id).absolute()})" if folders_allowed() else ""
        return ModelNotFoundError(
            f"`{repo_id}` was not found on the Hugging Face Hub{folder}. Check the spelling "
            f"(owner/name, such as {TRAINING_MODEL}). If it is a private model, log in first "
            f"with {_LOGIN}."
        )
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "error"
        if status in (401, 403):
            return ModelUnavailableError(
                f"The Hugging Face Hub refused access to `{repo_id}` (HTTP {status}). If it is "
                f"private or gated, accept its terms on https://huggingface.co/{repo_id} and log "
                f"in with {_LOGIN}."
            )
        return ModelUnavailableError(
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
    if offline_requested() if offline is None else offline:
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


def availability_problem(repo_id: str, *, offline: bool | None = None) -> str | None:
    """None when `repo_id` can be loaded here (a complete copy in the cache, or the Hub answers
    for it within seconds); else what is wrong and how to fix it, for the operator.
    `packshot serve` checks the studio's models so at start."""
    if _cached_snapshot(repo_id, select_hub_files, "model_index.json") is not None:
        return None
    if offline_requested() if offline is None else offline:
        return str(_offline_error(repo_id))
    try:
        _within(HUB_TIMEOUT_S, lambda: HfApi().model_info(repo_id, timeout=HUB_TIMEOUT_S))
    except Exception as error:
        try:
            answer = _hub_answer_error(repo_id, error)
        except Exception:  # neither an answer of the Hub nor the network: say what it was
            answer = None
        return str(answer or _unreachable_error(repo_id, error))
    return None
