"""The studio's REST API with its jobs on Ray (`PACKSHOT_RUNNER=ray`): train and shoot give
the local runner's results, and cancel from the API stops the Ray task and frees its GPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

pytest.importorskip("ray")
pytest.importorskip("packshot.api.app")  # the studio's API (issue 6)
api_support = pytest.importorskip("api_support")  # its test helpers, beside this file

from fastapi.testclient import TestClient  # noqa: E402

from packshot.jobs import store  # noqa: E402
from packshot.jobs.execute import run_job  # noqa: E402
from packshot.jobs.runner import make_runner  # noqa: E402
from packshot.jobs.settings import ServiceSettings  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAINING = {
    "model": "tiny",
    "preset": "quick",
    "steps": 4,
    "resolution": 64,
    "checkpoint_every": 2,
    "sample_every": 2,
    "learning_rate": 0.001,
    "seed": 3,
}


@pytest.fixture(scope="module")
def studio(ray_local: object, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from packshot.api.app import create_app
    from packshot.api.settings import ApiSettings

    data = tmp_path_factory.mktemp("studio-api-ray")
    url = f"sqlite:///{data / 'packshot.db'}"
    service = ServiceSettings(data_dir=data, database_url=url, runner="ray", cache_dir=cache_dir)
    settings = ApiSettings(service=service, rate_limit=100000)
    mp = pytest.MonkeyPatch()
    mp.setenv("PACKSHOT_RAY_TRAIN_GPUS", "0")
    mp.setenv("PACKSHOT_RAY_SHOOT_GPUS", "0")
    runner = make_runner(service)  # what `packshot serve` does with PACKSHOT_RUNNER=ray
    mp.undo()
    db = store.Database(url)
    with TestClient(create_app(settings)) as client:
        with db.session() as session:
            merchant, key = store.create_merchant(session, "Merchant A")
        runner.start()
        try:
            yield {
                "a": api_support.Merchant(merchant.id, key, merchant.webhook_secret, client),
                "runner": runner,
                "data": data,
            }
        finally:
            runner.stop()
            db.dispose()


def _wait(merchant: Any, url: str, statuses: tuple[str, ...], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = merchant.get(url).json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"{url} still {body['status']}: {body}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def product(studio) -> dict:
    a = studio["a"]
    body = a.post("/v1/products", json={"name": "red backpack", "class_name": "backpack"}).json()
    assert api_support.upload(a, body["id"], api_support.example_photos()).status_code == 201
    return body


def test_train_and_shoot_through_the_api_on_ray_match_the_local_runner(
    studio, product, tmp_path: Path
) -> None:
    a = studio["a"]
    assert studio["runner"].name == "ray"
    created = a.post(f"/v1/products/{product['id']}/trainings", json=TRAINING).json()
    training = _wait(a, f"/v1/trainings/{created['id']}", ("succeeded", "failed"))
    assert training["status"] == "succeeded", training
    events = a.get(f"/v1/trainings/{created['id']}/events").text
    assert "event: checkpoint" in events and "event: sample" in events
    lora = a.get(f"/v1/trainings/{created['id']}/files/pytorch_lora_weights.safetensors")
    assert lora.status_code == 200

    # The same job with the local runner's `run_job`, on the photos the API stored.
    with store.Database(f"sqlite:///{studio['data'] / 'packshot.db'}").session() as session:
        from packshot.jobs.models import Job

        params = dict(session.get(Job, created["id"]).params)
    local = run_job("training", params, tmp_path / "train", lambda e: None, lambda: False)
    ours = tmp_path / "ours.safetensors"
    ours.write_bytes(lora.content)
    expected = load_file(str(tmp_path / "train" / "model" / "pytorch_lora_weights.safetensors"))
    got = load_file(str(ours))
    assert expected.keys() == got.keys() and all((expected[k] == got[k]).all() for k in got)
    assert training["final_step"] == local["final_step"] == TRAINING["steps"]

    request = {"descriptions": ["{product} on a marble table"], "n": 2, "steps": 2, "seed": 7}
    created = a.post(f"/v1/products/{product['id']}/shoots", json=request).json()
    shoot = _wait(a, f"/v1/shoots/{created['id']}", ("succeeded", "failed"))
    assert shoot["status"] == "succeeded", shoot
    with store.Database(f"sqlite:///{studio['data'] / 'packshot.db'}").session() as session:
        from packshot.jobs.models import Job

        params = dict(session.get(Job, created["id"]).params)
    params["model_dir"] = str(tmp_path / "train" / "model")
    local = run_job("shoot", params, tmp_path / "shoot", lambda e: None, lambda: False)
    assert len(shoot["shots"]) == len(local["images"]) == 2
    for shot, image in zip(shoot["shots"], local["images"], strict=True):
        served = a.get(f"/v1/shots/{shot['id']}/image")
        assert served.status_code == 200
        assert served.content == (tmp_path / "shoot" / image["file"]).read_bytes()


def test_cancel_from_the_api_stops_the_ray_task_and_frees_its_gpu(studio, product) -> None:
    import ray

    from packshot.jobs.ray_runner import RaySettings

    a = studio["a"]
    studio["runner"].ray_settings = RaySettings(train_gpus=1, shoot_gpus=0)
    try:
        created = a.post(
            f"/v1/products/{product['id']}/trainings", json={**TRAINING, "steps": 5000}
        ).json()
        deadline = time.monotonic() + 120
        while a.get(f"/v1/trainings/{created['id']}").json()["progress"].get("step") is None:
            assert time.monotonic() < deadline, "the training never started"
            time.sleep(0.3)
        assert ray.available_resources().get("GPU", 0.0) == 0.0  # the task holds the GPU
        assert a.post(f"/v1/trainings/{created['id']}/cancel").status_code == 200
        final = _wait(a, f"/v1/trainings/{created['id']}", ("canceled", "failed"), timeout=60)
        assert final["status"] == "canceled"
        while ray.available_resources().get("GPU", 0.0) < 1.0:
            assert time.monotonic() < deadline, "the canceled task never gave its GPU back"
            time.sleep(0.1)
        assert final["progress"].get("step", 0) < 5000
    finally:
        studio["runner"].ray_settings = RaySettings(train_gpus=0, shoot_gpus=0)
