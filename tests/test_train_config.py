"""The training config and its presets: typed, validated, every preset value sourced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packshot.errors import UsageError
from packshot.models.families import trainable_families
from packshot.train import PRESET_NAMES, TrainConfig, load_presets
from packshot.train.config import PRESETS_FILE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_preset_value_says_where_it_comes_from() -> None:
    data = json.loads(PRESETS_FILE.read_text())
    assert data["_comment"]
    for family in trainable_families():
        assert set(data[family]) == set(PRESET_NAMES)
        for name, preset in data[family].items():
            values = {k for k in preset if not k.startswith("_")}
            comments = preset["_comment"]
            assert set(comments) == values, f"{family}/{name}: uncommented {values - set(comments)}"
            assert all(isinstance(c, str) and len(c) > 10 for c in comments.values())
            assert values <= set(TrainConfig.model_fields), f"{family}/{name}: unknown fields"


@pytest.mark.parametrize("family", trainable_families())
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_presets_make_valid_configs(family: str, preset: str) -> None:
    config = TrainConfig.from_preset(family, preset, model="m", class_word="headphones")  # type: ignore[arg-type]
    values = load_presets(family)[preset]
    assert {k: getattr(config, k) for k in values} == values
    assert config.preset == preset
    assert config.resolution == (512 if family == "sd15" else 1024)


def test_options_override_a_preset_and_none_keeps_it() -> None:
    config = TrainConfig.from_preset(
        "sd15", "quick", model="m", class_word="mug", max_train_steps=42, rank=None
    )
    assert config.max_train_steps == 42
    assert config.rank == load_presets("sd15")["quick"]["rank"]
    assert config.instance_prompt == "a photo of sks mug"


def test_bad_values_name_the_field() -> None:
    with pytest.raises(UsageError, match="resolution"):
        TrainConfig.from_preset("sd15", "quick", model="m", class_word="mug", resolution=500)
    with pytest.raises(UsageError, match="background_weight"):
        TrainConfig.from_preset("sd15", "quick", model="m", class_word="mug", background_weight=2)
    with pytest.raises(UsageError, match="sd15-inpaint"):
        load_presets("sd15-inpaint")


def test_config_round_trips_through_json() -> None:
    config = TrainConfig(model="tiny", class_word="mug", validation_seeds=[3, 4])
    assert TrainConfig.model_validate_json(config.model_dump_json()) == config


def test_inpainting_models_are_refused(tmp_path, cache_dir, training_set) -> None:  # type: ignore[no-untyped-def]
    from packshot.train import train

    config = TrainConfig(model="tiny-inpaint", class_word="backpack", resolution=64)
    with pytest.raises(UsageError, match="Train on the plain base model"):
        train(config, training_set, tmp_path / "out", cache_dir=cache_dir)
    assert not (tmp_path / "out").exists()


def test_push_to_hub_uploads_only_the_model_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from packshot.artifacts.product_model import ProductModel
    from packshot.errors import PackshotError
    from packshot.train.exports import EXPORT_FORMATS
    from packshot.train.hub import files_to_push, push_to_hub

    model = tmp_path / "model"
    (model / "samples").mkdir(parents=True)
    (model / "checkpoints" / "step-000010").mkdir(parents=True)
    (model / "training-set").mkdir()
    exports = {export.name: export.file_name for export in EXPORT_FORMATS.values()}
    for name in (
        *exports.values(),
        "README.md",
        "samples/step-000010-seed0.png",
        "checkpoints/step-000010/state.pt",
        "training-set/photo-000.png",
    ):
        (model / name).write_bytes(b"x")
    samples = ["samples/step-000010-seed0.png", "../outside.png"]  # never outside the folder
    (tmp_path / "outside.png").write_bytes(b"x")
    ProductModel(model, "tiny", "sks", "teapot", exports=exports, samples=samples).save()
    assert files_to_push(ProductModel.load(model)) == [
        "README.md",
        "packshot.json",
        "pytorch_lora_weights.safetensors",
        "pytorch_lora_weights_comfyui.safetensors",
        "pytorch_lora_weights_kohya.safetensors",
        "samples/step-000010-seed0.png",
    ]
    with pytest.raises(UsageError, match="OWNER/NAME"):
        push_to_hub(model, "no-slash")
    with pytest.raises(UsageError, match="not a packshot model"):
        push_to_hub(tmp_path, "me/model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PackshotError, match="hf upload me/model"):
        push_to_hub(model, "me/model")
