"""The product model folder: save/load, a folder written by packshot 0.1.0, clear refusals.

`fixtures/product-model-0.1.0/packshot.json` was written by `packshot train` (tiny stand-in,
4 steps, the bundled backpack photos) before packshot.json had a schema version; it must
keep loading.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from packshot.artifacts.product_model import (
    DIFFUSERS_WEIGHT_NAME,
    METADATA_FILE,
    SCHEMA_VERSION,
    SHOOT_FILES,
    ProductModel,
    SourcePhoto,
    work_dir_for,
)
from packshot.errors import UsageError

FIXTURE = Path(__file__).parent / "fixtures" / "product-model-0.1.0"


def _folder(tmp_path: Path, meta: dict | str | None = None, lora: bool = True) -> Path:
    """A model folder holding `meta` (default: the 0.1.0 fixture's) and a LoRA file."""
    folder = tmp_path / "model"
    folder.mkdir()
    if meta is None:
        shutil.copy(FIXTURE / METADATA_FILE, folder / METADATA_FILE)
    else:
        text = meta if isinstance(meta, str) else json.dumps(meta)
        (folder / METADATA_FILE).write_text(text, encoding="utf-8")
    if lora:
        (folder / DIFFUSERS_WEIGHT_NAME).write_bytes(b"lora")
    return folder


def _fixture_meta() -> dict:
    return json.loads((FIXTURE / METADATA_FILE).read_text(encoding="utf-8"))


def test_a_folder_from_packshot_0_1_0_loads(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    model = ProductModel.load(folder)
    assert (model.base_model, model.family, model.base_model_source) == ("tiny", "sd15", "alias")
    assert (model.token, model.class_word, model.product) == ("sks", "backpack", "Trail backpack")
    assert model.instance_prompt == "a photo of sks backpack"
    assert model.config["max_train_steps"] == 4 and model.config["rank"] == 4
    assert len(model.photos) == 6 and model.photos[0] == SourcePhoto(
        "00.jpg", "b9dfa6429a1b77eaea5f4b7bba59c4ac8a77d024d3c1bd4f76bf587cbaa25972"
    )
    assert (model.device, model.dtype, model.optimizer) == ("cpu", "float32", "AdamW")
    assert model.final_step == 4 and model.final_loss == pytest.approx(1.2595, abs=1e-4)
    assert model.resumed_from is None and model.nan_rollbacks == 0
    assert model.timings["total_s"] == 5.978 and set(model.probe_loss) == {"start", "end"}
    assert model.samples[-1] == "samples/step-000004-seed1.png"
    assert (model.packshot_version, model.created_at) == ("0.1.0", "2026-12-04T14:57:39+00:00")
    assert model.extra == {}
    # Saved again, it says the same, with the schema version it was read as.
    expected = {"schema_version": SCHEMA_VERSION, **_fixture_meta()}
    assert model.to_json() == expected
    assert list(model.to_json()) == ["kind", "schema_version", *list(_fixture_meta())[1:]]


def test_save_load_round_trip_keeps_everything(tmp_path: Path) -> None:
    original = ProductModel.load(_folder(tmp_path))
    extra = {"delivered_to": {"shop": "demo"}}  # a key a later packshot may add
    original = replace(original, model_dir=tmp_path / "copy", extra=extra)
    path = original.save()
    assert path == tmp_path / "copy" / METADATA_FILE
    assert [p.name for p in path.parent.iterdir()] == [METADATA_FILE]  # no temporary file left
    (path.parent / DIFFUSERS_WEIGHT_NAME).write_bytes(b"lora")
    loaded = ProductModel.load(path.parent)
    assert loaded == original
    assert json.loads(path.read_text(encoding="utf-8"))["delivered_to"] == {"shop": "demo"}


def test_a_minimal_model_saves_and_loads(tmp_path: Path) -> None:
    """Only the base model, token and class word are needed to shoot (benchmarks write these)."""
    model = ProductModel(tmp_path, "tiny", "sks", "teapot", family="sd15")
    model.save()
    (tmp_path / DIFFUSERS_WEIGHT_NAME).write_bytes(b"lora")
    assert ProductModel.load(tmp_path) == model


def test_paths(tmp_path: Path) -> None:
    model = ProductModel.load(_folder(tmp_path))
    folder = tmp_path / "model"
    assert model.metadata_path == folder / "packshot.json"
    assert model.lora_path == folder / "pytorch_lora_weights.safetensors"
    assert model.export_paths["kohya"] == folder / "pytorch_lora_weights_kohya.safetensors"
    assert model.card_path == folder / "README.md"
    assert model.samples_dir == folder / "samples"
    assert model.sample_paths[0] == folder / "samples" / "step-000002-seed0.png"
    assert model.training_set_dir == folder / "training-set"
    assert model.checkpoints_dir == folder / "checkpoints"
    assert work_dir_for(folder) == tmp_path / "model.partial"
    assert SHOOT_FILES == ("packshot.json", "pytorch_lora_weights.safetensors")


def test_refuses_what_is_not_a_finished_model(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Model folder not found: .*nope. Pass the folder"):
        ProductModel.load(tmp_path / "nope")
    with pytest.raises(UsageError, match="is not a packshot model: it has no packshot.json"):
        ProductModel.load(tmp_path)
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(UsageError, match="diffusers base model: shoot with it alone with --base"):
        ProductModel.load(tmp_path)
    other = _folder(tmp_path, {"kind": "packshot-training-set"})
    with pytest.raises(UsageError, match="its packshot.json is not a trained model's"):
        ProductModel.load(other)


def test_refuses_a_damaged_packshot_json(tmp_path: Path) -> None:
    text = (FIXTURE / METADATA_FILE).read_text(encoding="utf-8")
    folder = _folder(tmp_path, text[: len(text) // 2])
    with pytest.raises(UsageError, match=r"Can't read .*packshot.json .*Train the model again"):
        ProductModel.load(folder)
    for key, value, message in [
        ("token", "", "has no `token`"),
        ("base_model", None, "has no `base_model`"),
        ("final_step", "four", "is damaged: `final_step` is 'four'"),
        ("photos", [{"file": "00.jpg"}], "is damaged: a photo is"),
        ("files", {"samples": "x.png"}, "is damaged: `files.samples`"),
        ("schema_version", "2", "has a bad `schema_version`"),
    ]:
        (folder / METADATA_FILE).write_text(json.dumps({**_fixture_meta(), key: value}))
        with pytest.raises(UsageError, match=message):
            ProductModel.load(folder)


def test_refuses_a_newer_schema_version(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {**_fixture_meta(), "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(UsageError, match="written by a newer packshot .*Upgrade packshot"):
        ProductModel.load(folder)


def test_refuses_a_folder_without_its_lora(tmp_path: Path) -> None:
    folder = _folder(tmp_path, lora=False)
    with pytest.raises(UsageError, match="has no pytorch_lora_weights.safetensors: the training"):
        ProductModel.load(folder)


def test_needs_no_torch() -> None:
    code = "import sys, packshot.artifacts.product_model; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_output_folder_and_its_interrupted_run(tmp_path: Path) -> None:
    from packshot.artifacts.folders import claim_work_dir

    out, work = tmp_path / "model", tmp_path / "model.partial"
    claim_work_dir(out, work, resume=False, force=False, what="training run")  # neither exists
    out.mkdir()
    claim_work_dir(out, work, resume=False, force=False, what="training run")  # empty: fine
    (out / "packshot.json").write_text("{}")
    with pytest.raises(UsageError, match="already exists"):
        claim_work_dir(out, work, resume=False, force=False, what="training run")
    work.mkdir()
    with pytest.raises(UsageError, match="interrupted training run is in"):
        claim_work_dir(tmp_path / "other", work, resume=False, force=False, what="training run")
    claim_work_dir(tmp_path / "other", work, resume=True, force=False, what="training run")
    assert work.is_dir()  # resumed: kept
    claim_work_dir(out, work, resume=False, force=True, what="training run")
    assert not work.exists() and out.is_dir()  # forced: the interrupted run is gone
