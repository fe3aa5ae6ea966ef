"""Model families, and packshot.models: device and dtype, Hub, resolving and loading, the tiny
stand-ins."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch
from PIL import Image
from transformers import CLIPTokenizer

from packshot.errors import ModelLoadError, ModelNotFoundError, UsageError
from packshot.models import hub, preprocessors
from packshot.models.describe import describe_model
from packshot.models.device import pick_device, pick_dtype
from packshot.models.families import (
    FAMILIES,
    ModelFamily,
    base,
    detect_family,
    register_family,
    stand_in_aliases,
)
from packshot.models.hub import select_hub_files
from packshot.models.load import ResolvedModel, clear_pipeline_cache, load_pipeline, resolve_model
from packshot.models.names import hub_models_only, is_model_name
from packshot.models.preprocessors import load_preprocessor, pipeline_tokenizers
from packshot.models.standins import (
    BUILDER_VERSION,
    build_clip_tokenizer,
    build_tiny_pipeline,
    clip_tokenizer_files,
)

DOG_IDS = [49406, 320, 1125, 539, 320, 1929, 49407]  # "a photo of a dog", by OpenAI's CLIP

# alias, family, kind to load, diffusers class
TINY = [
    ("tiny", "sd15", "text2img", "StableDiffusionPipeline"),
    ("tiny-sdxl", "sdxl", "text2img", "StableDiffusionXLPipeline"),
    ("tiny-inpaint", "sd15-inpaint", "inpaint", "StableDiffusionInpaintPipeline"),
    ("tiny-sdxl", "sdxl", "inpaint", "StableDiffusionXLInpaintPipeline"),  # a plain model inpaints
]  # tiny-flux2: tests/test_flux2.py


def _write_index(folder: Path, class_name: str, in_channels: int = 4, sdxl: bool = False) -> Path:
    """A folder holding only the JSON configs that `detect_family` reads."""
    index = {"_class_name": class_name, "unet": ["diffusers", "UNet2DConditionModel"]}
    index["text_encoder"] = ["transformers", "CLIPTextModel"]
    if sdxl:
        index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps(index))
    (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": in_channels}))
    return folder


@pytest.fixture()
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, so no test finds a model someone downloaded before."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.fixture()
def online(monkeypatch: pytest.MonkeyPatch, hub_cache: Path) -> None:
    """Hub downloads switched on (conftest switches them off for every other test)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


# -- the tokenizer ---------------------------------------------------------------------------


def test_clip_tokenizer_gives_the_ids_of_real_clip(tmp_path: Path) -> None:
    tokenizer = build_clip_tokenizer()
    assert tokenizer("a photo of a dog").input_ids == DOG_IDS
    assert len(tokenizer) == 49408
    assert tokenizer.model_max_length == 77

    clip_tokenizer_files(tmp_path)  # the same from files, as a checkpoint's tokenizer/ folder
    from_files = CLIPTokenizer.from_pretrained(tmp_path)
    assert from_files("a photo of a dog").input_ids == DOG_IDS
    assert from_files.model_max_length == 77


# -- the tiny stand-ins, through the public path ---------------------------------------------


@pytest.mark.parametrize(("alias", "family", "kind", "class_name"), TINY)
def test_tiny_pipeline_loads_and_runs(
    cache_dir: Path, alias: str, family: str, kind: str, class_name: str
) -> None:
    pipe = load_pipeline(alias, kind=kind, cache_dir=cache_dir)

    # What was built: diffusers format, safetensors, the stand-in note.
    folder = resolve_model(alias, cache_dir=cache_dir).path
    assert type(pipe).__name__ == class_name
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] in FAMILIES[family].class_names
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(folder.glob("*/*.bin"))
    note = json.loads((folder / "packshot.json").read_text())
    assert (note["alias"], note["seed"], note["builder_version"]) == (alias, 0, BUILDER_VERSION)
    assert "noise" in note["note"]

    # How it was loaded: CPU, fp32, SDPA attention, a real tokenizer, a real 8x VAE.
    assert pipe.device.type == "cpu" and pipe.unet.dtype == torch.float32
    assert {type(p).__name__ for p in pipe.unet.attn_processors.values()} == {"AttnProcessor2_0"}
    assert pipe.tokenizer("a photo of a dog").input_ids == DOG_IDS
    assert pipe.text_encoder.config.vocab_size == 49408
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.in_channels == (9 if FAMILIES[family].is_inpaint else 4)

    # 2 steps, not square, so a swapped width and height would show.
    inputs = {"prompt": "a photo of sks backpack", "num_inference_steps": 2}
    inputs |= {"width": 96, "height": 64, "generator": torch.Generator().manual_seed(0)}
    if kind == "inpaint":
        inputs |= {"image": Image.new("RGB", (96, 64), "white")}
        inputs |= {"mask_image": Image.new("L", (96, 64), 255)}
    image = pipe(**inputs).images[0]
    assert isinstance(image, Image.Image)
    assert image.size == (96, 64)


