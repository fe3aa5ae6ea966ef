"""The studio's jobs on Ray (`PACKSHOT_RUNNER=ray`), end to end: the job store's queue drained
by the Ray runner, with the same results as the local runner's `run_job`."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from sqlalchemy import select

pytest.importorskip("ray")

from packshot.jobs import store  # noqa: E402
from packshot.jobs.execute import run_job  # noqa: E402
from packshot.jobs.kinds import ShootParams, TrainingParams, to_json  # noqa: E402
from packshot.jobs.models import Job, Product, ShotRow  # noqa: E402
from packshot.jobs.runner import make_runner  # noqa: E402
from packshot.jobs.settings import ServiceSettings  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAINING = {
    "model": "tiny",
    "class_word": "backpack",
    "preset": "quick",
    "max_train_steps": 4,
    "resolution": 64,
    "checkpointing_steps": 2,
    "validation_steps": 0,
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


def _enqueue(studio: dict[str, Any], kind: str, params: Any) -> str:
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


@pytest.mark.budget(20)  # a training and a shoot on Ray, and the same two here to compare
def test_training_and_shoot_jobs_on_ray_match_the_local_runner(
    studio: dict[str, Any], training_set: Path, tmp_path: Path
) -> None:
    assert studio["runner"].name == "ray"
    data: Path = studio["settings"].data_dir

    # 1. A training job through the queue, on Ray; the same job run locally.
    params = TrainingParams(**TRAINING, photos_dir=str(training_set))
    train_id = _enqueue(studio, "training", params)
    job = _wait(studio, train_id, {"succeeded", "failed", "canceled"})
    assert job.status == "succeeded", job.error
    local = run_job("training", params, tmp_path / "local-train", lambda e: None, lambda: False)
    assert job.result == {**to_json(local), "timings": job.result["timings"]}
    weights = "model/pytorch_lora_weights.safetensors"
    a, b = (
        load_file(str(data / "jobs" / train_id / weights)),
        load_file(str(tmp_path / "local-train" / weights)),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    kinds = _events(studio, train_id)
    assert "ray_task" in kinds and "checkpoint" in kinds and "done" in kinds

    # 2. A judged shoot of that model given no seed, on Ray: the driver picks the seed and
    #    keeps it in the job's folder; locally with that seed, the same images byte for byte.
    shoot = ShootParams(
        model_dir=str(data / "jobs" / train_id / "model"),
        descriptions=["{product} on a marble table"],
        count=2,
        num_inference_steps=2,
    )
    shoot_id = _enqueue(studio, "shoot", shoot)
    job = _wait(studio, shoot_id, {"succeeded", "failed", "canceled"})
    assert job.status == "succeeded", job.error
    seed = int((data / "jobs" / shoot_id / "seed.txt").read_text())
    local = run_job(
        "shoot", replace(shoot, seed=seed), tmp_path / "local-shoot", lambda e: None, lambda: False
    )
    result = store.job_result(job)
    assert [i.seed for i in result.images] == [seed, seed + 1]
    assert [i.file for i in result.images] == [i.file for i in local.images]
    for image in local.images:
        on_ray = (data / "jobs" / shoot_id / image.file).read_bytes()
        assert on_ray == (tmp_path / "local-shoot" / image.file).read_bytes()
    assert [i.scores for i in result.images] == [i.scores for i in local.images]
    recorded = json.loads((data / "jobs" / shoot_id / "shots" / "shoot.json").read_text())
    assert recorded["model_dir"] == shoot.model_dir  # the API node's path, not the task's
    with studio["db"].session() as session:
        shots = session.scalars(select(ShotRow).where(ShotRow.job_id == shoot_id))
        assert sorted(s.file for s in shots) == sorted(i.file for i in local.images)


@pytest.mark.budget(15)  # an instant shoot of one 2-step tiny-flux2 shot on Ray, and here
def test_instant_shoot_job_on_ray_matches_the_local_runner(
    studio: dict[str, Any], dreambench: Path, tmp_path: Path
) -> None:
    """The API's instant shoot (no training: the product's photos, the best of them as
    references of tiny-flux2) through the queue on Ray: the photos travel, intake picks the
    references on the worker, and the images, scores and recorded references are the local
    runner's (this machine's paths)."""
    photos = str(dreambench / "backpack")
    instant = ShootParams(
        model_dir=None,
        base="tiny-flux2",
        product="bag",
        photos_dir=photos,
        reference_dir=photos,
        descriptions=["{product} on a wooden table"],
        count=1,
        num_inference_steps=2,
        seed=3,
    )
    job_id = _enqueue(studio, "shoot", instant)
    job = _wait(studio, job_id, {"succeeded", "failed", "canceled"})
    assert job.status == "succeeded", job.error
    assert "ray_task" in _events(studio, job_id)
    local = run_job("shoot", instant, tmp_path / "local", lambda e: None, lambda: False)
    result = store.job_result(job)
    assert [i.file for i in result.images] == [i.file for i in local.images]
    data: Path = studio["settings"].data_dir
    for image in local.images:
        on_ray = (data / "jobs" / job_id / image.file).read_bytes()
        assert on_ray == (tmp_path / "local" / image.file).read_bytes()
    assert [i.scores for i in result.images] == [i.scores for i in local.images]
    recorded = json.loads((data / "jobs" / job_id / "shots" / "shoot.json").read_text())
    here = json.loads((tmp_path / "local" / "shots" / "shoot.json").read_text())
    references = recorded["settings"]["references"]
    assert references == here["settings"]["references"] and references
    assert all(r.startswith(photos + "/") for r in references)  # not the worker's copy
