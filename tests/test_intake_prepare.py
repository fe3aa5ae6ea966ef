"""Preparing the training set: crops centred on the product, masks, captions, the manifest."""

from __future__ import annotations

import io
import json
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
from packshot.models.sizes import aspect_buckets
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


def test_square_crop_is_centred_on_an_off_centre_product(tmp_path: Path) -> None:
    # A 1200×600 photo with the bag's middle at x = 900: a centre crop would cut it in half.
    image = photos.render_product((1200, 600), centre=(0.75, 0.5), scale=0.6, background="white")
    training_set = prepare_training_set(
        [_photo(image)],
        tmp_path / "set",
        resolution=256,
        token="sks",
        class_word="bag",
        buckets=False,
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
        [_photo(image)],
        tmp_path / "set",
        resolution=128,
        token="sks",
        class_word="bag",
        buckets=False,
    )
    assert training_set.items[0].crop_box == [0, 0, 600, 600]


def test_mask_comes_from_alpha(tmp_path: Path) -> None:
    image, alpha = photos.product_with_mask((600, 400), box=(350, 100, 550, 300))
    photo = load_photo(photos.rgba_png(image, alpha), "cut-out.png")
    training_set = prepare_training_set(
        [photo], tmp_path / "set", resolution=200, token="sks", class_word="ball", buckets=False
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
        [photo], tmp_path / "set", resolution=256, token="sks", class_word="rug", buckets=False
    )
    x0, y0, x1, y1 = training_set.items[0].crop_box
    assert x1 - x0 == y1 - y0 > 1300 and y0 < 0 < 400 < y1, "a square wider than the photo"
    with Image.open(tmp_path / "set" / training_set.items[0].mask_file) as mask:
        columns = np.flatnonzero(np.asarray(mask).max(axis=0) >= 128)
    assert columns.min() > 0 and columns.max() < 255, "the whole product is in the crop"


def test_landscape_and_portrait_photos_keep_their_aspect(tmp_path: Path) -> None:
    # A 3:2 landscape photo with the bag right of centre, a 2:3 portrait with it above: each
    # goes to the bucket nearest its aspect (256 px in 16s: 304x208, 208x304), the box as
    # large as the photo allows and pushed towards the bag.
    wide = photos.render_product((1200, 800), centre=(0.6, 0.5), scale=0.5, background="white")
    tall = photos.render_product((800, 1200), centre=(0.5, 0.4), scale=0.5, background="beige")
    out = tmp_path / "set"
    training_set = prepare_training_set(
        [_photo(wide, "wide.jpg"), _photo(tall, "tall.jpg")],
        out,
        resolution=256,
        token="sks",
        class_word="bag",
    )
    assert training_set.buckets and training_set.size_multiple == 16
    landscape, portrait = training_set.items
    assert (landscape.size, portrait.size) == ([304, 208], [208, 304])
    assert (landscape.photo_size, portrait.photo_size) == ([1200, 800], [800, 1200])
    assert landscape.crop_box[1:] == [0, 1200, 800], "full height, as far right as it goes"
    assert portrait.crop_box[:3] == [0, 0, 800], "full width, as high as it goes"
    for item in (landscape, portrait):
        x0, y0, x1, y1 = item.crop_box
        assert (x1 - x0) / (y1 - y0) == pytest.approx(item.size[0] / item.size[1], rel=0.01)
        with Image.open(out / item.file) as crop, Image.open(out / item.mask_file) as mask:
            assert crop.size == mask.size == tuple(item.size)
            product = np.asarray(mask) >= 128
        rows, columns = np.flatnonzero(product.any(axis=1)), np.flatnonzero(product.any(axis=0))
        assert product.mean() > 0.05, "the bag is in the crop"
        assert rows.min() > 0 and columns.min() > 0, "and not cut by its edges"
        assert rows.max() < item.size[1] - 1 and columns.max() < item.size[0] - 1
    # Saved and loaded: the sizes are the manifest's.
    assert load_training_set(out).items == training_set.items


def test_wide_product_in_a_panorama_goes_to_the_widest_bucket_padded(tmp_path: Path) -> None:
    image, alpha = photos.product_with_mask((1600, 400), box=(150, 100, 1450, 300))
    photo = load_photo(photos.rgba_png(image, alpha), "wide.png")
    training_set = prepare_training_set(
        [photo], tmp_path / "set", resolution=256, token="sks", class_word="rug"
    )
    (item,) = training_set.items
    widest = max(aspect_buckets(256, 16), key=lambda size: size[0] / size[1])
    assert tuple(item.size) == widest and widest[0] == 2 * widest[1], "4:1 goes to 2:1"
    x0, y0, x1, y1 = item.crop_box
    assert x1 - x0 > 1300 and y0 < 0 < 400 < y1, "the box outgrows the photo's height"
    with Image.open(tmp_path / "set" / item.mask_file) as mask:
        columns = np.flatnonzero(np.asarray(mask).max(axis=0) >= 128)
    assert columns.min() > 0 and columns.max() < widest[0] - 1, "the whole product is in"


def test_buckets_follow_the_size_multiple_and_a_square_set_loads(tmp_path: Path) -> None:
    # SD's multiple (8) at 96 px: a 16:9 photo gets 128x72 (FLUX.2's 16 would make it 128x64).
    banner = photos.render_product((1280, 720), scale=0.5, background="white")
    out = tmp_path / "set"
    prepared = prepare_training_set(
        [_photo(banner)], out, resolution=96, token="sks", class_word="bag", size_multiple=8
    )
    assert prepared.items[0].size == [128, 72] and prepared.size_multiple == 8
    # By default, a multiple every family able to train at the resolution takes: 16 at 96 px,
    # 8 at 200 (FLUX.2's 16 doesn't divide it); one that doesn't divide it is refused.
    arguments = {"token": "sks", "class_word": "bag"}
    for resolution, multiple in ((96, 16), (200, 8)):
        folder = tmp_path / f"at-{resolution}"
        made = prepare_training_set([_photo(banner)], folder, resolution=resolution, **arguments)
        assert made.size_multiple == multiple
    with pytest.raises(UsageError, match="multiples of 16 px: use 192 or 208"):
        prepare_training_set(
            [_photo(banner)], tmp_path / "d", resolution=200, size_multiple=16, **arguments
        )

    # A manifest written before buckets (version 1): no sizes, all squares of its resolution.
    manifest = json.loads((out / "packshot.json").read_text())
    manifest.update(version=1)
    for key in ("buckets", "size_multiple"):
        del manifest[key]
    for item in manifest["items"]:
        del item["size"], item["photo_size"]
    (out / "packshot.json").write_text(json.dumps(manifest))
    old = load_training_set(out)
    assert (old.version, old.buckets, old.size_multiple) == (1, False, None)
    assert old.items[0].size == [96, 96] and old.items[0].photo_size is None


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