@pytest.mark.parametrize(("alias", "family", "kind", "class_name"), TINY[:3])
def test_detect_family_of_the_stand_ins(
    cache_dir: Path, alias: str, family: str, kind: str, class_name: str
) -> None:
    resolved = resolve_model(alias, cache_dir=cache_dir)
    assert resolved.source == "alias"
    assert detect_family(resolved.path) is resolved.family is FAMILIES[family]
    assert resolved.family.pipeline_class_name(kind) == class_name
    assert resolved.family.text_encoders == (2 if alias == "tiny-sdxl" else 1)

    info = describe_model(resolved)
    assert info.family == family and info.source == "alias"
    assert info.tiny_stand_in is True and resolved.stand_in
    assert info.resolution == 64  # 8x8 latents times the VAE's 8
    assert json.loads(json.dumps(info.to_dict()))["family"] == family  # ready for a report


def test_families_of_real_model_layouts(tmp_path: Path) -> None:
    # The JSON a real checkpoint carries is all detection reads.
    real = {
        "sd15": _write_index(tmp_path / "a", "StableDiffusionPipeline"),
        "sdxl": _write_index(tmp_path / "b", "StableDiffusionXLPipeline", sdxl=True),
        "sd15-inpaint": _write_index(tmp_path / "c", "StableDiffusionInpaintPipeline", 9),
        "sdxl-inpaint": _write_index(tmp_path / "d", "StableDiffusionXLInpaintPipeline", 9, True),
    }
    for name, folder in real.items():
        assert detect_family(folder).name == name
    assert (FAMILIES["sd15"].resolution, FAMILIES["sdxl"].resolution) == (512, 1024)


def test_unknown_pipeline_class_names_it_and_the_families(tmp_path: Path) -> None:
    folder = _write_index(tmp_path / "flux", "FluxPipeline")
    with pytest.raises(ModelLoadError) as error:
        detect_family(folder)
    assert "FluxPipeline" in str(error.value)
    assert "sd15" in str(error.value) and "sdxl" in str(error.value)


def test_a_registered_family_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "FAMILIES", dict(FAMILIES))  # forget it after the test
    flux = ModelFamily(
        name="flux",
        label="FLUX",
        text2img_pipeline="FluxPipeline",
        inpaint_pipeline="FluxFillPipeline",
        resolution=1024,
        text_encoders=2,
        is_inpaint=False,
        class_names=("FluxPipeline",),
        denoiser="transformer",
    )
    register_family(flux)
    folder = tmp_path / "flux"
    folder.mkdir()
    index = {
        "_class_name": "FluxPipeline",
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "T5EncoderModel"],
        "transformer": ["diffusers", "FluxTransformer2DModel"],
    }
    (folder / "model_index.json").write_text(json.dumps(index))
    assert detect_family(folder) is flux
    with pytest.raises(ValueError, match="already registered"):
        register_family(flux)


def test_inpainting_model_refuses_text_to_image(cache_dir: Path) -> None:
    with pytest.raises(UsageError, match="inpainting model"):
        load_pipeline("tiny-inpaint", kind="text2img", cache_dir=cache_dir)
    with pytest.raises(UsageError, match="`kind`"):
        load_pipeline("tiny", kind="img2img", cache_dir=cache_dir)


