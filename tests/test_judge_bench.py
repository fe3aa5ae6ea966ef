"""The DreamBench runner end to end on tiny models: 2 subjects × 2 prompts × 2 images, on the
DreamBench folder the repo ships (examples/)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from packshot.errors import UsageError
from packshot.flows.dreambench import PAPER_SD, PROMPTS_FILE, read_spec, run_dreambench
from packshot.judge import JudgeConfig
from packshot.progress import ProgressEvent

TINY_JUDGES = JudgeConfig(dino_model="tiny", clip_model="tiny")
SUBJECTS = ["backpack", "backpack_dog"]


def test_read_spec(dreambench: Path) -> None:
    spec = read_spec(dreambench / "prompts_and_classes.txt")
    assert len(spec.classes) == 30 and spec.classes["colorful_sneaker"] == "sneaker"
    assert len(spec.object_prompts) == 25 and len(spec.live_prompts) == 25
    assert spec.prompts_for("teapot")[0] == "a {0} {1} in the jungle"
    assert spec.prompts_for("dog2")[10] == "a {0} {1} wearing a red hat"  # live subjects


def test_bad_bench_input(dreambench: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Unknown or missing DreamBench subject.*dog2"):
        run_dreambench(dreambench, ["backpack", "dog2"], 2, 2, 2, 64, "tiny", tmp_path)
    with pytest.raises(UsageError, match="DreamBench has 25 prompts"):
        run_dreambench(dreambench, ["backpack"], 26, 2, 2, 64, "tiny", tmp_path)
    with pytest.raises(UsageError, match="No DreamBench folder"):
        run_dreambench(tmp_path / "nowhere", None, 2, 2, 2, 64, "tiny", tmp_path)


@pytest.fixture
def two_subjects(dreambench: Path, tmp_path: Path) -> Path:
    """DreamBench with two subjects: its backpack, and the same photos as `backpack_dog` (its
    other backpack), with DreamBench's spec."""
    folder = tmp_path / "dreambench"
    folder.mkdir()
    shutil.copy(dreambench / PROMPTS_FILE, folder / PROMPTS_FILE)
    for subject in SUBJECTS:
        shutil.copytree(dreambench / "backpack", folder / subject)
    return folder


@pytest.mark.budget(20)  # two subjects trained, shot, placed and judged; then resumed
def test_dreambench_end_to_end_and_resume(
    two_subjects: Path, cache_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")  # the plots' dependency
    out = tmp_path / "bench"
    events: list[ProgressEvent] = []
    result = run_dreambench(
        two_subjects,
        SUBJECTS,
        prompts_per_subject=2,
        images_per_prompt=2,
        steps=2,
        resolution=64,
        model="tiny",
        out_dir=out,
        judge=TINY_JUDGES,
        num_inference_steps=2,
        place_model="tiny-inpaint",  # and the pixel-true row beside it
        cutout_model="grabcut",
        progress=events.append,
        cache_dir=cache_dir,
    )
    assert result.subjects_run == SUBJECTS and result.subjects_skipped == []
    assert events[-1].done == events[-1].total == 2

    # results.csv: one row per shot, with the DreamBench prompts (token and class filled in).
    with result.results_csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    placed = [r for r in rows if r["mode"] == "place"]
    rows = [r for r in rows if r["mode"] == "finetune"]
    assert len(rows) == 2 * 2 * 2
    assert {r["prompt"] for r in rows if r["subject"] == "backpack_dog"} == {
        "a sks backpack in the jungle",
        "a sks backpack in the snow",
    }
    assert all(-1 <= float(r["dino"]) <= 1 and r["clip_t"] for r in rows)

    summary = json.loads(result.summary_json.read_text())
    assert set(summary["subjects"]) == set(SUBJECTS)
    mean_dino = sum(float(r["dino"]) for r in rows) / len(rows)
    assert summary["means"]["dino"] == pytest.approx(mean_dino)
    assert summary["paper"]["dreambooth_sd"] == PAPER_SD

    table = result.table_md.read_text()
    assert "| Real Images (this dataset) |" in table
    assert "| DreamBooth (Stable Diffusion), paper | 0.668 | 0.803 | 0.305 |" in table
    assert f"| {summary['means']['dino']:.3f} |" in table
    for plot in result.plots:
        with Image.open(plot) as image:
            assert image.format == "PNG" and image.width > 100
    assert not (out / "subjects" / "backpack" / "model").exists()  # deleted once scored

    # The pixel-true row: each subject's first photo placed in each prompt's scene, scored.
    assert len(placed) == 2 * 2 * 2
    assert {r["prompt"] for r in placed if r["subject"] == "backpack_dog"} == {
        "a backpack in the jungle",
        "a backpack in the snow",
    }
    assert result.place_means is not None
    assert result.place_means["dino"] == pytest.approx(
        sum(float(r["dino"]) for r in placed) / len(placed)
    )
    assert summary["place"]["means"] == result.place_means and summary["place"]["shots"] == 8
    assert summary["run"]["place_model"] == "tiny-inpaint"
    placed_row = f"| packshot pixel-true (place, tiny-inpaint) | {result.place_means['dino']:.3f} |"
    assert placed_row in table
    place_dir = out / "subjects" / "backpack_dog" / "place"
    sidecar = json.loads((place_dir / "000-place-hero-seed0.json").read_text())
    assert sidecar["mode"] == "place" and sidecar["cutout"]["source"] == "grabcut"
    assert (out / "subjects" / "backpack_dog" / "place-scores.json").is_file()
    stamp = (place_dir / "000-place-hero-seed0.png").stat().st_mtime_ns

    # A second call skips both subjects and writes the same table.
    again = run_dreambench(
        two_subjects,
        SUBJECTS,
        2,
        2,
        2,
        64,
        "tiny",
        out,
        judge=TINY_JUDGES,
        num_inference_steps=2,
        place_model="tiny-inpaint",
        cutout_model="grabcut",
        cache_dir=cache_dir,
    )
    assert again.subjects_run == [] and again.subjects_skipped == SUBJECTS
    assert again.means == result.means and again.place_means == result.place_means
    assert (place_dir / "000-place-hero-seed0.png").stat().st_mtime_ns == stamp
