"""The studio's jobs on Ray (`PACKSHOT_RUNNER=ray`): the job store's queue drained by the Ray
runner, with the same results as the local runner's `run_job`, and cancel freeing the GPU."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from sqlalchemy import select

pytest.importorskip("ray")

from packshot.jobs import store  # noqa: E402
from packshot.jobs.execute import run_job  # noqa: E402
from packshot.jobs.models import Job, JobEvent, Product, ShotRow  # noqa: E402
from packshot.jobs.runner import make_runner  # noqa: E402
from packshot.jobs.settings import ServiceSettings  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAINING = {
    "model": "tiny",
    "class_word": "backpack",
    "preset": "quick",
    "steps": 4,
    "resolution": 64,
    "checkpoint_every": 2,
    "sample_every": 0,
    "learning_rate": 1e-3,
    "seed": 5,
}


@pytest.fixture(scope="module")
def studio(ray_local: object, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("studio-ray")
    url = f"sqlite:///{data / 'packshot.db'}"
    store.migrate(url)
    settings = ServiceSettings(data_dir=data, database_url=url, runner="ray", cache_dir=cache_dir)
    mp = pytest.MonkeyPatch()
    mp.setenv("PACKSHOT_RAY_SHOOT_GPUS", "0")
    mp.setenv("PACKSHOT_RAY_TRAIN_GPUS", "0")
    runner = make_runner(settings)
    mp.undo()
    db = store.Database(url)
    with db.session() as session:
        merchant, _ = store.create_merchant(session, "Acme")
        session.add(Product(id="prd_1", merchant_id=merchant.id, name="bag", class_name="bag"))
        session.commit()
        merchant_id = merchant.id
    runner.start()
    yield {"runner": runner, "db": db, "settings": settings, "merchant": merchant_id}
    runner.stop()
    db.dispose()


def _enqueue(studio: dict[str, Any], kind: str, params: dict[str, Any]) -> str:
    with studio["db"].session() as session:
        job = store.enqueue(
            session,
            merchant_id=studio["merchant"],
            product_id="prd_1",
            kind=kind,
            params=params,
            request={},
            webhook=None,
            prefix="job",
        )
        return job.id


def _wait(studio: dict[str, Any], job_id: str, until: set[str], seconds: float = 180) -> Job:
    deadline = time.monotonic() + seconds
    while True:
        with studio["db"].session() as session:
            job = session.get(Job, job_id)
            assert job is not None
            if job.status in until:
                session.expunge(job)
                return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        time.sleep(0.2)


def _events(studio: dict[str, Any], job_id: str) -> list[str]:
    with studio["db"].session() as session:
        return [e.type for e in store.events_after(session, job_id, 0, limit=10_000)]


def test_training_and_shoot_jobs_on_ray_match_the_local_runner(
    studio: dict[str, Any], training_set: Path, tmp_path: Path
) -> None:
    assert studio["runner"].name == "ray"
    data: Path = studio["settings"].data_dir

    # 1. A training job through the queue, on Ray; the same job run locally.
    params = {**TRAINING, "photos_dir": str(training_set)}
    train_id = _enqueue(studio, "training", params)
    job = _wait(studio, train_id, {"succeeded", "failed", "canceled"})
    assert job.status == "succeeded", job.error
    local = run_job("training", params, tmp_path / "local-train", lambda e: None, lambda: False)
    assert job.result == {**local, "timings": job.result["timings"]}
    weights = "model/pytorch_lora_weights.safetensors"
    a, b = (
        load_file(str(data / "jobs" / train_id / weights)),
        load_file(str(tmp_path / "local-train" / weights)),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    kinds = _events(studio, train_id)
    assert "ray_task" in kinds and "checkpoint" in kinds and "done" in kinds

    # 2. A judged shoot of that model, on Ray and locally: the same images, byte for byte.
    shoot = {
        "model_dir": str(data / "jobs" / train_id / "model"),
        "descriptions": ["{product} on a marble table"],
        "n": 2,
        "steps": 2,
        "seed": 9,
    }
    shoot_id = _enqueue(studio, "shoot", shoot)
    job = _wait(studio, shoot_id, {"succeeded", "failed", "canceled"})
    assert job.status == "succeeded", job.error
    local = run_job("shoot", shoot, tmp_path / "local-shoot", lambda e: None, lambda: False)
    assert [i["file"] for i in job.result["images"]] == [i["file"] for i in local["images"]]
    for image in local["images"]:
        on_ray = (data / "jobs" / shoot_id / image["file"]).read_bytes()
        assert on_ray == (tmp_path / "local-shoot" / image["file"]).read_bytes()
    assert [i["scores"] for i in job.result["images"]] == [i["scores"] for i in local["images"]]
    with studio["db"].session() as session:
        shots = session.scalars(select(ShotRow).where(ShotRow.job_id == shoot_id))
        assert sorted(s.file for s in shots) == sorted(i["file"] for i in local["images"])


def test_cancel_stops_the_ray_task_and_frees_its_gpu(
    studio: dict[str, Any], training_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from packshot.jobs.ray_runner import RaySettings

    # This job asks for the cluster's one (logical) GPU.
    monkeypatch.setattr(studio["runner"], "ray_settings", RaySettings(train_gpus=1))
    params = {**TRAINING, "steps": 5000, "photos_dir": str(training_set)}
    job_id = _enqueue(studio, "training", params)
    deadline = time.monotonic() + 120
    while "step" not in _events(studio, job_id):
        assert time.monotonic() < deadline, "the job never started training"
        time.sleep(0.2)
    assert ray.available_resources().get("GPU", 0.0) == 0.0  # held by the running task
    with studio["db"].session() as session:
        store.request_cancel(session, session.get(Job, job_id))
    job = _wait(studio, job_id, {"succeeded", "failed", "canceled"}, seconds=30)
    assert job.status == "canceled"
    while ray.available_resources().get("GPU", 0.0) < 1.0:
        assert time.monotonic() < deadline, "the canceled task never gave its GPU back"
        time.sleep(0.1)
    with studio["db"].session() as session:
        steps = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "step")
        ).all()
        assert 1 <= len(steps) < 5000


def test_placement_job_on_ray_matches_the_local_runner_and_resumes(
    studio: dict[str, Any], tmp_path: Path
) -> None:
    """A placement given no seed: the driver picks it and keeps it in the job's folder, the
    task places the photo shipped to it, and a later try that finds an earlier try's shots
    (whose recorded request names the API node's photo) keeps them instead of refusing."""
    import shutil

    from packshot.jobs.ray_runner import run_job_on_ray
    from placing_support import write_photo

    data: Path = studio["settings"].data_dir
    photo, _mask = write_photo(tmp_path / "photo")
    params = {
        "photo": str(photo),
        "descriptions": ["on a marble kitchen counter"],
        "count": 2,
        "num_inference_steps": 2,
        "model": "tiny-inpaint",
        "cutout_model": "grabcut",
    }
    job_id = _enqueue(studio, "placement", params)
    job = _wait(studio, job_id, {"succeeded", "failed", "canceled"})
    assert job.status == "succeeded", job.error
    workdir = data / "jobs" / job_id
    seed = int((workdir / "seed.txt").read_text())
    assert [s["seed"] for s in job.result["shots"]] == [seed, seed + 1]
    local = run_job(
        "placement", {**params, "seed": seed}, tmp_path / "local", lambda e: None, lambda: False
    )
    assert [s["path"] for s in job.result["shots"]] == [s["path"] for s in local["shots"]]
    for shot in local["shots"]:
        assert (workdir / shot["path"]).read_bytes() == (
            tmp_path / "local" / shot["path"]
        ).read_bytes()
    recorded = json.loads((workdir / "placements" / "place-request.json").read_text())
    assert recorded["photo"] == str(photo)  # the API node's path, not the task's
    with studio["db"].session() as session:
        shots = session.scalars(select(ShotRow).where(ShotRow.job_id == job_id))
        assert sorted(s.file for s in shots) == sorted(s["path"] for s in local["shots"])

    # What a lost worker leaves: the first shot delivered, nothing after it.
    again = tmp_path / "again"
    shutil.copytree(workdir, again)
    (again / "result.json").unlink()
    (again / "placements" / "place.json").unlink()
    last = again / job.result["shots"][1]["path"]
    last.unlink()
    last.with_suffix(".json").unlink()
    result = run_job_on_ray(
        "placement",
        params,
        again,
        lambda e: None,
        lambda: False,
        settings=studio["runner"].ray_settings,
    )
    assert [s["reused"] for s in result["shots"]] == [True, False]
    assert last.read_bytes() == (workdir / job.result["shots"][1]["path"]).read_bytes()
