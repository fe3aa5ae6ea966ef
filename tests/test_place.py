"""`packshot place` end to end with the tiny inpainting model: CLI and API, the pixel guarantee
on real outputs, metadata and sidecars, judging, re-runs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from packshot.artifacts.provenance import COMPOSITE, read_source_type
from packshot.artifacts.shots import read_parameters, recipe_from_parameters
from packshot.cli import app
from packshot.errors import UsageError
from packshot.place import GUARANTEE_BAND_PX, PlaceRequest, compose, place
from packshot.shoot.sizes import size_for
from placing_support import erode_square, write_photo

runner = CliRunner()
TINY = {"model": "tiny-inpaint", "dino_model": "tiny", "clip_model": "tiny"}


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_photo(tmp_path_factory.mktemp("place-photo"))
    return path


def _request(photo: Path, **fields: object) -> PlaceRequest:
    values: dict[str, object] = {
        "descriptions": ["on a marble kitchen counter, soft morning light"],
        "count": 1,
        "seed": 11,
        "num_inference_steps": 2,
        "cutout_model": "grabcut",
        **TINY,
    }
    values.update(fields)
    return PlaceRequest(str(photo), **values)  # type: ignore[arg-type]


def test_api_end_to_end_with_the_guarantee(
    photo: Path, cache_dir: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    events = []
    out = tmp_path / "out"
    result = place(
        _request(photo, presets=["studio", "lifestyle", "flat-lay"], aspect="16:9"),
        out,
        progress=events.append,
        cache_dir=cache_dir,
    )
    assert [s.path.name for s in result.shots] == [
        "000-place-studio-seed11.png",
        "001-place-lifestyle-seed11.png",
        "002-place-flat-lay-seed11.png",
    ]
    assert result.cutout["source"] == "grabcut"
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    mask = np.asarray(Image.open(out / "product" / "mask.png")) > 127
    for shot in result.shots:
        image = np.asarray(Image.open(shot.path).convert("RGB"))
        assert (shot.width, shot.height) == size_for("16:9", 64) == image.shape[1::-1]
        # The guarantee, on the real output: the product as placed, byte for byte.
        composition = compose.get_composition(shot.composition)
        placed, _ = compose.place_product(
            pixels, mask.astype(np.uint8), (shot.width, shot.height), composition
        )
        inner = erode_square(placed.mask, GUARANTEE_BAND_PX)
        assert inner.sum() > 20
        assert np.array_equal(image[inner], placed.rgb[inner])
        # The sidecar records the box and scale; the PNG carries its recipe.
        sidecar = json.loads(shot.sidecar.read_text())
        x, y, w, h = placed.box
        assert sidecar["placement"] == {
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "scale": round(placed.scale, 6),
        }
        assert sidecar["mode"] == "place" and sidecar["guarantee_band_px"] == GUARANTEE_BAND_PX
        assert sidecar["cutout"]["source"] == "grabcut"
        assert read_source_type(shot.path) == COMPOSITE  # a real photo composited with AI
        assert set(sidecar["scores"]) >= {"dino", "clip_i", "clip_t", "present", "flags"}
        recipe = recipe_from_parameters(read_parameters(shot.path) or "")
        assert recipe.seed == 11 and recipe.num_inference_steps == 2
        assert recipe.prompt == sidecar["prompt"] and "marble kitchen counter" in recipe.prompt
        assert recipe.model == "tiny-inpaint" and (recipe.width, recipe.height) == (88, 64)
    summary = json.loads(result.summary_path.read_text())
    assert summary["kind"] == "packshot-place" and len(summary["images"]) == 3
    assert summary["cutout"]["box"] == {"x": 100, "y": 60, "width": 131, "height": 141}
    assert {p.name for p in (out / "reference").iterdir()} == {"photo.png", "on-white.png"}
    scores = json.loads((out / "scores.json").read_text())
    assert sorted(s["file"] for s in scores["shots"]) == [s.path.name for s in result.shots]
    assert (out / "contact-sheet.png").is_file() and (out / "report" / "index.html").is_file()
    assert [e.data.get("event") for e in events if e.stage == "place"][-1] == "done"
    # JSON-ready for a job runner, paths relative to its folder.
    data = json.loads(json.dumps(result.to_dict(relative_to=tmp_path)))
    assert (
        data["out_dir"] == "out" and data["shots"][0]["path"] == f"out/{result.shots[0].path.name}"
    )
    assert PlaceRequest.from_dict(json.loads((out / "place-request.json").read_text())).seed == 11


def test_keep_framing_keeps_the_photos_own_pixels(
    photo: Path, cache_dir: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    mask = np.zeros((240, 320), np.uint8)
    mask[50:210, 90:240] = 1  # the merchant's own mask: a box around the product
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask * 255).save(mask_path)
    result = place(
        _request(photo, keep_framing=True, mask=str(mask_path), judge=False),
        tmp_path / "out",
        cache_dir=cache_dir,
    )
    (shot,) = result.shots
    image = np.asarray(Image.open(shot.path).convert("RGB"))
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    assert image.shape == pixels.shape  # the photo's own frame and size
    inner = erode_square(mask, GUARANTEE_BAND_PX)
    assert np.array_equal(image[inner], pixels[inner])
    assert not np.array_equal(image[mask == 0], pixels[mask == 0])  # the background is new
    sidecar = json.loads(shot.sidecar.read_text())
    assert sidecar["placement"] == {"x": 90, "y": 50, "width": 150, "height": 160, "scale": 1.0}
    assert sidecar["cutout"]["source"] == "mask" and sidecar["keep_framing"] is True
    assert sidecar["scene_size"] == [72, 64]  # near 64² at the photo's 4:3, sides ≥ 64
    assert result.scores_path is None


def test_rerun_keeps_written_shots(
    photo: Path, cache_dir: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    out = tmp_path / "out"
    request = _request(photo, count=2, judge=False, seed=None)
    first = place(request, out, cache_dir=cache_dir)
    recorded_seed = json.loads((out / "place-request.json").read_text())["seed"]
    assert [s.seed for s in first.shots] == [recorded_seed, recorded_seed + 1]
    # A crash after the first shot: the second is gone; the same request finishes the job.
    first.shots[1].path.unlink()
    kept = first.shots[0].path.stat().st_mtime_ns
    again = place(request, out, cache_dir=cache_dir)
    assert [s.reused for s in again.shots] == [True, False]
    assert [s.seed for s in again.shots] == [s.seed for s in first.shots]
    assert first.shots[0].path.stat().st_mtime_ns == kept
    # Other settings into the same folder: refused, nothing touched.
    with pytest.raises(UsageError, match="other settings"):
        place(_request(photo, count=3, judge=False), out, cache_dir=cache_dir)


def test_cli_end_to_end(
    photo: Path, cache_dir: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    out = tmp_path / "cli"
    args = ["place", str(photo), "on a wooden table", "--out", str(out), "-n", "2"]
    args += ["--seed", "5", "--steps", "2", "--model", "tiny-inpaint", "--aspect", "4:5"]
    args += ["--cutout-model", "grabcut", "--preset", "studio", "--product", "teapot"]
    args += ["--dino-model", "tiny", "--clip-model", "tiny", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [i["file"] for i in summary["images"]] == [
        "000-place-studio-seed5.png",
        "001-place-studio-seed6.png",
    ]
    assert all(i["scores"] is not None for i in summary["images"])
    assert "teapot" in json.loads((out / "000-place-studio-seed5.json").read_text())["prompt"]
    assert Image.open(out / "000-place-studio-seed5.png").size == size_for("4:5", 64)
    # The same command again: nothing rendered, both kept; now delivered to Amazon's main
    # image (`--profile`, which a re-run may add), where pixel-true shots on white are taken.
    again = runner.invoke(app, [*args[:-1], "--profile", "amazon-main"])
    assert again.exit_code == 0, again.output
    text = " ".join(again.stdout.split())
    assert "2 shots in" in text and "(2 kept from before)" in text
    assert "amazon-main: 2 fixed" in text
    report = json.loads((out / "delivery" / "delivery.json").read_text())
    assert [i["origin"] for i in report["images"]] == ["pixel-true", "pixel-true"]


def test_with_a_product_model_lora(
    photo: Path, cache_dir: Path, product_model: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    request = _request(photo, product_model=str(product_model), model=None, count=1)
    result = place(request, tmp_path / "out", cache_dir=cache_dir)
    sidecar = json.loads(result.shots[0].sidecar.read_text())
    assert sidecar["inpaint_model"] == "tiny-inpaint"  # the product model's family's
    assert sidecar["product"]["token"] == "sks" and "sks backpack" in sidecar["prompt"]
    assert sidecar["lora_hashes"] and sidecar["lora_scale"] == 1.0
    # Judged against the model's own training crops.
    assert json.loads(result.scores_path.read_text())["reference_dir"].endswith("training-set")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"descriptions": []}, "Describe the scene"),
        ({"keep_framing": True, "aspect": "16:9"}, "drop --aspect"),
        ({"count": 0}, "`count` must be between"),
        ({"aspect": "2:1"}, "Unknown aspect ratio"),
        ({"presets": ["on-model"]}, "held or worn"),
        ({"seed": -1}, "`seed` must be between"),
    ],
)
def test_bad_requests_are_clear(photo: Path, tmp_path: Path, fields: dict, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        place(_request(photo, **fields), tmp_path / "out")


def test_product_too_large_for_a_scene_with_keep_framing(
    photo: Path, cache_dir: Path, tmp_path: Path
) -> None:
    mask = np.ones((240, 320), np.uint8)
    mask[:12, :] = 0  # the product fills 95% of the photo
    Image.fromarray(mask * 255).save(tmp_path / "mask.png")
    request = _request(photo, keep_framing=True, mask=str(tmp_path / "mask.png"))
    with pytest.raises(UsageError, match="no scene fits"):
        place(request, tmp_path / "out", cache_dir=cache_dir)


def test_cli_bad_input_is_one_line(tmp_path: Path, cache_dir: Path) -> None:
    Image.new("RGB", (200, 200), (180, 180, 180)).save(tmp_path / "wall.png")
    args = ["place", str(tmp_path / "wall.png"), "on a table", "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--cutout-model", "grabcut", "--model", "tiny-inpaint"])
    assert result.exit_code == 1
    assert "No product found in wall.png" in result.output
    assert "Traceback" not in result.output
    Image.new("L", (10, 10), 255).save(tmp_path / "small-mask.png")
    result = runner.invoke(
        app, [*args, "--mask", str(tmp_path / "small-mask.png"), "--model", "tiny-inpaint"]
    )
    assert result.exit_code == 2 and "10x10 but the photo is 200x200" in result.output
