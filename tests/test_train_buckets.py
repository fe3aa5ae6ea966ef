"""Aspect-ratio buckets: each family's bucket list, the batches drawn from it, SDXL's crop
conditioning, and tiny SD 1.5, SDXL and FLUX.2 runs on photos of mixed aspects at batch 2."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from packshot.artifacts.product_model import ProductModel
from packshot.errors import UsageError
from packshot.models.families import CropGeometry, get_family, trainable_families
from packshot.models.load import resolve_model
from packshot.models.sizes import aspect_buckets, check_bucket, nearest_bucket
from packshot.train import TrainConfig, train
from packshot.train import loop as train_loop
from packshot.train.data import crop_geometry, epoch_batches

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# What intake makes of `mixed_photos` at 96 px (photo_corpus.MIXED_FRAMES): two 2:3 portraits,
# two squares, a 3:2 landscape and a 16:9 banner (128x72 in SD's 8s, 128x64 in FLUX.2's 16s).
SD_BUCKETS = [
    {"width": 80, "height": 112, "photos": 2},
    {"width": 96, "height": 96, "photos": 2},
    {"width": 112, "height": 80, "photos": 1},
    {"width": 128, "height": 72, "photos": 1},
]
FLUX_BUCKETS = [*SD_BUCKETS[:3], {"width": 128, "height": 64, "photos": 1}]


def _config(model: str, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "model": model,
        "class_word": "backpack",
        "resolution": 96,
        "max_train_steps": 4,
        "train_batch_size": 2,
        "learning_rate": 1e-2,  # large, so that 4 steps move the LoRA visibly on a random model
        "checkpointing_steps": 0,
        "validation_inference_steps": 2,
        "validation_seeds": [0],
    }
    return TrainConfig(**{**values, **overrides})


# -- the bucket list -------------------------------------------------------------------------


@pytest.mark.parametrize("name", trainable_families())
def test_each_familys_buckets_are_in_its_multiple_and_within_the_area(name: str) -> None:
    family = get_family(name)
    for resolution in (family.resolution, 768, 96):
        buckets = aspect_buckets(resolution, family.size_multiple)
        assert (resolution, resolution) in buckets and len(set(buckets)) == len(buckets) >= 5
        for width, height in buckets:
            assert width % family.size_multiple == 0 and height % family.size_multiple == 0
            assert 0.8 * resolution**2 <= width * height <= resolution**2, (width, height)
            assert 0.5 <= width / height <= 2.0
            assert (height, width) in buckets, "every landscape bucket has its portrait twin"
            assert check_bucket((width, height), resolution, family.size_multiple) is None
    assert check_bucket((1032, 1024), 1024, 16) == "its sides are not multiples of 16 px"
    assert check_bucket((1088, 1024), 1024, 16) == "it holds more pixels than 1024x1024"
    assert check_bucket((1536, 640), 1024, 16) == "its aspect is beyond 1:2 to 2:1"


def test_sdxl_at_1024_gets_sdxls_own_buckets() -> None:
    landscape = [(1024, 1024), (1088, 960), (1152, 896), (1216, 832), (1344, 768), (1408, 704)]
    portrait = [(h, w) for w, h in reversed(landscape[1:])]
    assert list(aspect_buckets(1024, 8)) == portrait + landscape
    assert aspect_buckets(64, 8) == ((64, 64),), "no side below 64 px: the square alone"
    with pytest.raises(UsageError, match="multiple of 16"):
        aspect_buckets(200, 16)


def test_each_photo_goes_to_the_bucket_nearest_its_aspect() -> None:
    buckets = aspect_buckets(1024, 8)
    assert nearest_bucket(4000, 4000, buckets) == (1024, 1024)
    assert nearest_bucket(3000, 2000, buckets) == (1216, 832)  # 3:2 → 1.46
    assert nearest_bucket(2000, 3000, buckets) == (832, 1216)
    assert nearest_bucket(1920, 1080, buckets) == (1344, 768)  # 16:9 → 1.75
    assert nearest_bucket(4000, 1000, buckets) == (1408, 704)  # a panorama: the widest, 2:1
    # Nearest as a ratio: 1.45 is nearer 2:1 than 1:1 (1.38x against 1.45x), though nearer 1
    # as a difference.
    assert nearest_bucket(145, 100, [(64, 64), (128, 64)]) == (128, 64)
    assert nearest_bucket(100, 145, [(64, 64), (64, 128)]) == (64, 128)
    with pytest.raises(UsageError, match="no aspect"):
        nearest_bucket(0, 100, buckets)


def test_an_epoch_draws_every_photo_in_batches_of_one_bucket_from_the_seed_alone() -> None:
    buckets = {(80, 112): [0, 3], (96, 96): [1, 5], (112, 80): [4], (128, 64): [2]}
    bucket_of = {i: size for size, members in buckets.items() for i in members}
    batches = epoch_batches(buckets, 2, seed=7)
    assert len(batches) == 4 and all(len(batch) == 2 for batch in batches)
    assert all(len({bucket_of[int(i)] for i in batch}) == 1 for batch in batches)
    assert {int(i) for batch in batches for i in batch} == set(range(6))
    again = epoch_batches(buckets, 2, seed=7)  # a resumed run's plan: the same batches
    assert [b.tolist() for b in again] == [b.tolist() for b in batches]
    plans = {tuple(tuple(b.tolist()) for b in epoch_batches(buckets, 2, s)) for s in range(8)}
    assert len(plans) > 1, "each epoch draws its own order"

    # One bucket (a square training set): one permutation's batches in order, the last filled
    # from its start, as packshot drew them before buckets.
    order = torch.randperm(5, generator=torch.Generator().manual_seed(3)).tolist()
    single = epoch_batches({(64, 64): list(range(5))}, 2, seed=3)
    assert [b.tolist() for b in single] == [order[:2], order[2:4], [order[4], order[0]]]


def test_sdxl_time_ids_are_each_crops_own() -> None:
    # A 1280x720 photo: its 2:1 box [0, 80, 1280, 720] resized to 128x64 (a tenth).
    crop = crop_geometry((128, 64), (1280, 720), (0, 80, 1280, 720), flip=False)
    assert crop == CropGeometry((720, 1280), (8, 0), (64, 128))
    # A box 100 px from the left, 180 from the right: flipped, the left corner is the 180's.
    inner = (100, 0, 1100, 500)
    assert crop_geometry((128, 64), (1280, 720), inner, flip=False).crops_coords_top_left == (0, 13)
    assert crop_geometry((128, 64), (1280, 720), inner, flip=True).crops_coords_top_left == (0, 23)
    padded = crop_geometry((96, 96), (1600, 400), (0, -600, 1600, 1000), flip=False)
    assert padded.crops_coords_top_left == (0, 0), "padding cuts nothing away"
    old = crop_geometry((64, 64), None, None, flip=True)  # a square set from before buckets
    assert old == CropGeometry.uncropped(64, 64) == CropGeometry((64, 64), (0, 0), (64, 64))

    time_ids = get_family("sdxl").micro_conditioning([crop, old])
    assert time_ids.tolist() == [[720, 1280, 8, 0, 64, 128], [64, 64, 0, 0, 64, 64]]
    assert get_family("sd15").micro_conditioning([crop]) is None
    assert get_family("flux2-klein").micro_conditioning([crop]) is None


# -- training on photos of mixed aspects ---------------------------------------------------


@pytest.fixture(scope="module")
def sd15_mixed(
    cache_dir: Path, mixed_photos: Path, tmp_path_factory: pytest.TempPathFactory
) -> ProductModel:
    """Tiny SD 1.5 at 96 px, batch 2, on the photos themselves: intake crops them at SD's
    buckets inside the run."""
    out = tmp_path_factory.mktemp("sd15-mixed") / "model"
    return train(_config("tiny"), mixed_photos, out, cache_dir=cache_dir)


def _render(pipe: object, width: int, height: int) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]
    return pipe(  # type: ignore[operator]
        prompt="a photo of sks backpack",
        width=width,
        height=height,
        num_inference_steps=2,
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="np",
    ).images


def _lora_changes_a_non_square_image(model: ProductModel, alias: str, cache_dir: Path) -> None:
    import diffusers

    resolved = resolve_model(alias, cache_dir=cache_dir)
    pipeline = getattr(diffusers, resolved.family.pipeline_class_name("text2img"))
    bucket = model.buckets[-1]  # type: ignore[index]
    size = (bucket["width"], bucket["height"])
    base = _render(pipeline.from_pretrained(resolved.path), *size)
    tuned = pipeline.from_pretrained(resolved.path)
    tuned.load_lora_weights(model.model_dir)
    images = _render(tuned, *size)
    assert images.shape[1:3] == (size[1], size[0])
    assert np.abs(images - base).max() > 1e-3


def test_sd15_trains_on_mixed_aspects_at_batch_2(sd15_mixed: ProductModel, cache_dir: Path) -> None:
    model = sd15_mixed
    assert model.final_step == 4 and math.isfinite(model.final_loss)  # type: ignore[arg-type]
    assert model.buckets == SD_BUCKETS
    loaded = ProductModel.load(model.model_dir)
    assert loaded.buckets == SD_BUCKETS and loaded.config["buckets"] is True
    assert json.loads(model.metadata_path.read_text())["buckets"] == SD_BUCKETS

    # The crops it learnt, each at its bucket, in SD's multiple (8).
    manifest = json.loads((model.training_set_dir / "packshot.json").read_text())
    assert manifest["buckets"] is True and manifest["size_multiple"] == 8
    for item in manifest["items"]:
        with Image.open(model.training_set_dir / item["file"]) as crop:
            assert list(crop.size) == item["size"]

    # Samples at the square and at the bucket most photos trained at besides it.
    assert model.samples == [
        "samples/step-000004-seed0-80x112.png",
        "samples/step-000004-seed0.png",
    ]
    with Image.open(model.sample_paths[0]) as sample:
        assert sample.size == (80, 112)
    card = model.card_path.read_text()
    assert (
        "| aspect buckets | 80x112 (2 photos), 96x96 (2 photos), 112x80 (1 photo), "
        "128x72 (1 photo) |" in card
    )
    _lora_changes_a_non_square_image(model, "tiny", cache_dir)


def test_flux2_trains_on_mixed_aspects_at_batch_2(
    cache_dir: Path, mixed_training_set: Path, tmp_path: Path
) -> None:
    config = _config("tiny-flux2", snr_gamma=None, noise_offset=0.0)
    model = train(config, mixed_training_set, tmp_path / "model", cache_dir=cache_dir)
    assert model.final_step == 4 and math.isfinite(model.final_loss)  # type: ignore[arg-type]
    assert model.buckets == FLUX_BUCKETS
    assert (model.model_dir / "samples" / "step-000004-seed0-80x112.png").is_file()
    _lora_changes_a_non_square_image(model, "tiny-flux2", cache_dir)


def test_sdxl_trains_on_mixed_aspects_with_each_crops_time_ids(
    cache_dir: Path, mixed_training_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[object] = []

    def kept(*args: object, **kwargs: object) -> object:
        batch = make_batch(*args, **kwargs)
        batches.append(batch)
        return batch

    make_batch = train_loop.make_batch
    monkeypatch.setattr(train_loop, "make_batch", kept)
    config = _config(
        "tiny-sdxl",
        max_train_steps=2,
        with_prior_preservation=True,  # class images cut to each bucket, in each batch
        num_class_images=1,
        class_inference_steps=2,
        sample_at_end=False,
    )
    # Its class images in a cache of its own (test_train_sdxl counts the session's), the
    # session's tiny models in it.
    own_cache = tmp_path / "cache"
    own_cache.mkdir()
    (cache_dir / "models").mkdir(exist_ok=True)
    (own_cache / "models").symlink_to(cache_dir / "models", target_is_directory=True)
    model = train(config, mixed_training_set, tmp_path / "model", cache_dir=own_cache)
    assert model.final_step == 2 and model.buckets == FLUX_BUCKETS

    photos = {(767, 511), (815, 815), (720, 1280), (1280, 853), (853, 1280), (1280, 1280)}
    assert len(batches) == 3  # the probe's and two steps'
    for batch in batches:
        b = batch.latents.shape[0]  # type: ignore[attr-defined]
        h, w = (side * 8 for side in batch.latents.shape[-2:])  # type: ignore[attr-defined]
        rows = batch.time_ids.tolist()  # type: ignore[attr-defined]
        assert len(rows) == b and all(row[4:] == [h, w] for row in rows), "the bucket's size"
        instance, classes = rows[: batch.num_instance], rows[batch.num_instance :]  # type: ignore[attr-defined]
        assert all(tuple(row[:2]) in photos for row in instance), "each photo's own size"
        assert all(row[:2] == [96, 96] for row in classes), "class images: 96 px squares, cut"


def test_a_square_training_set_from_before_buckets_still_trains(
    cache_dir: Path, training_set: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old-set"
    shutil.copytree(training_set, old)
    manifest = json.loads((old / "packshot.json").read_text())
    manifest["version"] = 1
    for key in ("buckets", "size_multiple"):
        del manifest[key]
    for item in manifest["items"]:
        del item["size"], item["photo_size"]
    (old / "packshot.json").write_text(json.dumps(manifest))

    config = _config("tiny", resolution=64, max_train_steps=2, sample_at_end=False)
    model = train(config, old, tmp_path / "model", cache_dir=cache_dir)
    assert model.final_step == 2
    assert model.buckets == [{"width": 64, "height": 64, "photos": 6}]
    assert "| aspect buckets | 64x64 (6 photos) |" in model.card_path.read_text()


def test_a_set_that_does_not_fit_the_run_is_refused_before_training(
    sd15_mixed: ProductModel, mixed_training_set: Path, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match=r"128x72 px.*not multiples of 16.*--size-multiple 16"):
        train(_config("tiny-flux2"), sd15_mixed.training_set_dir, tmp_path / "a")
    with pytest.raises(UsageError, match=r"80x112 px.*buckets are off.*--no-buckets"):
        train(_config("tiny", buckets=False), mixed_training_set, tmp_path / "b")
    assert not any(tmp_path.iterdir()), "nothing is left behind"