def test_pipeline_cache_keeps_the_last_one(cache_dir: Path) -> None:
    first = load_pipeline("tiny", cache_dir=cache_dir)
    assert load_pipeline("tiny", cache_dir=cache_dir) is first
    folder = resolve_model("tiny", cache_dir=cache_dir).path
    assert load_pipeline(str(folder), cache_dir=cache_dir) is first
    assert load_pipeline("tiny", kind="inpaint", cache_dir=cache_dir) is not first
    bf16 = load_pipeline("tiny", dtype="bf16", cache_dir=cache_dir)
    assert bf16.unet.dtype == bf16.text_encoder.dtype == torch.bfloat16
    again = load_pipeline("tiny", cache_dir=cache_dir)
    assert again is not first and again.unet.dtype == torch.float32
    clear_pipeline_cache()
    assert load_pipeline("tiny", cache_dir=cache_dir) is not again


def test_tokenizers_are_loaded_once_per_process_and_again_when_saved_again(
    cache_dir: Path, tmp_path: Path
) -> None:
    tiny = resolve_model("tiny-sdxl", cache_dir=cache_dir).path
    folder = tmp_path / "tiny-sdxl"
    shutil.copytree(tiny, folder)
    first = pipeline_tokenizers(folder)
    assert set(first) == {"tokenizer", "tokenizer_2"}  # what model_index.json names
    assert first["tokenizer_2"].pad_token == "!"  # SDXL's second, from its own subfolder
    # The pipeline, and the family's text parts for a training, get those same objects.
    clear_pipeline_cache()
    pipe = load_pipeline(str(folder), cache_dir=cache_dir)
    assert pipe.tokenizer is first["tokenizer"] and pipe.tokenizer_2 is first["tokenizer_2"]
    tokenizers, _, _ = detect_family(folder).load_text_parts(folder, torch.float32)
    assert tokenizers == [first["tokenizer"], first["tokenizer_2"]]
    assert pipe.tokenizer("a photo of a dog").input_ids == DOG_IDS  # a working CLIP tokenizer
    # A folder whose files changed is read again.
    config = folder / "tokenizer" / "tokenizer_config.json"
    values = json.loads(config.read_text())
    config.write_text(json.dumps({**values, "model_max_length": 60}))
    again = pipeline_tokenizers(folder)
    assert again["tokenizer"] is not first["tokenizer"]
    assert again["tokenizer"].model_max_length == 60
    assert again["tokenizer_2"] is first["tokenizer_2"]
    # Only the last few are kept.
    for n in range(preprocessors.KEPT):
        copy = tmp_path / f"copy-{n}"
        shutil.copytree(tiny / "tokenizer", copy)
        load_preprocessor(copy, "CLIPTokenizer")
    assert pipeline_tokenizers(folder)["tokenizer_2"] is not first["tokenizer_2"]
    clear_pipeline_cache()


# -- building and caching the aliases --------------------------------------------------------


def test_alias_is_built_once(cache_dir: Path) -> None:
    first = resolve_model("tiny", cache_dir=cache_dir)
    stamp = (first.path / "packshot.json").stat().st_mtime_ns
    second = resolve_model("tiny", cache_dir=cache_dir)
    assert second.path == first.path == (cache_dir / "models" / "tiny").resolve()
    assert (second.path / "packshot.json").stat().st_mtime_ns == stamp


def test_half_built_and_outdated_folders_are_never_used(tmp_path: Path) -> None:
    models = tmp_path / "models"
    # A build that died half-way, and a copy without the note that marks a finished build.
    _write_index(models / ".tiny.building-dead", "StableDiffusionPipeline")
    _write_index(models / "tiny", "StableDiffusionPipeline")

    resolved = resolve_model("tiny", cache_dir=tmp_path)
    assert resolved.path == (models / "tiny").resolve()
    assert json.loads((resolved.path / "packshot.json").read_text())["alias"] == "tiny"
    assert (resolved.path / "vae" / "config.json").is_file()  # the real build, not the stub

    # A builder version change rebuilds.
    note_path = resolved.path / "packshot.json"
    note = json.loads(note_path.read_text())
    note_path.write_text(json.dumps(note | {"builder_version": BUILDER_VERSION - 1}))
    resolve_model("tiny", cache_dir=tmp_path)
    assert json.loads(note_path.read_text())["builder_version"] == BUILDER_VERSION
    leftovers = {p.name for p in models.iterdir()} - {"tiny", ".tiny.building-dead"}
    assert not leftovers  # no temporary or old copy left behind


