"""Background-removal models through ONNX Runtime: U2-Net, ISNet and BiRefNet, as rembg runs them.

Pre- and post-processing follow rembg's sessions (`rembg/sessions/u2net.py`, `dis_general_use.py`,
`birefnet_general.py`): the photo resized to the model's input (Lanczos), scaled by its brightest
value, normalised per channel by the family's mean and std, NCHW float32; the first output's
first channel is the mask, through a sigmoid for BiRefNet (it outputs logits), then stretched
to 0..1 and resized back to the photo.

Where a model comes from, first match wins: a `.onnx` file path; an http(s) URL (downloaded
once into the cache); a Hub repo `owner/name` (its first `.onnx` file) or `owner/name/file.onnx`;
a known name (`u2net`, `isnet-general-use`, `birefnet-general`), found in the cache or downloaded
from rembg's releases. Nothing is downloaded while `HF_HUB_OFFLINE=1`.
"""

from __future__ import annotations

import os
import re
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from huggingface_hub import HfApi, hf_hub_download
from PIL import Image

from packshot.errors import ModelLoadError, ModelNotFoundError, UsageError
from packshot.models.hub import offline_requested

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class MattingFamily:
    """How one kind of background-removal model wants its input and gives its output."""

    name: str
    size: int  # the side of the square input it was trained at (used when the file doesn't fix it)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    logits: bool  # the output is before the sigmoid (BiRefNet); U2-Net and ISNet apply it inside


FAMILIES: dict[str, MattingFamily] = {
    f.name: f
    for f in (
        MattingFamily("u2net", 320, IMAGENET_MEAN, IMAGENET_STD, logits=False),
        # ISNet (DIS) is trained on [0, 1] pixels minus 0.5: rembg's mean 0.5, std 1.
        MattingFamily("isnet", 1024, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), logits=False),
        MattingFamily("birefnet", 1024, IMAGENET_MEAN, IMAGENET_STD, logits=True),
    )
}

_RELEASES = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/"
# Known names -> (file name, family). ISNet is the default: 1024 px masks with clean edges at
# 176 MB; BiRefNet is better on fine detail and 4x the size and time.
KNOWN_MODELS: dict[str, tuple[str, str]] = {
    "u2net": ("u2net.onnx", "u2net"),
    "isnet-general-use": ("isnet-general-use.onnx", "isnet"),
    "birefnet-general": ("BiRefNet-general-epoch_244.onnx", "birefnet"),
}
DEFAULT_MODEL = "isnet-general-use"
DOWNLOAD_TIMEOUT_S = 20.0  # per network read; an unreachable host must fail in seconds


def family_for(name: str) -> MattingFamily:
    """The family a model file belongs to, from its name (BiRefNet, ISNet/DIS, else U2-Net)."""
    lowered = Path(name).name.lower()
    if "birefnet" in lowered:
        return FAMILIES["birefnet"]
    if "isnet" in lowered or "dis" in re.split(r"[^a-z]", lowered):
        return FAMILIES["isnet"]
    return FAMILIES["u2net"]


