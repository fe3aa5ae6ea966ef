"""Preparing the training set: crops centred on the product, masks, captions, the manifest."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import photo_corpus as photos
from packshot.errors import ModelNotFoundError, PhotoSetError, UsageError
from packshot.intake import (
    HFCaptioner,
    NormalisedPhoto,
    TrainingSet,
    check_files,
    check_photos,
    load_photo,
    load_training_set,
    prepare_training_set,
)
from packshot.intake.captions import combine_caption
from packshot.testing.captioner import WORDS, build_tiny_captioner


def _photo(image: Image.Image, name: str = "photo.jpg") -> NormalisedPhoto:
    return load_photo(photos.encode(image, "JPEG", quality=92), name)


def _centroid(mask: Image.Image) -> tuple[float, float]:
    ys, xs = np.nonzero(np.asarray(mask) >= 128)
    return float(xs.mean()), float(ys.mean())


@pytest.fixture(scope="module")
def tiny_captioner(tmp_path_factory: pytest.TempPathFactory) -> HFCaptioner:
    folder = build_tiny_captioner(tmp_path_factory.mktemp("captioner") / "tiny-blip")
    return HFCaptioner(folder, max_new_tokens=6)


def test_crop_is_centred_on_an_off_centre_product(tmp_path: Path) -> None:
    # A 1200×600 photo with the bag's middle at x = 900: a centre crop would cut it in half.
    image = photos.render_product((1200, 600), centre=(0.75, 0.5), scale=0.6, background="white")
    training_set = prepare_training_set(
        [_photo(image)], tmp_path / "set", resolution=256, token="sks", class_word="bag"
    )
    (item,) = training_set.items
    x0, y0, x1, y1 = item.crop_box
    assert (y0, y1, x1 - x0) == (0, 600, 600), "the largest square"
    assert abs(x0 - 600) <= 15, f"centred on the bag at x = 900, got {item.crop_box}"
    assert item.mask_source == "estimate" and not item.upscaled
    with (
        Image.open(tmp_path / "set" / item.file) as crop,
        Image.open(tmp_path / "set" / item.mask_file) as mask,
    ):
        assert crop.size == mask.size == (256, 256)
        assert crop.mode == "RGB" and mask.mode == "L"
        cx, cy = _centroid(mask)
    assert abs(cx - 128) < 16 and abs(cy - 128) < 20, (cx, cy)


def test_crop_stays_inside_the_photo_near_its_edge(tmp_path: Path) -> None:
    image = photos.render_product((1200, 600), centre=(0.15, 0.5), scale=0.5, background="beige")
    training_set = prepare_training_set(
        [_photo(image)], tmp_path / "set", resolution=128, token="sks", class_word="bag"
    )
    assert training_set.items[0].crop_box == [0, 0, 600, 600]


def test_mask_comes_from_alpha(tmp_path: Path) -> None:
    image, alpha = photos.product_with_mask((600, 400), box=(350, 100, 550, 300))
    photo = load_photo(photos.rgba_png(image, alpha), "cut-out.png")
    training_set = prepare_training_set(
        [photo], tmp_path / "set", resolution=200, token="sks", class_word="ball"
    )
    (item,) = training_set.items
    assert item.mask_source == "alpha"
    assert item.crop_box == [200, 0, 600, 400], "as far right as the photo allows"
    expected = alpha.crop((200, 0, 600, 400)).resize((200, 200), Image.Resampling.BILINEAR)
    with Image.open(tmp_path / "set" / item.mask_file) as mask:
        difference = np.abs(np.asarray(mask, np.int16) - np.asarray(expected, np.int16))
    assert difference.mean() < 2
    with Image.open(tmp_path / "set" / item.file) as crop:
        assert crop.getpixel((5, 5)) == (255, 255, 255), "transparent areas are the matte"
        assert np.abs(np.subtract(crop.getpixel((125, 100)), (20, 90, 200))).max() <= 3


def test_wide_product_is_padded_not_cut(tmp_path: Path) -> None:
    image, alpha = photos.product_with_mask((1600, 400), box=(150, 100, 1450, 300))
    photo = load_photo(photos.rgba_png(image, alpha), "wide.png")
    training_set = prepare_training_set(
        [photo], tmp_path / "set", resolution=256, token="sks", class_word="rug"
    )
    x0, y0, x1, y1 = training_set.items[0].crop_box
    assert x1 - x0 == y1 - y0 > 1300 and y0 < 0 < 400 < y1, "a square wider than the photo"
    with Image.open(tmp_path / "set" / training_set.items[0].mask_file) as mask:
        columns = np.flatnonzero(np.asarray(mask).max(axis=0) >= 128)
    assert columns.min() > 0 and columns.max() < 255, "the whole product is in the crop"


def test_training_set_from_a_report(tmp_path: Path, dreambench: Path) -> None:
    folder = tmp_path / "backpack"
    shutil.copytree(dreambench / "backpack", folder)
    shutil.copy(folder / "00.jpg", folder / "copy.jpg")  # an exact copy: trained on once
    report = check_photos(folder)
    progress: list = []
    out = tmp_path / "training-set"
    training_set = prepare_training_set(
        report, out, resolution=64, token="sks", class_word="backpack", progress=progress.append
    )
    sources = [item.source for item in training_set.items]
    assert sources == [f"0{i}.jpg" for i in range(6)]
    assert [e.stage for e in progress] == ["prepare"] * 6
    assert all(item.caption == "a photo of sks backpack" for item in training_set.items)
    for item in training_set.items:
        with Image.open(out / item.file) as crop, Image.open(out / item.mask_file) as mask:
            assert crop.size == mask.size == (64, 64)
        assert (out / item.file).with_suffix(".txt").read_text("utf-8") == item.caption + "\n"
        assert item.source_sha256 == report.photo(item.source).sha256
    assert sorted(p.name for p in folder.iterdir()) == sorted([*sources, "copy.jpg"])

    # The manifest carries the config and loads back equal.
    loaded = load_training_set(out)
    assert loaded == training_set and loaded.directory == out
    assert loaded.config == report.config
    assert loaded.instance_prompt == "a photo of sks backpack"
    images = list(loaded.images())
    assert len(images) == 6 and images[0][2] == "a photo of sks backpack"


def test_tiny_captioner_through_transformers(tmp_path: Path, tiny_captioner: HFCaptioner) -> None:
    assert type(tiny_captioner.model).__name__ == "BlipForConditionalGeneration"
    images = [photos.sample_photo(seed=i) for i in range(3)]
    training_set = prepare_training_set(
        [_photo(image, f"{i}.jpg") for i, image in enumerate(images)],
        tmp_path / "set",
        resolution=64,
        token="sks",
        class_word="bag",
        captioner=tiny_captioner,
    )
    assert training_set.captioner == tiny_captioner.name
    for item in training_set.items:
        head, _, generated = item.caption.partition(", ")
        assert head == "a photo of sks bag", "the token and class word always come first"
        assert generated and set(generated.split()) <= set(WORDS), item.caption
    assert load_training_set(tmp_path / "set").items == training_set.items


def test_combine_caption() -> None:
    assert combine_caption("sks", "bag", "") == "a photo of sks bag"
    assert combine_caption("sks", "bag", "  a red bag on a table. ") == (
        "a photo of sks bag, a red bag on a table"
    )
    assert combine_caption("sks", "bag", "arafed picture of a bag") == "a photo of sks bag, a bag"


def test_captioner_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        HFCaptioner(tmp_path / "no-such-model")


def test_rerun_replaces_an_earlier_training_set(tmp_path: Path) -> None:
    out = tmp_path / "set"
    two = [_photo(photos.sample_photo(seed=i), f"{i}.jpg") for i in range(2)]
    prepare_training_set(two, out, resolution=64, token="sks", class_word="bag")
    prepare_training_set(two[:1], out, resolution=64, token="sks", class_word="bag")
    assert sorted(p.name for p in out.iterdir()) == [
        "packshot.json",
        "photo-000.mask.png",
        "photo-000.png",
        "photo-000.txt",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["set"], "no staging folder left behind"


def test_refuses_to_write_into_the_photos_or_over_other_files(
    tmp_path: Path, dreambench: Path
) -> None:
    folder = tmp_path / "photos"
    shutil.copytree(dreambench / "backpack", folder)
    report = check_photos(folder)
    with pytest.raises(UsageError, match="photos' folder"):
        prepare_training_set(report, folder / "set", resolution=64, token="sks", class_word="bag")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        prepare_training_set(report, other, resolution=64, token="sks", class_word="bag")
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resolution": 100}, "resolution"),
        ({"resolution": 32}, "resolution"),
        ({"token": "two words"}, "token"),
        ({"class_word": " "}, "class_word"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict, match: str) -> None:
    arguments = {"resolution": 64, "token": "sks", "class_word": "bag"} | kwargs
    with pytest.raises(UsageError, match=match):
        prepare_training_set([_photo(photos.sample_photo())], tmp_path / "set", **arguments)


def test_sets_that_cannot_be_prepared(tmp_path: Path, dreambench: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("00.jpg", "01.jpg"):
        shutil.copy(dreambench / "backpack" / name, folder / name)
    with pytest.raises(PhotoSetError, match="Not enough photos"):
        prepare_training_set(
            check_photos(folder), tmp_path / "a", resolution=64, token="sks", class_word="bag"
        )
    uploads = [(p.name, p.read_bytes()) for p in sorted((dreambench / "backpack").glob("*.jpg"))]
    with pytest.raises(UsageError, match="uploads"):
        prepare_training_set(
            check_files(uploads), tmp_path / "b", resolution=64, token="sks", class_word="bag"
        )
    full = tmp_path / "backpack"
    shutil.copytree(dreambench / "backpack", full)
    report = check_photos(full)
    buffer = io.BytesIO()
    Image.new("RGB", (400, 400), "red").save(buffer, "JPEG")
    (full / "03.jpg").write_bytes(buffer.getvalue())  # changed after the check
    with pytest.raises(PhotoSetError, match="03.jpg .* changed since it was checked"):
        prepare_training_set(report, tmp_path / "c", resolution=64, token="sks", class_word="bag")
    assert not (tmp_path / "c").exists()
    with pytest.raises(PhotoSetError, match="No photos"):
        prepare_training_set([], tmp_path / "d", resolution=64, token="sks", class_word="bag")


def test_training_set_load_errors(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="No training set"):
        TrainingSet.load(tmp_path)
    (tmp_path / "packshot.json").write_text('{"kind": "packshot.model"}')
    with pytest.raises(Exception, match="not a packshot training-set manifest"):
        TrainingSet.load(tmp_path)
