"""A shot on disk: the atomic PNG + sidecar writer, the sidecar reader, the resume check and the
scores' update (the A1111 recipe itself is tested in test_shoot_inputs.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from packshot.artifacts.provenance import COMPOSITE, GENERATED, read_source_type
from packshot.artifacts.shots import (
    Recipe,
    add_scores,
    read_parameters,
    read_sidecar,
    recipe_from_parameters,
    sidecar_path,
    write_shot,
    written_shot,
)
from packshot.shoot.plan import PlannedShot

PLANNED = PlannedShot(
    0,
    "on a table",
    "studio",
    "sks teapot on a table",
    "blurry",
    42,
    "1:1",
    32,
    32,
    "000-studio-seed42",
)
RECIPE = Recipe("sks teapot on a table", "blurry", 2, "Euler", 7.0, 42, 32, 32, "tiny")


def _write(folder: Path) -> Path:
    png = folder / f"{PLANNED.stem}.png"
    write_shot(
        Image.new("RGB", (32, 32), "red"), png, RECIPE, {"preset": "studio"}, source_type=GENERATED
    )
    return png


def test_png_then_sidecar_with_nothing_left_over(tmp_path: Path) -> None:
    png = _write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000-studio-seed42.json",
        "000-studio-seed42.png",
    ]
    assert recipe_from_parameters(read_parameters(png) or "") == RECIPE
    sidecar = read_sidecar(png)
    assert sidecar is not None and sidecar["seed"] == 42 and sidecar["preset"] == "studio"
    assert sidecar["parameters"] == RECIPE.to_parameters()
    assert sidecar_path(png).read_text(encoding="utf-8").endswith("}\n")


def test_resume_keeps_only_a_whole_shot_written_as_planned(tmp_path: Path) -> None:
    png = _write(tmp_path)
    assert written_shot(png, PLANNED) == read_sidecar(png)
    assert written_shot(png, replace(PLANNED, seed=43)) is None
    assert written_shot(png, replace(PLANNED, prompt="a teapot")) is None
    assert written_shot(png, replace(PLANNED, width=64)) is None
    sidecar_path(png).write_text('{"seed": 4', encoding="utf-8")  # cut off while writing
    assert written_shot(png, PLANNED) is None
    sidecar_path(png).unlink()
    assert written_shot(png, PLANNED) is None and read_sidecar(png) is None


def test_scores_go_into_the_sidecar(tmp_path: Path) -> None:
    png = _write(tmp_path)
    scores = {"dino": 0.7, "clip_i": 0.8, "clip_t": 0.2, "present": True, "flags": []}
    add_scores(png, scores)
    data = json.loads(sidecar_path(png).read_text(encoding="utf-8"))
    assert data["scores"] == scores and data["seed"] == 42
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def exiftool_source_type(path: Path) -> str:
    """The IPTC digital source type `exiftool` (a real XMP client) reads from `path`."""
    if shutil.which("exiftool") is None:
        pytest.fail("exiftool is missing: apt-get install libimage-exiftool-perl (.ci/run does)")
    done = subprocess.run(
        ["exiftool", "-j", "-XMP-iptcExt:DigitalSourceType", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(done.stdout)[0]["DigitalSourceType"])


@pytest.mark.parametrize("source_type", [GENERATED, COMPOSITE])
def test_every_shot_is_labelled_as_made_with_ai_and_exiftool_reads_it(
    tmp_path: Path, source_type: str
) -> None:
    png = tmp_path / "shot.png"
    write_shot(Image.new("RGB", (32, 32), "red"), png, RECIPE, {}, source_type=source_type)  # type: ignore[arg-type]
    expected = f"http://cv.iptc.org/newscodes/digitalsourcetype/{source_type}"
    assert exiftool_source_type(png) == expected
    assert read_source_type(png) == source_type
    # The A1111 recipe and the sidecar stay as they were.
    assert recipe_from_parameters(read_parameters(png) or "") == RECIPE
    assert (read_sidecar(png) or {})["digital_source_type"] == source_type