def test_build_is_deterministic(tmp_path: Path) -> None:
    def unet_bytes(seed: int, name: str) -> bytes:
        folder = build_tiny_pipeline("tiny", tmp_path / name, seed=seed)
        return (folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()

    state = torch.random.get_rng_state()
    assert unet_bytes(0, "a") == unet_bytes(0, "b") != unet_bytes(1, "c")
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    with pytest.raises(UsageError, match="tiny-sdxl"):
        build_tiny_pipeline("tiny-xl", tmp_path / "d")


# -- mistakes a merchant can make ------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="folder not found"):
        resolve_model(str(tmp_path / "no" / "such" / "model"))
    with pytest.raises(ModelNotFoundError, match="Did you mean `tiny-sdxl`"):
        resolve_model("tiny-sdx")


def test_folder_that_is_not_a_pipeline(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(ModelLoadError) as error:
        resolve_model(str(tmp_path / "photos"))
    message = str(error.value)
    assert "is a folder but not a diffusers pipeline (no model_index.json)" in message
    assert "save_pretrained" in message and "stabilityai/stable-diffusion-xl-base-1.0" in message

    checkpoint = tmp_path / "sd_xl_base_1.0.safetensors"
    checkpoint.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="single file"):
        resolve_model(str(checkpoint))


def test_missing_and_broken_parts_are_named(cache_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(resolve_model("tiny", cache_dir=cache_dir).path, model)
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a download cut short
    with pytest.raises(ModelLoadError) as error:
        load_pipeline(str(model))
    assert str(model) in str(error.value)
    assert "unet/diffusion_pytorch_model.safetensors` is damaged" in str(error.value)

    shutil.rmtree(model / "vae")
    with pytest.raises(ModelLoadError, match="missing its `vae/` folder"):
        load_pipeline(str(model))


# -- the Hugging Face Hub, without a network -------------------------------------------------


def test_a_hub_id_named_tiny_is_a_real_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_cache: Path
) -> None:
    # `tiny-org/x` is someone's model on the Hub, not a stand-in: it goes to the Hub.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="isn't in the local Hugging Face cache"):
        resolve_model("tiny-org/x")
    # A folder is a stand-in by the note in it, whatever it is called.
    folder = _write_index(tmp_path / "tiny", "StableDiffusionPipeline")
    resolved = resolve_model(str(folder))
    assert resolved.source == "local" and not resolved.stand_in
    assert describe_model(resolved).tiny_stand_in is False
    # The API takes the same names: the stand-ins' aliases, and any Hub id.
    assert all(is_model_name(ref) for ref in [*stand_in_aliases(), "tiny-org/x"])
    assert not any(is_model_name(ref) for ref in ("tinyx", "../x", "a/b/c", "org/.x"))


def test_a_model_name_is_never_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_cache: Path
) -> None:
    # Names a merchant could send that are, or reach, folders: none is a model name.
    for ref in ("data/.", "tmp/.x", "data/..", "./data", "/etc/x", "a/b/c", "x./y", "a--b/c"):
        assert not is_model_name(ref), ref
    assert is_model_name("stabilityai/stable-diffusion-xl-base-1.0")
    # A Hub-shaped name that is also a folder here: the CLI takes the folder, a studio job
    # asks the Hub only, and its error shows no path of this machine.
    monkeypatch.chdir(tmp_path)
    _write_index(tmp_path / "data" / "models", "StableDiffusionPipeline")
    assert resolve_model("data/models").source == "local"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with hub_models_only():
        with pytest.raises(ModelNotFoundError) as error:
            resolve_model("data/models")
        assert str(tmp_path) not in str(error.value)
        with pytest.raises(UsageError, match="not a model name"):
            resolve_model(str(tmp_path / "data" / "models"))
        assert resolve_model("tiny").stand_in  # the built-in ones still resolve
    assert resolve_model("data/models").source == "local"  # outside: as before


