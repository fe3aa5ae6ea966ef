"""The Ray driver on a local Ray: what only Ray shows. A worker killed with SIGKILL mid-job,
and the job finishing from what had reached the driver; cancel killing the task and giving its
GPU back; a catalogue's products fanned out over the workers. (The driver's own logic is tested
without Ray in test_ray_driver.py.)
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from packshot.artifacts.catalogue import CatalogueProduct
from packshot.jobs.kinds import CatalogueParams, TrainingParams
from packshot.progress import ProgressEvent
from packshot.shoot.shotlist import ShotList
from photo_corpus import bad_files, write_files

pytest.importorskip("ray")

from packshot.jobs.execute import JobCanceled  # noqa: E402
from packshot.jobs.ray.driver import ENV_TRAIN_GPUS, RaySettings, run_on_ray  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU_ONLY = RaySettings(gpus={ENV_TRAIN_GPUS: 0})


def _training(training_set: Path, steps: int, **values: object) -> TrainingParams:
    return TrainingParams(
        photos_dir=str(training_set),
        model="tiny",
        class_word="backpack",
        preset="quick",
        resolution=64,
        max_train_steps=steps,
        learning_rate=1e-3,
        validation_steps=0,
        **values,  # type: ignore[arg-type]
    )


@pytest.mark.budget(25)  # its setup starts the session's Ray; the retry imports the stack again
def test_killed_worker_resumes_training_from_the_last_delivered_checkpoint(
    ray_local: object, training_set: Path, tmp_path: Path
) -> None:
    from packshot.models.load import load_pipeline

    params = _training(training_set, 12, checkpointing_steps=4)
    pids: list[int] = []
    delivered: list[int] = []  # checkpoint steps that reached the driver before the retry
    retries: list[ProgressEvent] = []

    def watch(event: ProgressEvent) -> None:
        kind = event.data.get("event")
        if kind == "ray_task":
            pids.append(event.data["pid"])
        elif kind == "checkpoint" and not retries:
            delivered.append(event.data["step"])
            if len(delivered) == 1:  # the first checkpoint is in: kill the worker now
                os.kill(pids[0], signal.SIGKILL)
        elif kind == "retry":
            retries.append(event)

    workdir = tmp_path / "job"
    result = run_on_ray("training", params, workdir, watch, lambda: False, settings=CPU_ONLY)

    assert len(retries) == 1 and len(pids) == 2 and pids[0] != pids[1]
    resumed = retries[0].data["resume_step"]
    assert resumed == max(delivered) and resumed < 12
    assert result.resumed_from == resumed  # not step 0: the retry got the checkpoint
    assert result.final_step == 12
    model = workdir / "model"
    meta = json.loads((model / "packshot.json").read_text())
    assert meta["resumed_from"] == resumed and meta["final_step"] == 12
    assert not (workdir / "model.partial").exists()  # the finished folder, as the worker's
    pipe = load_pipeline("tiny", device="cpu")
    pipe.load_lora_weights(str(model))  # the final model loads
    pipe.unload_lora_weights()


def test_cancel_stops_the_task_and_gives_its_gpu_back(
    ray_local: object, training_set: Path, tmp_path: Path
) -> None:
    ray = ray_local
    held: list[float] = []
    pids: list[int] = []

    def watch(event: ProgressEvent) -> None:
        if event.data.get("event") == "ray_task":
            pids.append(event.data["pid"])
        if event.data.get("event") == "step" and not held:
            held.append(ray.available_resources().get("GPU", 0.0))  # type: ignore[attr-defined]

    with pytest.raises(JobCanceled):
        run_on_ray(
            "training",
            _training(training_set, 5000),
            tmp_path / "job",
            watch,
            lambda: bool(held),
            settings=RaySettings(gpus={ENV_TRAIN_GPUS: 1}),
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


@pytest.mark.budget(30)  # three products at once: each task's worker process imports torch
def test_catalogue_products_fan_out_over_the_workers(
    ray_local: object, product_model: Path, dreambench: Path, tmp_path: Path
) -> None:
    """Each product a job of its own on a worker; their folders merged into the job's, the
    paths they recorded the driver's; the summary written here. Instant: the product without a
    model is drawn from its photos (travelled to the worker) as tiny-flux2's references."""
    lamp = write_files(tmp_path / "lamp", bad_files()[:4])
    params = CatalogueParams(
        products=[
            CatalogueProduct("backpack", "Backpack", "backpack", model_dir=str(product_model)),
            CatalogueProduct("lamp", "Lamp", "lamp", photos_dir=str(lamp)),
            CatalogueProduct("tote", "Tote", "bag", photos_dir=str(dreambench / "backpack")),
        ],
        shots=list(ShotList.from_dict({"shots": [{"slot": "main", "preset": "studio"}]}).shots),
        model="tiny-flux2",
        instant=True,
        num_inference_steps=2,
        profiles=["ebay"],  # the whole job's: delivered here, once, over every product
    )
    tasks: list[int] = []
    workdir = tmp_path / "job"

    def watch(event: ProgressEvent) -> None:
        if event.data.get("event") == "ray_task":
            tasks.append(event.data["pid"])

    summary = run_on_ray("catalogue", params, workdir, watch, lambda: False, settings=CPU_ONLY)
    assert len(tasks) == 3  # one task per product
    assert [(p.handle, p.status, p.route) for p in summary.products] == [
        ("backpack", "done", "model"),
        ("lamp", "failed", None),
        ("tote", "done", "instant"),
    ]
    assert summary.images[0].file.startswith("catalogue/backpack/shots/01-main/")
    assert all((workdir / image.file).is_file() for image in summary.images)
    assert not (workdir / "parts").exists()  # merged
    assert set(summary.delivery["products"]) == {"backpack", "tote"}
    assert summary.images[0].badges[0]["profile"] == "ebay"
    assert (workdir / "catalogue" / "delivery" / "delivery.json").is_file()
    assert summary.cost["training_device_seconds"] == 0
    sidecars = [
        p for h in ("backpack", "tote") for p in (workdir / "catalogue" / h).rglob("*.json")
    ]
    text = "".join(p.read_text() for p in sidecars)
    assert "packshot-ray-" not in text and "/parts/" not in text  # the driver's paths, merged
    tote = json.loads(next((workdir / "catalogue" / "tote").rglob("shoot.json")).read_text())
    assert tote["settings"]["references"][0].startswith(f"{dreambench / 'backpack'}/")
    again = run_on_ray("catalogue", params, workdir, watch, lambda: False, settings=CPU_ONLY)
    assert again == summary and len(tasks) == 3  # finished: no task again
