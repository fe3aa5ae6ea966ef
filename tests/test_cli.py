"""The command line: help everywhere, exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from packshot.cli import app
from packshot.flows import demo

runner = CliRunner()


def _all_commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            found += _all_commands(sub, (*path, name))
    return found


COMMANDS = _all_commands(get_command(app))


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "packshot")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command = get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert command.help, f"`packshot {' '.join(path)}` has no help text"


def test_every_command_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    leaves = [p for p in COMMANDS if p and not hasattr(_lookup(p), "commands")]
    for path in leaves:
        assert f"packshot {' '.join(path)}" in readme, f"README lacks `packshot {' '.join(path)}`"


def _lookup(path: tuple[str, ...]) -> Any:
    command = get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("packshot ")


def test_unknown_flag_is_a_usage_error() -> None:
    result = runner.invoke(app, ["photos", "check", ".", "--no-such-flag"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_bad_value_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["photos", "check", str(tmp_path), "--min-side", "0"])
    assert result.exit_code == 2
    assert "--min-side" in result.output


def test_missing_folder_is_one_line_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = runner.invoke(app, ["photos", "check", str(missing)])
    assert result.exit_code == 1
    assert str(missing) in result.output
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0, result.output


def _packshot() -> list[str]:
    script = Path(sys.executable).parent / "packshot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "packshot.cli"]


def test_script_exit_codes_and_debug(tmp_path: Path) -> None:
    """The installed script: exit 1 with one line, and a traceback only with --debug."""
    missing = str(tmp_path / "nope")
    env = {**os.environ, "PACKSHOT_DEBUG": ""}
    plain = subprocess.run(
        [*_packshot(), "photos", "check", missing], capture_output=True, text=True, env=env
    )
    assert plain.returncode == 1
    assert plain.stderr.startswith("Error:") and "Traceback" not in plain.stderr
    debug = subprocess.run(
        [*_packshot(), "--debug", "photos", "check", missing],
        capture_output=True,
        text=True,
        env=env,
    )
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    usage = subprocess.run([*_packshot(), "photos", "check"], capture_output=True, text=True)
    assert usage.returncode == 2


def test_photos_check_json(tmp_path: Path, dreambench: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(dreambench / "backpack", photos)
    (photos / "notes.jpg").write_text("<html><body>not a photo</body></html>")
    result = runner.invoke(app, ["photos", "check", str(photos), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"accepted", "rejected", "duplicates", "verdict", "advice"} <= report.keys()
    assert len(report["accepted"]) == len(list((dreambench / "backpack").glob("*.jpg")))
    assert [r["file"] for r in report["rejected"]] == ["notes.jpg"]
    assert report["verdict"] in {"ready", "usable"}


def test_photos_check_human(tmp_path: Path, dreambench: Path) -> None:
    result = runner.invoke(app, ["photos", "check", str(dreambench / "backpack")])
    assert result.exit_code == 0, result.output
    assert "Verdict:" in result.output


def test_photos_prepare(tmp_path: Path, dreambench: Path) -> None:
    out = tmp_path / "set"
    result = runner.invoke(
        app,
        [
            "photos",
            "prepare",
            str(dreambench / "backpack"),
            "--class",
            "backpack",
            "--resolution",
            "64",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest
    assert (out / "packshot.json").exists()
    assert len(list(out.rglob("*.png"))) >= len(list((dreambench / "backpack").glob("*.jpg")))


def test_photos_prepare_in_aspect_buckets_or_square(tmp_path: Path, mixed_photos: Path) -> None:
    args = ["photos", "prepare", str(mixed_photos), "--class", "backpack", "--resolution", "96"]
    result = runner.invoke(app, [*args, "--size-multiple", "8", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # as one line, however the console wrapped it
    assert "(2 at 80x112, 2 at 96x96, 1 at 112x80, 1 at 128x72)" in said
    square = runner.invoke(app, [*args, "--no-buckets", "--json", "--out", str(tmp_path / "b")])
    assert square.exit_code == 0, square.output
    manifest = json.loads(square.stdout)
    assert manifest["buckets"] is False
    assert {tuple(item["size"]) for item in manifest["items"]} == {(96, 96)}


def test_train_cli_takes_buckets_and_batch_size(
    tmp_path: Path, cache_dir: Path, mixed_photos: Path
) -> None:
    out = tmp_path / "model"
    args = ["train", str(mixed_photos), "--class", "backpack", "--model", "tiny", "--out", str(out)]
    args += ["--steps", "1", "--resolution", "96", "--no-buckets", "--batch-size", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "packshot.json").read_text())
    assert meta["config"]["buckets"] is False and meta["config"]["train_batch_size"] == 2
    assert meta["buckets"] == [{"width": 96, "height": 96, "photos": 6}]


def test_models_info_tiny(cache_dir: Path) -> None:
    result = runner.invoke(app, ["models", "info", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["family"] == "sd15"


def test_models_info_missing_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "info", str(tmp_path / "no-model")])
    assert result.exit_code == 1
    assert "no-model" in result.output and "Traceback" not in result.output


@pytest.mark.budget(15)  # the demo's whole flow: intake, training, judged shoot
def test_demo_end_to_end(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The flow, not the noise the tiny stand-in learns: fewer steps than `make demo` takes.
    monkeypatch.setattr(demo, "TINY_TRAIN_STEPS", 4)
    monkeypatch.setattr(demo, "STAND_IN_SAMPLE_STEPS", 2)
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "tiny model" in result.output  # says plainly that the images are noise
    summary = json.loads((out / "demo.json").read_text())
    assert summary["verdict"] in {"ready", "usable"}
    assert summary["training_images"] == 6
    assert json.loads((out / "report.json").read_text())["counts"]["accepted"] == 6
    assert (out / "shots" / "contact-sheet.png").exists()
    assert (out / "model" / "pytorch_lora_weights_kohya.safetensors").exists()
    assert len(summary["shots"]) == 4 and summary["report"].endswith("index.html")
    # `make demo` twice in a row: the second run replaces the demo's own results.
    again = runner.invoke(app, ["demo", "--out", str(out)])
    assert again.exit_code == 0, again.output


def test_train_cli_end_to_end(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "model"
    args = ["train", str(Path(__file__).resolve().parents[1] / "examples" / "backpack")]
    args += ["--class", "backpack", "--model", "tiny", "--out", str(out), "--steps", "2"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["final_step"] == 2
    assert (out / "pytorch_lora_weights.safetensors").exists()
    assert (out / "pytorch_lora_weights_kohya.safetensors").exists()
    # A second run into the same folder is refused without --force: one line, exit 2.
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "--force" in again.output and "Traceback" not in again.output


def test_train_cli_bad_preset(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", str(tmp_path), "--class", "x", "--out", str(tmp_path / "m"), "--preset", "x"]
    )
    assert result.exit_code == 2
    assert "--preset" in result.output


def test_every_setting_is_in_the_readme() -> None:
    from packshot import config

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    settings = [v for k, v in vars(config).items() if k.startswith("ENV_")]
    assert settings
    for name in [*settings, "PACKSHOT_DEBUG"]:
        assert f"`{name}`" in readme, f"README's settings table lacks `{name}`"
