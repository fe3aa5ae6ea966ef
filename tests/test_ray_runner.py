"""The ray runner: training and shooting as Ray tasks on a local Ray, same outputs as local.

One local Ray for the session (`ray_local`); tiny models. Chaos: the Ray worker process is
killed with SIGKILL mid-job, and the job still finishes from what had reached the driver.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from packshot.cli import app
from packshot.errors import PackshotError
from packshot.progress import ProgressEvent

pytest.importorskip("ray")

from packshot.jobs.ray_runner import (  # noqa: E402
    JobCanceled,
    RaySettings,
    shoot_on_ray,
    train_on_ray,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
CPU_ONLY = RaySettings(train_gpus=0, shoot_gpus=0)
TRAIN_ARGS = ["--class", "backpack", "--model", "tiny", "--steps", "6", "--seed", "7"]
TRAIN_ARGS += ["--checkpoint-every", "3", "--learning-rate", "0.001"]


def _invoke(args: list[str]) -> None:
    result = runner.invoke(app, args, env={"PACKSHOT_RAY_TRAIN_GPUS": "0"})
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def trained(
    ray_local: object, training_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The same training from the CLI, once in this process and once on Ray."""
    root = tmp_path_factory.mktemp("ray-train")
    models = {"local": root / "local", "ray": root / "ray"}
    for name, out in models.items():
        _invoke(["train", str(training_set), "--out", str(out), "--runner", name, *TRAIN_ARGS])
    return models


