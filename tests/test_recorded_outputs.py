"""Byte-for-byte outputs of the tiny stand-ins, compared against a recording of an earlier main.

Refactors of the model code (families, loading, training, shooting, placing) must not change
a single byte of what packshot makes: this test trains tiny SD 1.5 and SDXL LoRAs for two
steps, shoots with each, places a product with tiny-inpaint, and compares the sha256 of every
LoRA file (diffusers and kohya) and every image with `fixtures/recorded_outputs.json`.

LoRA files are compared by their tensors (name, dtype, shape, bytes) and their metadata, not
by their raw bytes: safetensors writes the metadata's keys in hash-map order, and peft keeps
`target_modules` as a set, so the same weights give other file bytes in another process (a
set's order is what they differ in; its items are compared sorted). Images are compared by
their decoded pixels plus their `parameters` text chunk (the A1111 recipe): the recipe is
what packshot writes, the rest is PIL's encoder (whose bytes were the same run to run
anyway). Float results depend on the CPU's kernels and the libraries' code, so the comparison
only runs where torch's version, the CPU capability and the versions of `LIBRARIES` are those of
the recording; elsewhere it skips and says why.

Record again (only when a change of outputs is intended, and say so in the commit):
    PYTHONPATH=src python tests/test_recorded_outputs.py --record
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "recorded_outputs.json"
EXAMPLE_PHOTOS = HERE.parent / "examples" / "backpack"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical_metadata(text: str) -> object:
    """A safetensors metadata value, parsed if JSON, with peft's `target_modules` sets sorted."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict):
        return {
            k: sorted(v) if k.endswith("target_modules") and isinstance(v, list) else v
            for k, v in value.items()
        }
    return value


def _lora_hash(path: Path) -> str:
    """sha256 of a safetensors file's tensors (sorted by name) and its canonical metadata."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    data = raw[8 + size :]
    metadata = {k: _canonical_metadata(v) for k, v in header.pop("__metadata__", {}).items()}
    digest = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode())
    for name in sorted(header):
        start, end = header[name]["data_offsets"]
        digest.update(f"{name} {header[name]['dtype']} {header[name]['shape']}\n".encode())
        digest.update(data[start:end])
    return digest.hexdigest()


def _image_hash(path: Path) -> str:
    """sha256 of the decoded pixels (mode, size, bytes) and the `parameters` text chunk."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        parameters = image.text.get("parameters", "")  # type: ignore[attr-defined]
        head = f"{image.mode} {image.size[0]}x{image.size[1]}\n{parameters}\n".encode()
        return _sha256(head + image.tobytes())


# The libraries whose code makes the bytes besides torch: the pipelines and schedulers
# (diffusers), the text encoders (transformers), the LoRA layers and their file metadata
# (peft, safetensors), the image arrays and PNG encoder (numpy, Pillow).
LIBRARIES = ("diffusers", "transformers", "peft", "safetensors", "numpy", "pillow")


def environment() -> dict[str, str]:
    """What decides the bytes: torch's version, the CPU kernels it picks, and the versions of
    the libraries packshot's requirements leave open (a fresh install takes the newest)."""
    from importlib.metadata import version

    import torch

    return {
        "torch": torch.__version__,
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        **{name: version(name) for name in LIBRARIES},
    }


def _train(model: str, training_set: Path, out: Path, cache_dir: Path, **extra: Any) -> Path:
    from packshot.train import TrainConfig, train

    config = TrainConfig(
        model=model,
        class_word="backpack",
        resolution=64,
        max_train_steps=2,
        learning_rate=1e-2,  # large, so that 2 steps move the LoRA
        checkpointing_steps=0,
        validation_inference_steps=2,
        validation_seeds=[0],
        train_text_encoder=True,
        **extra,
    )
    return train(config, training_set, out, cache_dir=cache_dir).model_dir


