"""The Ray driver's own logic, without starting Ray: what travels to a worker and back (the
params' files, the job's folder, the paths in them), where what arrives is written, which
failures are tried again, its settings, and the CLI's `--runner ray` on the seam.

What only Ray can show (a task on a worker, a killed worker, cancel freeing a GPU, Serve) is
in test_ray_runner.py, test_ray_studio.py and test_ray_serve.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from packshot import cli
from packshot.cli import app
from packshot.errors import PackshotError, UsageError
from packshot.progress import ProgressEvent
from packshot.train.checkpoints import STATE_FILE, checkpoint_name

ray = pytest.importorskip("ray")  # its exceptions only: no Ray instance is started here

from packshot.jobs.ray import driver  # noqa: E402
from packshot.jobs.ray.driver import (  # noqa: E402
    RaySettings,
    WorkersLost,
    deliver,
    finish_folder,
    outgoing,
    pack_inputs,
    rename_paths,
    retry_note,
    unpack_inputs,
    with_retries,
    workdir_files,
)


def _event(kind: str, **data: Any) -> dict[str, Any]:
    return {"stage": "x", "done": 1, "total": 2, "message": "", "data": {"event": kind, **data}}


def _checkpoint(folder: Path, step: int) -> Path:
    path = folder / checkpoint_name(step)
    path.mkdir(parents=True)
    (path / STATE_FILE).write_text(json.dumps({"step": step}))
    (path / "lora.safetensors").write_bytes(b"weights %d" % step)
    return path


def test_params_naming_files_here_travel_and_come_back_under_the_drivers_names(
    tmp_path: Path,
) -> None:
    here = tmp_path / "api-node"
    model = here / "jobs" / "trn_1" / "model"
    (model / "checkpoints" / "step-000002").mkdir(parents=True)
    (model / "checkpoints" / "step-000002" / "big.pt").write_bytes(b"x")
    (model / "training-set").mkdir()
    (model / "training-set" / "0.png").write_bytes(b"crop")
    (model / "pytorch_lora_weights.safetensors").write_bytes(b"lora")
    meta = {"kind": "packshot-model", "base_model": "tiny", "token": "sks", "class_word": "bag"}
    (model / "packshot.json").write_text(json.dumps(meta))
    photo = here / "photo.png"
    photo.write_bytes(b"png")
    workdir = here / "jobs" / "sht_1"
    own = workdir / "seed.txt"  # inside the job's folder: travels with the folder, not as input
    own.parent.mkdir(parents=True)
    own.write_text("7")
    params = {
        "model_dir": str(model),
        "photo": str(photo),
        "seed_file": str(own),
        "reference_dir": "relative/path",
        "descriptions": ["/not/a/file"],
        "product": "/missing",
    }

    inputs = pack_inputs(params, workdir.resolve(), product_models=("model_dir",))

    assert sorted(inputs) == ["model_dir", "photo"]
    assert sorted(inputs["model_dir"].files) == [
        "packshot.json",
        "pytorch_lora_weights.safetensors",
        "training-set/0.png",
    ]
    assert inputs["photo"].files == {"photo.png": b"png"} and not inputs["photo"].is_dir

    # A product model that isn't one is refused before anything travels.
    (model / "pytorch_lora_weights.safetensors").unlink()
    with pytest.raises(UsageError, match="no pytorch_lora_weights"):
        pack_inputs(params, workdir.resolve(), product_models=("model_dir",))

    # On the worker: under its own root, the params pointing there, and the way back.
    root = tmp_path / "worker"
    mapped, renames = unpack_inputs(params, inputs, root)
    assert mapped["model_dir"] == str(root / "model_dir" / "model")
    assert (root / "model_dir" / "model" / "training-set" / "0.png").read_bytes() == b"crop"
    assert Path(mapped["photo"]).read_bytes() == b"png"
    assert mapped["descriptions"] == params["descriptions"]
    # A sidecar the worker writes names its folders; what comes home names the driver's.
    sidecar = json.dumps({"model_dir": mapped["model_dir"], "photo": mapped["photo"]})
    home = rename_paths({"a.json": sidecar.encode(), "a.png": b"\x89PNG"}, renames)
    assert json.loads(home["a.json"]) == {"model_dir": str(model), "photo": str(photo)}
    assert home["a.png"] == b"\x89PNG"
    # And what an earlier try recorded (a placement's request) goes out in this try's paths.
    back = {original: local for local, original in renames.items()}
    recorded = json.dumps({"photo": str(photo)}).encode()
    assert json.loads(rename_paths({"r.json": recorded}, back)["r.json"]) == {
        "photo": mapped["photo"]
    }


def test_what_arrives_is_written_where_a_local_run_writes_it(tmp_path: Path) -> None:
    worker, workdir = tmp_path / "worker", tmp_path / "driver"
    old = _checkpoint(workdir / "model.partial" / "checkpoints", 2)
    new = _checkpoint(worker / "model.partial" / "checkpoints", 4)
    (worker / "shots").mkdir()
    (worker / "shots" / "000.png").write_bytes(b"png")
    (worker / "shots" / "000.json").write_text(json.dumps({"model_dir": "/worker/model"}))
    renames = {"/worker/model": "/driver/model"}

    # 1. A checkpoint: its files travel with the event, and replace the older one here.
    sent = outgoing(
        _event("checkpoint", path="model.partial/checkpoints/step-000004", step=4),
        worker,
        {},
        renames,
    )
    event = deliver(sent, workdir)
    delivered = workdir / "model.partial" / "checkpoints" / "step-000004"
    assert (delivered / "lora.safetensors").read_bytes() == b"weights 4"
    assert not old.exists()  # the next try needs only the latest
    assert event.data["path"] == str(delivered) and new.exists()
    assert retry_note(workdir)["resume_step"] == 4

    # 2. A shot: the pair, the sidecar in the driver's paths; a shot sent before stays home.
    shot = _event("shot", path="shots/000.png")
    event = deliver(outgoing(dict(shot), worker, {}, renames), workdir)
    assert (workdir / "shots" / "000.png").read_bytes() == b"png"
    assert json.loads((workdir / "shots" / "000.json").read_text()) == {
        "model_dir": "/driver/model"
    }
    assert event.data["path"] == str(workdir / "shots" / "000.png")
    assert "files" not in outgoing(
        _event("shot", path="shots/000.png"), worker, {"shots/000.png": b""}, {}
    )
    assert retry_note(workdir)["delivered"] == ["shots/000.png"]

    # 3. Nothing outside the job's folder, whatever a task sends.
    with pytest.raises(PackshotError, match="outside"):
        deliver({**_event("sample", paths=[]), "files": {"../x.png": b""}}, workdir)


def test_a_try_gets_the_folder_with_only_the_latest_checkpoint_and_the_end_replaces_it(
    tmp_path: Path,
) -> None:
    checkpoints = tmp_path / "model.partial" / "checkpoints"
    _checkpoint(checkpoints, 2)
    _checkpoint(checkpoints, 4)
    (tmp_path / "seed.txt").write_text("1")
    files = workdir_files(tmp_path)
    assert "seed.txt" in files
    assert {Path(n).parts[2] for n in files if "checkpoints" in n} == {"step-000004"}

    # The finished folder as the worker left it: what it removed goes here too.
    finish_folder({"model/a.safetensors": b"a", "seed.txt": b"1"}, tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == ["model", "model/a.safetensors", "seed.txt"]


def test_a_lost_worker_is_tried_again_and_the_jobs_own_failure_is_not() -> None:
    events: list[ProgressEvent] = []
    tries: list[int] = []

    def lost_once(attempt: int) -> str:
        tries.append(attempt)
        if attempt == 1:
            raise ray.exceptions.WorkerCrashedError()
        return "done"

    note = {"resume_step": 4, "delivered": []}
    assert with_retries("training", 3, lost_once, events.append, lambda: note) == "done"
    assert tries == [1, 2]
    assert [e.data["event"] for e in events] == ["retry"]
    assert events[0].data["attempt"] == 2 and events[0].data["resume_step"] == 4

    def nan_twice(attempt: int) -> str:
        tries.append(attempt)
        raise ray.exceptions.RayTaskError("task", "tb", PackshotError("unstable: NaN twice"))

    tries.clear()
    with pytest.raises(PackshotError, match="unstable"):
        with_retries("training", 3, nan_twice, events.append, dict)
    assert tries == [1]  # never retried

    def bug(attempt: int) -> str:
        raise ray.exceptions.RayTaskError("task", "tb", KeyError("oops"))

    with pytest.raises(KeyError):
        with_retries("shoot", 3, bug, events.append, dict)

    def always_lost(attempt: int) -> str:
        raise ray.exceptions.NodeDiedError("node gone")

    with pytest.raises(WorkersLost, match="all 2 tries"):
        with_retries("shoot", 2, always_lost, events.append, dict)


def test_ray_settings_are_in_the_readme_and_checked() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in [v for k, v in vars(driver).items() if k.startswith("ENV_")]:
        assert f"`{name}`" in readme, f"README's settings table lacks `{name}`"
    settings = RaySettings.from_env({"PACKSHOT_RAY_TRAIN_GPUS": "0.5", "RAY_ADDRESS": "auto"})
    assert settings.gpus == {"PACKSHOT_RAY_TRAIN_GPUS": 0.5} and settings.address == "auto"
    with pytest.raises(UsageError, match="PACKSHOT_RAY_SHOOT_GPUS"):
        RaySettings.from_env({"PACKSHOT_RAY_SHOOT_GPUS": "one"})
    with pytest.raises(UsageError, match="PACKSHOT_RAY_MAX_ATTEMPTS"):
        RaySettings.from_env({"PACKSHOT_RAY_MAX_ATTEMPTS": "0"})


def test_unknown_runner_is_a_usage_error(tmp_path: Path) -> None:
    args = ["shoot", str(tmp_path), "x", "--out", str(tmp_path / "o"), "--runner", "spark"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--runner" in result.output


def test_cli_on_ray_builds_the_jobs_params_and_calls_the_studios_driver(
    cache_dir: Path, training_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`packshot train/shoot --runner ray` hand the driver a job (here run by `run_job`, the
    seam the driver runs on a worker) and leave what the local runner leaves in `--out`."""
    from safetensors.torch import load_file

    from packshot.jobs.execute import run_job

    calls: list[tuple[str, Any]] = []

    def on_the_seam(kind, params, workdir, progress, should_cancel, *, settings):
        calls.append((kind, params))
        return run_job(kind, params, workdir, progress, should_cancel)

    monkeypatch.setattr(cli, "run_on_ray", on_the_seam)  # the CLI's own name for the driver
    runner = CliRunner()
    train = ["--class", "backpack", "--model", "tiny", "--steps", "2", "--seed", "7"]
    models = {}
    for name in ("local", "ray"):
        models[name] = tmp_path / f"model-{name}"
        args = ["train", str(training_set), "--out", str(models[name]), "--runner", name]
        result = runner.invoke(app, [*args, *train, "--learning-rate", "0.001"])
        assert result.exit_code == 0, result.output
    assert calls[0][0] == "training" and calls[0][1].max_train_steps == 2
    local, on_ray = models["local"], models["ray"]
    names = {p.relative_to(on_ray).as_posix() for p in on_ray.rglob("*") if p.is_file()}
    assert names == {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    a = load_file(str(local / "pytorch_lora_weights.safetensors"))
    b = load_file(str(on_ray / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert not Path(f"{on_ray}.job").exists()

    shoots = {}
    for name in ("local", "ray"):
        shoots[name] = tmp_path / f"shoot-{name}"
        args = ["shoot", str(local), "{product} on a desk", "--out", str(shoots[name])]
        result = runner.invoke(app, [*args, "-n", "2", "--steps", "2", "--seed", "11"]
                               + ["--runner", name])  # fmt: skip
        assert result.exit_code == 0, result.output
    assert calls[1][0] == "shoot" and calls[1][1].num_inference_steps == 2
    pngs = sorted(p.name for p in shoots["local"].glob("*.png"))
    assert len(pngs) == 3 and pngs == sorted(p.name for p in shoots["ray"].glob("*.png"))
    for png in pngs:  # the same pixels and recipe
        assert (shoots["local"] / png).read_bytes() == (shoots["ray"] / png).read_bytes()
    summary = json.loads((shoots["ray"] / "shoot.json").read_text())
    assert all("scores" in image for image in summary["images"])