def test_cli_train_on_ray_gives_the_local_runners_model(trained: dict[str, Path]) -> None:
    local, on_ray = trained["local"], trained["ray"]
    for weights in ("pytorch_lora_weights.safetensors", "pytorch_lora_weights_kohya.safetensors"):
        a, b = load_file(str(local / weights)), load_file(str(on_ray / weights))
        assert a.keys() == b.keys() and a
        assert all(torch.equal(a[k], b[k]) for k in a), f"{weights} differs"
    meta = json.loads((on_ray / "packshot.json").read_text())
    assert meta["final_step"] == 6 and meta["resumed_from"] is None
    # The whole model folder came back, and nothing of the run was left beside it.
    names = {p.relative_to(on_ray).as_posix() for p in on_ray.rglob("*") if p.is_file()}
    assert names == {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert not Path(f"{on_ray}.partial").exists()


def test_cli_shoot_on_ray_gives_the_local_runners_images(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    shots = {}
    for name in ("local", "ray"):
        out = tmp_path / name
        _invoke(
            ["shoot", str(trained["local"]), "{product} on a desk", "--out", str(out)]
            + ["-n", "2", "--steps", "2", "--seed", "11", "--runner", name]
        )
        shots[name] = out
    local_pngs = sorted(p.name for p in shots["local"].glob("*.png"))
    assert local_pngs == sorted(p.name for p in shots["ray"].glob("*.png"))
    assert len(local_pngs) == 3  # two shots and the contact sheet
    for name in local_pngs:  # same pixels and the same recipe in the PNG: the same bytes
        assert (shots["local"] / name).read_bytes() == (shots["ray"] / name).read_bytes(), name
    summary = json.loads((shots["ray"] / "shoot.json").read_text())
    assert summary["model_dir"] == str(trained["local"])  # the driver's folder, not the worker's
    assert all("scores" in image for image in summary["images"])


def test_killed_worker_resumes_training_from_the_last_delivered_checkpoint(
    ray_local: object, training_set: Path, tmp_path: Path
) -> None:
    from packshot.models.load import load_pipeline
    from packshot.train import TrainConfig

    config = TrainConfig(
        model="tiny",
        class_word="backpack",
        resolution=64,
        max_train_steps=40,
        learning_rate=1e-3,
        checkpointing_steps=4,
        sample_at_end=False,
    )
    events: list[ProgressEvent] = []
    pids: list[int] = []
    delivered: list[int] = []  # checkpoint steps that reached the driver before the retry
    retries: list[ProgressEvent] = []

    def watch(event: ProgressEvent) -> None:
        events.append(event)
        kind = event.data.get("event")
        if kind == "ray_task":
            pids.append(event.data["pid"])
        elif kind == "checkpoint" and not retries:
            delivered.append(event.data["step"])
            if len(delivered) == 1:  # the first checkpoint is in: kill the worker now
                os.kill(pids[0], signal.SIGKILL)
        elif kind == "retry":
            retries.append(event)

    out = tmp_path / "model"
    result = train_on_ray(config, training_set, out, progress=watch, settings=CPU_ONLY)

    assert len(retries) == 1 and len(pids) == 2 and pids[0] != pids[1]
    resumed = retries[0].data["resume_step"]
    assert resumed == max(delivered) and resumed < config.max_train_steps
    assert result.resumed_from == resumed  # not step 0: the retry got the checkpoint
    assert result.final_step == config.max_train_steps
    meta = json.loads((out / "packshot.json").read_text())
    assert meta["resumed_from"] == resumed and meta["final_step"] == config.max_train_steps
    pipe = load_pipeline("tiny", device="cpu")
    pipe.load_lora_weights(str(out))  # the final model loads
    pipe.unload_lora_weights()


def test_killed_worker_shoots_only_the_undelivered_images(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    from packshot.shoot import ShootRequest, shoot

    request = ShootRequest(
        trained["ray"], ["{product} in a park"], count=8, seed=3, num_inference_steps=8
    )
    pids: list[int] = []
    before_retry: set[str] = set()
    rendered_after: list[str] = []
    kept_after: list[str] = []
    retried = False

    def watch(event: ProgressEvent) -> None:
        nonlocal retried
        kind = event.data.get("event")
        if kind == "ray_task":
            pids.append(event.data["pid"])
        elif kind == "retry":
            retried = True
        elif kind == "shot" and not retried:
            before_retry.add(Path(event.data["path"]).name)
            if len(before_retry) == 1:
                os.kill(pids[0], signal.SIGKILL)
        elif kind == "shot":
            name = Path(event.data["path"]).name
            (kept_after if "(kept)" in event.message else rendered_after).append(name)

    out = tmp_path / "shoot"
    done = shoot_on_ray(request, out, progress=watch, settings=CPU_ONLY).result

    assert retried and len(pids) == 2
    assert 1 <= len(before_retry) < 8
    assert sorted(kept_after) == sorted(before_retry)  # kept, not rendered again
    assert sorted(rendered_after + kept_after) == sorted(before_retry | set(rendered_after))
    assert len(rendered_after) == 8 - len(before_retry)
    names = [s.path.name for s in done.shots]
    assert len(names) == len(set(names)) == 8  # nothing lost, nothing twice
    summary = json.loads((out / "shoot.json").read_text())
    assert sorted(i["file"] for i in summary["images"]) == sorted(names)
    # The same images as one uninterrupted local shoot.
    local = shoot(request, tmp_path / "local")
    for shot in local.shots:
        assert (out / shot.path.name).read_bytes() == shot.path.read_bytes()


def test_a_jobs_own_failure_is_not_retried(
    ray_local: object, training_set: Path, tmp_path: Path
) -> None:
    from packshot.train import TrainConfig

    config = TrainConfig(
        model="tiny",
        class_word="backpack",
        resolution=64,
        max_train_steps=4,
        sample_at_end=False,
        debug_nan_at_step=1,
        debug_nan_times=2,  # NaN twice: the run gives up
    )
    tries: list[int] = []

    def watch(event: ProgressEvent) -> None:
        if event.data.get("event") == "ray_task":
            tries.append(event.data["attempt"])

    with pytest.raises(PackshotError, match="unstable"):
        train_on_ray(config, training_set, tmp_path / "m", progress=watch, settings=CPU_ONLY)
    assert tries == [1]
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()


def test_cancel_stops_the_task_and_gives_its_gpu_back(
    ray_local: object, training_set: Path, tmp_path: Path
) -> None:
    from packshot.train import TrainConfig

    ray = ray_local
    config = TrainConfig(
        model="tiny",
        class_word="backpack",
        resolution=64,
        max_train_steps=5000,
        sample_at_end=False,
    )
    held: list[float] = []
    pids: list[int] = []

    def watch(event: ProgressEvent) -> None:
        if event.data.get("event") == "ray_task":
            pids.append(event.data["pid"])
        if event.data.get("event") == "step" and not held:
            held.append(ray.available_resources().get("GPU", 0.0))  # type: ignore[attr-defined]

    with pytest.raises(JobCanceled):
        train_on_ray(
            config,
            training_set,
            tmp_path / "m",
            progress=watch,
            settings=RaySettings(train_gpus=1),
            should_cancel=lambda: bool(held),
        )
    assert held == [0.0]  # the task held the cluster's one GPU while it trained
    deadline = time.monotonic() + 30
    while ray.available_resources().get("GPU", 0.0) < 1.0:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the canceled task never gave its GPU back"
        time.sleep(0.1)
    while _alive(pids[0]):  # the worker process is gone (killed, so the memory is free too)
        assert time.monotonic() < deadline, "the canceled task's worker is still running"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent hasn't reaped it


def test_ray_settings_are_in_the_readme_and_checked() -> None:
    from packshot.errors import UsageError
    from packshot.jobs import ray_runner

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in [v for k, v in vars(ray_runner).items() if k.startswith("ENV_")]:
        assert f"`{name}`" in readme, f"README's settings table lacks `{name}`"
    settings = RaySettings.from_env({"PACKSHOT_RAY_TRAIN_GPUS": "0.5", "RAY_ADDRESS": "auto"})
    assert (settings.train_gpus, settings.shoot_gpus, settings.address) == (0.5, None, "auto")
    with pytest.raises(UsageError, match="PACKSHOT_RAY_SHOOT_GPUS"):
        RaySettings.from_env({"PACKSHOT_RAY_SHOOT_GPUS": "one"})
    with pytest.raises(UsageError, match="PACKSHOT_RAY_MAX_ATTEMPTS"):
        RaySettings.from_env({"PACKSHOT_RAY_MAX_ATTEMPTS": "0"})


def test_unknown_runner_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["shoot", str(tmp_path), "x", "--out", str(tmp_path / "o")]
                           + ["--runner", "spark"])  # fmt: skip
    assert result.exit_code == 2 and "--runner" in result.output