def make_outputs(work: Path, models_from: Path | None = None) -> dict[str, str]:
    """Train, shoot and place on the tiny stand-ins in `work`; {what: sha256}. The stand-ins
    are taken from the cache `models_from` when given (they are built the same anywhere)."""
    import torch

    from packshot.intake import check_photos, prepare_training_set
    from packshot.place import PlaceRequest, place
    from packshot.shoot import ShootRequest, shoot

    sys.path.insert(0, str(HERE))
    from placing_support import write_photo

    # A private cache: the class images made here must not meet other tests'. The tiny models
    # are built the same wherever they are built: the suite's own are shared.
    cache_dir = work / "cache"
    if models_from is not None:
        (models_from / "models").mkdir(parents=True, exist_ok=True)
        cache_dir.mkdir(parents=True)
        (cache_dir / "models").symlink_to(models_from / "models", target_is_directory=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the suite runs: float sums may depend on the thread count
    try:
        # 1. The bundled backpack, prepared at the tiny models' 64 px.
        report = check_photos(EXAMPLE_PHOTOS)
        training_set = work / "set"
        prepare_training_set(
            report, training_set, resolution=64, token="sks", class_word="backpack"
        )

        # 2. Two LoRAs: SD 1.5, and SDXL with prior preservation (class images, prior loss).
        models = {
            "sd15": _train("tiny", training_set, work / "sd15", cache_dir),
            "sdxl": _train(
                "tiny-sdxl",
                training_set,
                work / "sdxl",
                cache_dir,
                with_prior_preservation=True,
                num_class_images=1,
                class_inference_steps=2,
            ),
        }
        hashes: dict[str, str] = {}
        for family, model_dir in models.items():
            for name in (
                "pytorch_lora_weights.safetensors",
                "pytorch_lora_weights_kohya.safetensors",
            ):
                hashes[f"{family}/{name}"] = _lora_hash(model_dir / name)
            for sample in sorted((model_dir / "samples").glob("*.png")):
                hashes[f"{family}/samples/{sample.name}"] = _image_hash(sample)

            # 3. A shoot with each: two presets (two sizes), two steps.
            request = ShootRequest(
                model_dir,
                descriptions=["{product} on a marble table"],
                presets=["studio", "lifestyle"],
                count=1,
                seed=7,
                num_inference_steps=2,
            )
            result = shoot(request, work / f"shoot-{family}", cache_dir=cache_dir)
            for shot in result.shots:
                hashes[f"{family}/shoot/{shot.path.name}"] = _image_hash(shot.path)

        # 4. A placement with tiny-inpaint, the SD 1.5 product model's LoRA on it.
        photo, _ = write_photo(work / "photo")
        placed = place(
            PlaceRequest(
                str(photo),
                descriptions=["on a marble kitchen counter"],
                presets=["studio"],
                count=1,
                seed=11,
                num_inference_steps=2,
                cutout_model="grabcut",
                product_model=str(models["sd15"]),
                judge=False,
            ),
            work / "place",
            cache_dir=cache_dir,
        )
        for shot in placed.shots:
            hashes[f"place/{shot.path.name}"] = _image_hash(shot.path)
    finally:
        torch.set_num_threads(threads)
    return hashes


@pytest.mark.budget(20)  # SD 1.5 and SDXL trained, shot with, and a placement
def test_outputs_match_the_recording(tmp_path: Path, cache_dir: Path) -> None:
    recorded = json.loads(FIXTURE.read_text(encoding="utf-8"))
    here = environment()
    if here != recorded["environment"]:
        pytest.skip(
            f"recorded with {recorded['environment']}, running with {here}: "
            "other kernels give other floats"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    made = make_outputs(tmp_path, models_from=cache_dir)
    assert made == recorded["outputs"]


def record() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="packshot-record-") as folder:
        outputs = make_outputs(Path(folder))
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    data = {"environment": environment(), "outputs": outputs}
    FIXTURE.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"recorded {len(outputs)} hashes into {FIXTURE}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        raise SystemExit(f"usage: python {sys.argv[0]} --record")
    record()