def test_hub_id_while_offline(monkeypatch: pytest.MonkeyPatch, hub_cache: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as error:
        resolve_model("packshot-tests/no-such-model")
    message = str(error.value)
    assert "packshot-tests/no-such-model" in message and "HF_HUB_OFFLINE" in message
    assert "hf download packshot-tests/no-such-model --local-dir DIR" in message


@pytest.mark.usefixtures("online")
def test_unreachable_hub_fails_fast() -> None:
    # The real network: unreachable here and in CI. With internet, the id doesn't exist.
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError) as error:
        resolve_model("packshot-tests/no-such-model")
    assert time.monotonic() - started < hub.HUB_TIMEOUT_S + 5
    message = str(error.value)
    assert "packshot-tests/no-such-model" in message
    if "not found on the Hugging Face Hub" not in message:
        assert "Can't reach the Hugging Face Hub" in message and "hf download" in message


@pytest.mark.usefixtures("online")
def test_silent_hub_times_out_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that accepts the connection and never answers: the case that hangs by default.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(hub, "HUB_TIMEOUT_S", 1.0)
        started = time.monotonic()
        with pytest.raises(ModelNotFoundError, match="Can't reach the Hugging Face Hub"):
            resolve_model("packshot-tests/no-such-model")
        assert time.monotonic() - started < 4


def test_hub_model_downloaded_before_resolves_without_network(
    cache_dir: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Hugging Face cache layout a download leaves: refs/main names a snapshot folder.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub_cache / "models--packshot-tests--tiny"
    shutil.copytree(resolve_model("tiny", cache_dir=cache_dir).path, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve_model("packshot-tests/tiny")
    assert (resolved.source, resolved.family.name) == ("hub", "sd15")
    assert resolved.path == repo / "snapshots" / commit

    # Downloads on, but no network: the cached copy too.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # refused
    assert resolve_model("packshot-tests/tiny").path == resolved.path


def test_hub_files_skip_duplicates_and_other_formats() -> None:
    # The layout of stable-diffusion-v1-5/stable-diffusion-v1-5 (abridged).
    files = [
        "model_index.json",
        "v1-5-pruned.ckpt",
        "v1-5-pruned-emaonly.safetensors",
        "feature_extractor/preprocessor_config.json",
        "safety_checker/config.json",
        "safety_checker/model.safetensors",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "text_encoder/model.fp16.safetensors",
        "text_encoder/pytorch_model.bin",
        "tokenizer/merges.txt",
        "tokenizer/vocab.json",
        "tokenizer/tokenizer_config.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.non_ema.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "unet/diffusion_flax_model.msgpack",
        "vae/config.json",
        "vae/diffusion_pytorch_model.bin",  # only pickle here: it is taken
        "onnx/unet/model.onnx",
    ]
    assert select_hub_files(files) == [
        "model_index.json",
        "feature_extractor/preprocessor_config.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.bin",
    ]


# -- device and dtype ------------------------------------------------------------------------


def test_pick_device() -> None:
    assert pick_device() in {"cuda", "mps", "cpu"}
    assert pick_device("auto") == pick_device()
    assert pick_device("cpu") == "cpu"
    for bad in ("gpu", "cuda:x", "cpu:0"):
        with pytest.raises(UsageError, match=f"`{bad}`"):
            pick_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU"):
            pick_device("cuda")


def test_pick_dtype() -> None:
    assert pick_dtype("cpu") == torch.float32
    assert pick_dtype("cpu", "fp32") == torch.float32
    assert pick_dtype("cpu", "bf16") == torch.bfloat16
    assert pick_dtype("mps") == torch.float16
    with pytest.raises(UsageError, match="fp16 can't run on the CPU"):
        pick_dtype("cpu", "fp16")
    with pytest.raises(UsageError, match="`fp64`"):
        pick_dtype("cpu", "fp64")
    if torch.cuda.is_available():
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        assert pick_dtype("cuda") == expected
        assert pick_dtype("cuda:0", "fp16") == torch.float16


def test_resolved_model_is_a_plain_record(cache_dir: Path) -> None:
    folder = resolve_model("tiny-sdxl", cache_dir=cache_dir).path
    resolved = resolve_model(str(folder))
    assert resolved == ResolvedModel(
        ref=str(folder),
        path=folder,
        family=FAMILIES["sdxl"],
        source="local",
        stand_in=True,  # by the note in its folder, not by its name
    )
    assert describe_model(resolved).tiny_stand_in is True
    assert set(stand_in_aliases()) == {
        "tiny",
        "tiny-sdxl",
        "tiny-inpaint",
        "tiny-flux2",
        "tiny-zimage",
    }
