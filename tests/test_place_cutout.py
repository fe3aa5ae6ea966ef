"""Cutting the product out: mask precedence, the ONNX model path, GrabCut, bad masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from packshot.errors import ModelNotFoundError, PhotoError, UsageError
from packshot.intake.config import IntakeConfig
from packshot.intake.decode import NormalisedPhoto, load_photo
from packshot.place import matting
from packshot.place.cutout import CUTOUT_MODEL_ENV, cut_out, grabcut_mask
from placing_support import build_matting_onnx, iou, product_photo

SMALL = IntakeConfig(min_side=64)


def _photo(tmp_path: Path, **kwargs: object) -> tuple[NormalisedPhoto, np.ndarray]:
    image, mask = product_photo(**kwargs)  # type: ignore[arg-type]
    path = tmp_path / "photo.png"
    image.save(path)
    return load_photo(path, config=SMALL), mask


def _mask_file(tmp_path: Path, mask: np.ndarray, name: str = "mask.png") -> Path:
    path = tmp_path / name
    Image.fromarray((mask * 255).astype(np.uint8), "L").save(path)
    return path


@pytest.fixture()
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(CUTOUT_MODEL_ENV, raising=False)


def test_grabcut_finds_a_known_object(tmp_path: Path) -> None:
    photo, truth = _photo(tmp_path)
    mask = grabcut_mask(photo.image)
    assert mask is not None and mask.shape == truth.shape
    assert iou(mask, truth) > 0.9


def test_grabcut_on_another_shape_and_place(tmp_path: Path) -> None:
    photo, truth = _photo(tmp_path, size=(400, 300), box=(40, 150, 200, 280), seed=3)
    mask = grabcut_mask(photo.image)
    assert mask is not None and iou(mask, truth) > 0.9


def test_auto_falls_back_to_grabcut_without_a_model(
    tmp_path: Path, cache_dir: Path, no_downloads: None
) -> None:
    photo, truth = _photo(tmp_path)
    cutout = cut_out(photo, cache_dir=tmp_path / "empty-cache")
    assert cutout.source == "grabcut"
    assert iou(cutout.mask, truth) > 0.9
    assert any("GrabCut" in w for w in cutout.warnings)


def test_onnx_model_from_a_local_file(tmp_path: Path, no_downloads: None) -> None:
    photo, truth = _photo(tmp_path)
    model = build_matting_onnx(tmp_path / "models" / "u2netp-test.onnx", size=64)
    cutout = cut_out(photo, model=str(model), cache_dir=tmp_path)
    assert cutout.source == "model"
    assert cutout.model == {"ref": str(model), "path": str(model.resolve()), "family": "u2net"}
    assert iou(cutout.mask, truth) > 0.9


def test_onnx_model_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_downloads: None
) -> None:
    photo, truth = _photo(tmp_path)
    model = build_matting_onnx(tmp_path / "u2net-env.onnx", size=32)
    monkeypatch.setenv(CUTOUT_MODEL_ENV, str(model))
    cutout = cut_out(photo, cache_dir=tmp_path)  # "auto": the configured model
    assert cutout.source == "model" and iou(cutout.mask, truth) > 0.85


def test_model_input_is_normalised_by_family(tmp_path: Path, no_downloads: None) -> None:
    """rembg's normalisation: pixels over their maximum, then the family's mean and std
    (U2-Net and BiRefNet: ImageNet's; ISNet: mean 0.5, std 1), at the file's input size."""
    uniform = Image.new("RGB", (300, 200), (128, 64, 255))
    scaled = np.array([128, 64, 255], np.float32) / 255.0
    expected = {
        "u2net": (scaled - matting.IMAGENET_MEAN) / matting.IMAGENET_STD,
        "isnet": scaled - 0.5,
    }
    for name, family in (("u2net-a.onnx", "u2net"), ("isnet-a.onnx", "isnet")):
        model = build_matting_onnx(tmp_path / name, size=48)
        session = matting.load_matting_model(str(model), tmp_path)
        assert session.family.name == family and session.size == (48, 48)
        batch = session.preprocess(uniform)
        assert batch.shape == (1, 3, 48, 48) and batch.dtype == np.float32
        assert np.allclose(batch[0, :, 10, 10], expected[family], atol=1e-5)


def test_birefnet_logits_go_through_a_sigmoid(tmp_path: Path, no_downloads: None) -> None:
    photo, truth = _photo(tmp_path)
    model = build_matting_onnx(tmp_path / "birefnet-tiny.onnx", size=64, logits=True)
    session = matting.load_matting_model(str(model), tmp_path)
    assert session.family.name == "birefnet"
    soft = session.predict(photo.image)
    assert soft.shape == truth.shape and soft.min() >= 0.0 and soft.max() <= 1.0
    assert iou(soft >= 0.5, truth) > 0.9


def test_named_model_missing_offline_is_a_clear_error(tmp_path: Path, no_downloads: None) -> None:
    photo, _ = _photo(tmp_path)
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        cut_out(photo, model="isnet-general-use", cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="not found"):
        cut_out(photo, model=str(tmp_path / "nope.onnx"), cache_dir=tmp_path)
    with pytest.raises(UsageError, match="background-removal model"):
        cut_out(photo, model="no-such-model", cache_dir=tmp_path)


def test_a_broken_onnx_file_is_a_clear_error(tmp_path: Path, no_downloads: None) -> None:
    from packshot.errors import ModelLoadError

    photo, _ = _photo(tmp_path)
    broken = tmp_path / "u2net-broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="ONNX"):
        cut_out(photo, model=str(broken), cache_dir=tmp_path)


def test_a_cached_download_is_found_by_name(tmp_path: Path, no_downloads: None) -> None:
    """A known name resolves to the cache once downloaded (here: put where a download goes)."""
    photo, truth = _photo(tmp_path)
    file_name, _ = matting.KNOWN_MODELS["u2net"]
    build_matting_onnx(tmp_path / "cutout-models" / file_name, size=64)
    cutout = cut_out(photo, model="u2net", cache_dir=tmp_path)
    assert cutout.model is not None and cutout.model["family"] == "u2net"
    assert iou(cutout.mask, truth) > 0.9


def test_user_mask_wins_over_alpha_and_model(tmp_path: Path, no_downloads: None) -> None:
    image, truth = product_photo()
    # A transparent PNG whose alpha marks a different (left) region ...
    alpha = np.zeros_like(truth)
    alpha[20:120, 10:90] = 1
    rgba = image.convert("RGB")
    rgba.putalpha(Image.fromarray(alpha * 255, "L"))
    rgba.save(tmp_path / "photo.png")
    photo = load_photo(tmp_path / "photo.png", config=SMALL)
    model = build_matting_onnx(tmp_path / "u2net-x.onnx")
    # ... the merchant's mask (a box on the right) beats it and the model.
    mine = np.zeros_like(truth)
    mine[50:150, 200:300] = 1
    cutout = cut_out(
        photo, mask_path=_mask_file(tmp_path, mine), model=str(model), cache_dir=tmp_path
    )
    assert cutout.source == "mask" and np.array_equal(cutout.mask, mine)
    # Without a mask file, the alpha beats the model.
    cutout = cut_out(photo, model=str(model), cache_dir=tmp_path)
    assert cutout.source == "alpha" and np.array_equal(cutout.mask, alpha)


@pytest.mark.parametrize(
    ("fill", "message"),
    [(0, "is empty"), (1, "no background left")],
    ids=["empty", "full"],
)
def test_empty_or_full_mask_is_refused(tmp_path: Path, fill: int, message: str) -> None:
    photo, truth = _photo(tmp_path)
    path = _mask_file(tmp_path, np.full_like(truth, fill))
    with pytest.raises(UsageError, match=message):
        cut_out(photo, mask_path=path, cache_dir=tmp_path)


def test_mask_of_another_size_is_refused(tmp_path: Path) -> None:
    photo, truth = _photo(tmp_path)
    path = _mask_file(tmp_path, truth[:100, :100])
    with pytest.raises(UsageError, match=r"100x100 but the photo is 320x240"):
        cut_out(photo, mask_path=path, cache_dir=tmp_path)
    with pytest.raises(UsageError, match="not found"):
        cut_out(photo, mask_path=tmp_path / "missing.png", cache_dir=tmp_path)


def test_photo_without_a_product_is_a_clear_error(tmp_path: Path, no_downloads: None) -> None:
    flat = np.full((240, 320, 3), 200, np.uint8)
    Image.fromarray(flat).save(tmp_path / "wall.png")
    photo = load_photo(tmp_path / "wall.png", config=SMALL)
    with pytest.raises(PhotoError, match="No product found in wall.png") as caught:
        cut_out(photo, model="grabcut", cache_dir=tmp_path)
    assert caught.value.reason == "no_product"