def _download(url: str, target: Path) -> Path:
    """`url` into `target`, atomically (a half-written file never carries the final name)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(  # noqa: S310 (http(s) only)
                url, timeout=DOWNLOAD_TIMEOUT_S
            ) as response,
        ):
            while block := response.read(1 << 20):
                out.write(block)
        tmp.replace(target)
    except Exception as error:
        tmp.unlink(missing_ok=True)
        raise ModelNotFoundError(
            f"Couldn't download the background-removal model from {url} ({error}). Download it "
            "on a machine with internet and pass the .onnx file with --cutout-model (or set "
            "PACKSHOT_CUTOUT_MODEL), or use --cutout-model grabcut."
        ) from None
    return target


def find_model_file(ref: str, cache_dir: Path) -> tuple[Path, MattingFamily]:
    """The local .onnx file for `ref` (downloading it if needed) and its family."""
    ref = ref.strip()
    path = Path(ref).expanduser()
    # 1. A local file.
    if path.suffix.lower() == ".onnx" and not ref.startswith(("http://", "https://")):
        if not path.is_file():
            raise ModelNotFoundError(
                f"Background-removal model not found: {path}. Check the path, or pass "
                f"{', '.join(KNOWN_MODELS)} to download one."
            )
        return path.resolve(), family_for(path.name)
    folder = cache_dir / "cutout-models"
    # 2. A URL.
    if ref.startswith(("http://", "https://")):
        name = Path(urllib.request.url2pathname(ref.split("?")[0])).name or "model.onnx"
        target = folder / "urls" / name
        if not target.is_file():
            if offline_requested():
                raise ModelNotFoundError(
                    f"The background-removal model {ref} isn't downloaded yet and downloads are "
                    "off (HF_HUB_OFFLINE=1). Download it and pass the .onnx file instead."
                )
            _download(ref, target)
        return target, family_for(name)
    # 3. A known name.
    if ref in KNOWN_MODELS:
        file_name, family = KNOWN_MODELS[ref]
        target = folder / file_name
        if not target.is_file():
            if offline_requested():
                raise ModelNotFoundError(
                    f"The background-removal model `{ref}` isn't downloaded yet and downloads "
                    "are off (HF_HUB_OFFLINE=1)."
                )
            _download(_RELEASES + file_name, target)
        return target, FAMILIES[family]
    # 4. A Hub repo, or a file in one.
    parts = ref.split("/")
    if len(parts) >= 2 and all(parts):
        return _from_hub("/".join(parts[:2]), "/".join(parts[2:]) or None)
    raise UsageError(
        f"`{ref}` is not a background-removal model packshot knows: pass a .onnx file, a URL, "
        f"a Hub repo (owner/name), one of {', '.join(KNOWN_MODELS)}, or grabcut."
    )


def _from_hub(repo_id: str, filename: str | None) -> tuple[Path, MattingFamily]:
    try:
        if filename is None:
            if offline_requested():
                raise ModelNotFoundError("downloads are off (HF_HUB_OFFLINE=1)")
            files = HfApi().list_repo_files(repo_id)
            onnx = sorted(f for f in files if f.endswith(".onnx"))
            if not onnx:
                raise ModelLoadError(f"The Hub repo {repo_id} holds no .onnx file.")
            filename = onnx[0]
        local = hf_hub_download(repo_id, filename, local_files_only=offline_requested())
    except ModelLoadError:
        raise
    except Exception as error:
        raise ModelNotFoundError(
            f"Couldn't get the background-removal model {repo_id} from the Hugging Face Hub "
            f"({error}). Pass a downloaded .onnx file with --cutout-model, or use grabcut."
        ) from None
    return Path(local), family_for(f"{repo_id}/{filename}")


class MattingModel:
    """One ONNX background-removal model, loaded once: `predict(image) -> (H, W) float 0..1`."""

    def __init__(self, path: Path, family: MattingFamily, *, ref: str | None = None):
        self.path, self.family, self.ref = Path(path), family, ref or str(path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no notes about unused initialisers
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=_providers(ort)
            )
        except Exception as error:
            raise ModelLoadError(
                f"{self.path} is not an ONNX model ONNX Runtime can load ({error}). Download it "
                "again, or use --cutout-model grabcut."
            ) from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelLoadError(
                f"{self.path} doesn't look like a background-removal model: it should take one "
                "image (N, 3, H, W)."
            )
        self.input_name = inputs[0].name
        # The file's own input size when it fixes one; else the family's.
        h, w = inputs[0].shape[2:]
        self.size = (
            (int(w), int(h)) if isinstance(h, int) and isinstance(w, int) else (family.size,) * 2
        )

    def describe(self) -> dict[str, Any]:
        return {"ref": self.ref, "path": str(self.path), "family": self.family.name}

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """(1, 3, H, W) float32, as rembg's `BaseSession.normalize`."""
        resized = image.convert("RGB").resize(self.size, Image.Resampling.LANCZOS)
        pixels = np.asarray(resized, np.float32)
        pixels = pixels / max(float(pixels.max()), 1e-6)
        pixels = (pixels - np.array(self.family.mean, np.float32)) / np.array(
            self.family.std, np.float32
        )
        return pixels.transpose(2, 0, 1)[None].astype(np.float32)

    def predict(self, image: Image.Image) -> np.ndarray:
        """The product's soft mask at the image's size: (H, W) float32 in 0..1."""
        outputs = self.session.run(None, {self.input_name: self.preprocess(image)})
        first = np.asarray(outputs[0], np.float32)
        if first.ndim != 4 or first.shape[1] < 1:
            raise ModelLoadError(
                f"{self.path} gave an output of shape {first.shape}, not a mask (N, 1, H, W)."
            )
        prediction = first[0, 0]
        if self.family.logits:
            prediction = 1.0 / (1.0 + np.exp(-prediction))
        low, high = float(prediction.min()), float(prediction.max())
        prediction = (prediction - low) / (high - low) if high > low else np.zeros_like(prediction)
        mask = Image.fromarray((prediction * 255).astype(np.uint8), "L")
        mask = mask.resize(image.size, Image.Resampling.LANCZOS)
        return np.asarray(mask, np.float32) / 255.0


def _providers(ort: Any) -> list[str]:
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


_loaded: dict[str, MattingModel] = {}


def load_matting_model(ref: str, cache_dir: Path) -> MattingModel:
    """The model `ref` names, loaded once per process (a worker keeps it between jobs)."""
    path, family = find_model_file(ref, cache_dir)
    key = f"{path}:{family.name}"
    if key not in _loaded:
        _loaded[key] = MattingModel(path, family, ref=ref)
    return _loaded[key]
