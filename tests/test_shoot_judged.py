"""Judged shoots: scores in every sidecar, flags never silent, --best keeps the K best."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from packshot.cli import app
from packshot.errors import UsageError
from packshot.flows.judged import CANDIDATES_DIR, shoot_and_judge
from packshot.judge import JudgeConfig
from packshot.shoot import ShootRequest

TINY_JUDGES = {"dino_model": "tiny", "clip_model": "tiny"}


@pytest.fixture(scope="module")
def model_dir(product_model: Path) -> Path:
    """A real training run from a prepared set (conftest.py): it must carry its own crops."""
    return product_model


def _request(model_dir: Path, **fields: object) -> ShootRequest:
    values: dict[str, object] = {
        "descriptions": ["{product} on a rock"],
        "presets": ["studio"],
        "count": 2,
        "seed": 7,
        "num_inference_steps": 2,
    }
    values.update(fields)
    return ShootRequest(model_dir, **values)


def test_model_folder_carries_its_training_crops(model_dir: Path) -> None:
    crops = sorted((model_dir / "training-set").glob("photo-*[0-9].png"))
    assert len(crops) == 6


def test_best_keeps_k_of_2k_and_sets_the_rest_aside(model_dir: Path, tmp_path: Path) -> None:
    judged = shoot_and_judge(
        _request(model_dir, presets=["studio", "lifestyle"]),
        tmp_path / "shots",
        judge=JudgeConfig(**TINY_JUDGES),
        best=1,
    )
    out = tmp_path / "shots"
    # 2 groups (studio, lifestyle) x 2 candidates, 1 kept per group.
    assert len(judged.result.shots) == 2
    assert {s.preset for s in judged.result.shots} == {"studio", "lifestyle"}
    assert len(judged.set_aside) == 2
    assert all(p.parent.name == CANDIDATES_DIR and p.exists() for p in judged.set_aside)
    assert len(list(out.glob("*-seed*.png"))) == 2  # nothing else left at the top
    # The kept shot of each group is the better one by product fidelity.
    summary = json.loads((out / "shoot.json").read_text())
    assert summary["best"] == 1
    for image in summary["images"]:
        sidecar = json.loads((out / image["sidecar"]).read_text())
        assert sidecar["scores"]["dino"] == pytest.approx(image["scores"]["dino"])
        group = [a for a in summary["set_aside"] if image["preset"] in a["file"]]
        assert all(image["scores"]["dino"] >= a["scores"]["dino"] - 0.01 for a in group)
    # Only delivered shots are in scores.json and the report; references are the crops only.
    scores = json.loads((out / "scores.json").read_text())
    assert sorted(s["file"] for s in scores["shots"]) == sorted(
        i["file"] for i in summary["images"]
    )
    assert all(not r.endswith((".mask.png", ".txt", ".json")) for r in scores["references"])
    assert (out / "report" / "index.html").exists()


def test_shots_without_the_product_are_never_silent(model_dir: Path, tmp_path: Path) -> None:
    # A threshold no shot can reach: every shot is flagged, and each is named.
    judge = JudgeConfig(present_threshold=0.999, **TINY_JUDGES)
    judged = shoot_and_judge(_request(model_dir), tmp_path / "shots", judge=judge)
    assert len(judged.flagged) == 2
    for name in judged.flagged:
        assert any(name in w and "product missing" in w for w in judged.warnings)
    summary = json.loads((tmp_path / "shots" / "shoot.json").read_text())
    assert summary["product_missing"] == judged.flagged
    sidecar = json.loads(judged.result.shots[0].sidecar.read_text())
    assert sidecar["scores"]["present"] is False
    assert "product_missing" in sidecar["scores"]["flags"]


def test_best_with_only_missing_candidates_says_so(model_dir: Path, tmp_path: Path) -> None:
    judge = JudgeConfig(present_threshold=0.999, **TINY_JUDGES)
    judged = shoot_and_judge(_request(model_dir), tmp_path / "shots", judge=judge, best=1)
    assert len(judged.result.shots) == 1
    assert any("kept anyway" in w for w in judged.warnings)


def test_bad_best_and_missing_reference(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--best"):
        shoot_and_judge(
            _request(model_dir), tmp_path / "a", judge=JudgeConfig(**TINY_JUDGES), best=0
        )
    with pytest.raises(UsageError, match="--reference"):
        shoot_and_judge(
            ShootRequest(None, ["a teapot"], base="tiny", count=1, num_inference_steps=2),
            tmp_path / "b",
            judge=JudgeConfig(**TINY_JUDGES),
        )


runner = CliRunner()


def test_cli_shoot_score_presets(model_dir: Path, tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    result = runner.invoke(
        app,
        ["shoot", str(model_dir), "{product} in the park", "--preset", "lifestyle", "-n", "2"]
        + ["--steps", "2", "--seed", "1", "--best", "1", "--out", str(shots), "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["images"]) == 1 and len(summary["set_aside"]) == 1
    assert summary["images"][0]["scores"]["dino"] is not None

    scored = runner.invoke(
        app,
        ["score", str(shots), "--reference", str(model_dir / "training-set")]
        + ["--dino-model", "tiny", "--clip-model", "tiny", "--json"],
    )
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    assert [s["file"] for s in report["shots"]] == [summary["images"][0]["file"]]
    assert report["means"]["dino"] == pytest.approx(summary["images"][0]["scores"]["dino"])

    presets = runner.invoke(app, ["presets", "--json"])
    assert presets.exit_code == 0
    assert {"studio", "lifestyle", "on-model", "flat-lay", "in-hand", "detail", "seasonal"} <= set(
        json.loads(presets.stdout)
    )


def test_cli_shoot_bad_input(model_dir: Path, tmp_path: Path) -> None:
    unknown = runner.invoke(
        app, ["shoot", str(model_dir), "x", "--preset", "nope", "--out", str(tmp_path / "a")]
    )
    assert unknown.exit_code == 2 and "nope" in unknown.output
    assert "Traceback" not in unknown.output
    not_a_model = runner.invoke(app, ["shoot", str(tmp_path), "x", "--out", str(tmp_path / "b")])
    assert not_a_model.exit_code in (1, 2) and "Traceback" not in not_a_model.output
    both = runner.invoke(
        app,
        ["shoot", str(model_dir), "x", "--no-judge", "--best", "2", "--out", str(tmp_path / "c")],
    )
    assert both.exit_code == 2 and "--best" in both.output


def test_cli_bench_dreambench_tiny(tmp_path: Path, dreambench: Path, cache_dir: Path) -> None:
    out = tmp_path / "bench"
    args = ["bench", "dreambench", str(dreambench), "--model", "tiny", "--out", str(out)]
    args += ["--subjects", "backpack", "--prompts-per-subject", "1", "--images-per-prompt", "1"]
    args += ["--steps", "2", "--resolution", "64", "--inference-steps", "2"]
    args += ["--dino-model", "tiny", "--clip-model", "tiny", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary
    assert (out / "results.csv").exists() and (out / "results.md").exists()
