"""The studio's REST API against the real app, a real worker process and a real database.

The tests run on SQLite. Where the database matters, the store's own tests run on PostgreSQL too
(test_jobs_store.py), and so does one end to end here: a training in the worker, the worker
killed and the run resumed, when PACKSHOT_TEST_POSTGRES_URL names a server (`.ci/run` starts
one; see the README).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from api_support import ENV_POSTGRES, example_photos, postgres_database, studio_for, upload
from packshot.jobs import store
from packshot.jobs.webhooks import verify
from packshot.models.families import INSTANT_MODEL, TRAINING_MODEL, get_family
from packshot.train import load_presets as load_training_presets

TRAINING = {
    "model": "tiny",
    "preset": "quick",
    "max_train_steps": 4,
    "resolution": 64,
    "checkpointing_steps": 2,
    "validation_steps": 2,
    "learning_rate": 0.001,
}


@pytest.fixture(scope="module")
def studio(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("studio-sqlite")
    with studio_for(f"sqlite:///{data / 'packshot.db'}", data, cache_dir) as running:
        yield running


@pytest.fixture(scope="module")
def postgres_studio(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    if not os.environ.get(ENV_POSTGRES):
        pytest.skip(f"{ENV_POSTGRES} is not set (.ci/run sets it; see the README)")
    data = tmp_path_factory.mktemp("studio-postgres")
    with postgres_database() as url, studio_for(url, data, cache_dir) as running:
        yield running


def _product(studio) -> dict:
    created = studio.a.post("/v1/products", json={"name": "red backpack", "class_name": "backpack"})
    assert created.status_code == 201, created.text
    body = created.json()
    result = upload(studio.a, body["id"], example_photos())
    assert result.status_code == 201, result.text
    return body


@pytest.fixture(scope="module")
def product(studio) -> dict:
    return _product(studio)


@pytest.fixture(scope="module")
def training(studio, product) -> dict:
    created = studio.a.post(
        f"/v1/products/{product['id']}/trainings",
        json={**TRAINING, "webhook": studio.receiver.url},
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "queued"
    return studio.wait(studio.a, f"/v1/trainings/{created.json()['id']}", ("succeeded", "failed"))


SHOOT_PROFILES = ["amazon-main", "shopify"]


@pytest.fixture(scope="module")
def shoot(studio, product, training) -> dict:
    """Two drawn shots, delivered to Amazon's main image (which refuses them) and Shopify."""
    created = studio.a.post(
        f"/v1/products/{product['id']}/shoots",
        json={
            "descriptions": ["{product} on a marble table"],
            "count": 2,
            "num_inference_steps": 2,
            "seed": 7,
            "profiles": SHOOT_PROFILES,
        },
    )
    assert created.status_code == 201, created.text
    return studio.wait(studio.a, f"/v1/shoots/{created.json()['id']}", ("succeeded", "failed"))


PLACEMENT = {
    "descriptions": ["on a marble kitchen counter, soft morning light"],
    "presets": ["studio"],
    "count": 2,
    "num_inference_steps": 2,
    "seed": 3,
    "aspect": "4:5",
    "model": "tiny-inpaint",
}


@pytest.fixture(scope="module")
def placement(studio, product) -> dict:
    """Pixel-true mode on one of the product's DreamBench photos, through the real worker."""
    photo = studio.a.get(f"/v1/products/{product['id']}/photos").json()["data"][0]
    created = studio.a.post(
        f"/v1/products/{product['id']}/placements",
        json={**PLACEMENT, "photo_id": photo["id"], "webhook": studio.receiver.url},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "queued" and body["photo_id"] == photo["id"]
    assert "photo" not in body["request"]  # the merchant's request, never a server path
    return studio.wait(studio.a, f"/v1/placements/{body['id']}", ("succeeded", "failed"))


# -- auth and errors --------------------------------------------------------------------------


def test_no_key_wrong_key_and_errors_are_json(studio) -> None:
    response = studio.client.get("/v1/products")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    response = studio.client.get("/v1/products", headers={"Authorization": "Bearer pk_live_no"})
    assert response.status_code == 401
    response = studio.client.get("/v1/products", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401 and "Bearer" in response.json()["error"]["message"]
    response = studio.a.get("/v1/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = studio.a.post("/v1/products", json={"name": "", "class_name": "bag"})
    assert response.status_code == 422
    assert "`name`" in response.json()["error"]["message"]
    response = studio.a.post(
        "/v1/products", content=b"{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_security_headers_on_api_and_page(studio) -> None:
    api = studio.client.get("/v1/products")  # an error response gets them too
    page = studio.client.get("/")
    for response in (api, page):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert api.headers["cache-control"] == "no-store"
    assert page.status_code == 200 and page.headers.get("cache-control") != "no-store"


def test_openapi_schema_is_served(studio) -> None:
    schema = studio.client.get("/openapi.json").json()
    assert "/v1/products/{product_id}/trainings" in schema["paths"]
    assert "multipart/form-data" in json.dumps(schema["paths"]["/v1/products/{product_id}/photos"])


def test_products_crud(studio) -> None:
    created = studio.a.post("/v1/products", json={"name": " blue  mug ", "class_name": "mug"})
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "blue mug" and body["photo_count"] == 0
    assert body["id"] in [p["id"] for p in studio.a.get("/v1/products").json()["data"]]
    assert studio.a.get(f"/v1/products/{body['id']}").json()["class_name"] == "mug"
    assert studio.a.delete(f"/v1/products/{body['id']}").status_code == 204
    assert studio.a.get(f"/v1/products/{body['id']}").status_code == 404
    assert studio.a.post(f"/v1/products/{body['id']}/trainings", json=TRAINING).status_code == 404


# -- photos -----------------------------------------------------------------------------------


def test_upload_judges_each_file_as_intake_does(studio, product) -> None:
    from packshot.intake import check_files

    fresh = studio.a.post("/v1/products", json={"name": "bag 2", "class_name": "backpack"}).json()
    photos = example_photos()[:3]
    files = [*photos, ("notes.txt", b"not a photo at all"), (".DS_Store", b"\0\0")]
    response = upload(studio.a, fresh["id"], files)
    assert response.status_code == 201, response.text
    body = response.json()
    expected = check_files(files)
    by_name = {r["file_name"]: r for r in body["results"]}
    for accepted in expected.accepted:
        assert by_name[accepted.file]["status"] == "accepted"
        assert by_name[accepted.file]["photo"]["id"].startswith("pho_")
    for rejected in expected.rejected:
        assert by_name[rejected.file]["status"] == "rejected"
        assert by_name[rejected.file]["reason"] == rejected.reason
    assert by_name[".DS_Store"]["status"] == "skipped"
    assert body["accepted"] == 3 and body["photo_count"] == 3
    # Stored under server ids, re-encoded as PNG without the uploaded bytes' metadata.
    listed = studio.a.get(f"/v1/products/{fresh['id']}/photos").json()["data"]
    image = studio.a.get(listed[0]["url"])
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    stored = list((studio.settings.service.data_dir / "products" / fresh["id"]).rglob("*.png"))
    assert sorted(p.stem for p in stored) == sorted(p["id"] for p in listed)
    # A file name is a label, never a path.
    sneaky = upload(studio.a, fresh["id"], [("../../../etc/passwd.jpg", photos[0][1])])
    assert sneaky.json()["results"][0]["file_name"] == "passwd.jpg"
    assert not (studio.settings.service.data_dir / "etc").exists()


def test_upload_limits(studio, product) -> None:
    too_big = b"\xff\xd8" + b"\0" * int(3.5 * 2**20)
    response = upload(studio.a, product["id"], [("huge.jpg", too_big)])
    assert response.status_code == 413 and "huge.jpg" in response.json()["error"]["message"]
    response = studio.a.post(f"/v1/products/{product['id']}/photos", json={"files": []})
    assert response.status_code == 415
    many = [(f"{i}.jpg", b"\xff\xd8" + b"\0" * (2 * 2**20)) for i in range(7)]
    response = upload(studio.a, product["id"], many)  # 14 MiB > 12 MiB a request
    assert response.status_code == 413
    assert studio.a.get(f"/v1/products/{product['id']}").json()["photo_count"] == 6


def test_report(studio, product) -> None:
    report = studio.a.get(f"/v1/products/{product['id']}/report").json()
    assert report["verdict"] in ("usable", "ready", "not enough")
    assert len(report["accepted"]) == 6 and report["advice"]
    assert "directory" not in report
    assert {p["file"] for p in report["accepted"]} == {f"{i:02d}.jpg" for i in range(6)}


# -- trainings --------------------------------------------------------------------------------


@pytest.mark.budget(15)  # its setup: the module's training, the worker's first job
def test_training_runs_in_the_worker(studio, training) -> None:
    assert training["status"] == "succeeded", training
    assert training["final_step"] == 4
    names = {f["name"] for f in training["files"]}
    assert {"pytorch_lora_weights.safetensors", "packshot.json", "README.md"} <= names
    assert any(n.startswith("samples/") for n in names)
    lora = studio.a.get(f"/v1/trainings/{training['id']}/files/pytorch_lora_weights.safetensors")
    assert lora.status_code == 200 and len(lora.content) > 1000
    for bad in ("../../packshot.db", "checkpoints/step-000002/state.json", "nope.txt"):
        assert studio.a.get(f"/v1/trainings/{training['id']}/files/{bad}").status_code == 404


def test_a_file_of_a_running_training_survives_the_final_rename(studio, training) -> None:
    """A running training's file is sent from where it was when asked for, even when the run
    renames `model.partial` to `model` before the response goes out (it was a 500: the path
    was opened only when the body was sent)."""
    import asyncio

    from packshot.api.routes.jobs import MODEL_DIR, training_file
    from packshot.artifacts.product_model import work_dir_for
    from packshot.jobs.models import Job, Merchant

    root = store.job_dir(studio.settings.service.data_dir, _job_row(studio, training["id"]))
    final = root / MODEL_DIR
    partial = work_dir_for(final)
    expected = (final / "packshot.json").read_bytes()
    with studio.db.session() as session:
        session.get(Job, training["id"]).status = "running"
        session.commit()
    final.rename(partial)  # back to the run in progress
    try:
        with studio.db.session() as session:
            merchant = session.get(Merchant, studio.a.id)
            job = session.get(Job, training["id"])
            response = training_file(job.id, "packshot.json", session, merchant, studio.settings)
        partial.rename(final)  # the run finishes before the body is sent

        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "headers": [], "asgi": {"spec_version": "2.4"}}
        asyncio.run(response(scope, receive, send))
        assert sent[0]["status"] == 200
        assert b"".join(m.get("body", b"") for m in sent[1:]) == expected
    finally:
        if partial.exists():
            partial.rename(final)
        with studio.db.session() as session:
            session.get(Job, training["id"]).status = "succeeded"
            session.commit()


def _job_row(studio, job_id: str):
    from packshot.jobs.models import Job

    with studio.db.session() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
        return job


def test_training_events_stream(studio, training) -> None:
    with studio.client.stream(
        "GET",
        f"/v1/trainings/{training['id']}/events",
        headers={"Authorization": f"Bearer {studio.a.key}"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    kinds = [
        line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event:")
    ]
    assert kinds[0] == "start" or "start" in kinds
    assert "step" in kinds and "checkpoint" in kinds and "sample" in kinds
    assert kinds[-2:] == ["done", "end"]
    samples = [
        json.loads(line.removeprefix("data: "))
        for line, prev in zip(text.splitlines()[1:], text.splitlines(), strict=False)
        if prev == "event: sample"
    ]
    url = samples[-1]["urls"][0]
    assert studio.a.get(url).status_code == 200


def test_webhooks_are_signed_and_cover_the_job(studio, training) -> None:
    import time

    def this_jobs() -> list[dict]:
        return [r for r in studio.receiver.received if r["json"]["data"]["id"] == training["id"]]

    # This training's own `job.succeeded` (not another job's), within 30 s: deliveries go out
    # concurrently, so on a busy machine the last one can land after the job's end.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "job.succeeded" in [r["json"]["type"] for r in this_jobs()]:
            break
        time.sleep(0.2)
    # In the events' order (their timestamps), not the order in which they arrived.
    mine = sorted(this_jobs(), key=lambda r: r["json"]["timestamp"])
    types = [r["json"]["type"] for r in mine]
    assert types[0] == "job.started" and types[-1] == "job.succeeded"
    assert "job.progress" in types
    from datetime import datetime

    stamps = [
        datetime.fromisoformat(r["json"]["timestamp"])
        for r in mine
        if r["json"]["type"] == "job.progress"
    ]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(gap >= 0.5 for gap in gaps), gaps  # progress at most every 500 ms
    for delivery in mine:
        assert verify(studio.a.secret, delivery["headers"], delivery["body"])
        assert not verify(studio.b.secret, delivery["headers"], delivery["body"])


# On PostgreSQL when the suite has one (.ci/run starts it), else on SQLite. The kill and the
# resume are the runner's and the training loop's, the same over both; what the store does for
# them (claims, a dead worker's job queued again) runs on both dialects in test_jobs_store.py.
KILL_DATABASE = "postgres" if os.environ.get(ENV_POSTGRES) else "sqlite"


@pytest.mark.budget(25)  # two workers import the model stack; PostgreSQL's studio starts too
def test_killed_worker_resumes_the_training(request: pytest.FixtureRequest) -> None:
    """Kill the worker process (SIGKILL) after the first checkpoint: the runner starts a new
    one, which resumes the run from that checkpoint and finishes it with nothing lost. The one
    test of the whole path (API, queue, worker, events) on PostgreSQL."""
    import signal
    import time

    from packshot.jobs.models import JobEvent

    if KILL_DATABASE == "sqlite":
        studio, product = request.getfixturevalue("studio"), request.getfixturevalue("product")
    else:
        studio = request.getfixturevalue("postgres_studio")
        product = _product(studio)

    steps = 12  # the kill comes a step or two after the first checkpoint (step 2)
    created = studio.a.post(
        f"/v1/products/{product['id']}/trainings",
        json={
            **TRAINING,
            "max_train_steps": steps,
            "validation_steps": 0,
            "checkpointing_steps": 2,
        },
    ).json()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with studio.db.session() as session:
            from sqlalchemy import select

            kinds = session.scalars(
                select(JobEvent.type).where(JobEvent.job_id == created["id"])
            ).all()
        if "checkpoint" in kinds:
            break
        time.sleep(0.05)
    assert "checkpoint" in kinds
    old = studio.runner.process
    os.kill(old.pid, signal.SIGKILL)
    old.wait()
    assert "done" not in kinds  # killed mid-run
    final = studio.wait(studio.a, f"/v1/trainings/{created['id']}", ("succeeded", "failed"))
    assert final["status"] == "succeeded", final
    assert studio.runner.process.pid != old.pid and studio.runner.restarts >= 1
    assert final["final_step"] == steps
    assert final["resumed_from"] is not None and final["resumed_from"] >= 2
    events = studio.a.get(f"/v1/trainings/{created['id']}/events").text
    assert "event: resume" in events


def test_cancel(studio, product) -> None:
    created = studio.a.post(
        f"/v1/products/{product['id']}/trainings", json={**TRAINING, "max_train_steps": 500}
    ).json()
    canceled = studio.a.post(f"/v1/trainings/{created['id']}/cancel")
    assert canceled.status_code == 200
    final = studio.wait(studio.a, f"/v1/trainings/{created['id']}", ("canceled",), timeout=120)
    assert final["status"] == "canceled"
    again = studio.a.post(f"/v1/trainings/{created['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_training_needs_photos_and_valid_options(studio) -> None:
    empty = studio.a.post("/v1/products", json={"name": "empty", "class_name": "bag"}).json()
    response = studio.a.post(f"/v1/products/{empty['id']}/trainings", json=TRAINING)
    assert response.status_code == 409
    for bad in ({"resolution": 65}, {"max_train_steps": 0}, {"model": "/etc/passwd"}, {"bogus": 1}):
        response = studio.a.post(f"/v1/products/{empty['id']}/trainings", json={**TRAINING, **bad})
        assert response.status_code == 422, bad


# -- shoots -----------------------------------------------------------------------------------


def test_shoot_delivers_scored_shots(studio, shoot) -> None:
    assert shoot["status"] == "succeeded", shoot
    assert len(shoot["shots"]) == 2
    for shot in shoot["shots"]:
        assert shot["scores"]["dino"] is not None
        assert shot["product_missing"] == (shot["scores"]["present"] is False)
        image = studio.a.get(shot["url"])
        assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
    archive = zipfile.ZipFile(io.BytesIO(studio.a.get(shoot["download_url"]).content))
    names = archive.namelist()
    assert sum(n.endswith(".png") and n != "contact-sheet.png" for n in names) == 2
    assert "shoot.json" in names
    assert studio.a.get(shoot["contact_sheet_url"]).status_code == 200


def test_shoot_delivers_to_marketplaces(studio, shoot) -> None:
    """A shoot with `profiles`: each shot's verdicts as badges (a drawn shot is never Amazon's
    main image, and its badge says why), the counts, and the exports of `shots/delivery/`."""
    from urllib.parse import unquote

    assert shoot["request"]["profiles"] == SHOOT_PROFILES
    for shot in shoot["shots"]:
        badges = {b["profile"]: b for b in shot["badges"]}
        assert list(badges) == SHOOT_PROFILES
        assert badges["amazon-main"]["status"] == "fail"
        assert badges["amazon-main"]["label"] == "Amazon main"
        assert "drawn by the model" in badges["amazon-main"]["title"]
        assert badges["shopify"]["status"] in ("pass", "fixed")  # enlarged to Shopify's size
    delivery = shoot["delivery"]
    assert delivery["profiles"] == SHOOT_PROFILES
    assert delivery["compliance"]["amazon-main"]["fail"] == 2
    assert delivery["compliance"]["shopify"]["fail"] == 0
    folder = Path(studio.settings.service.data_dir) / "jobs" / shoot["id"] / "shots" / "delivery"
    base = "https://cdn.example.com/shop/"
    exported = studio.a.get(delivery["exports"]["shopify"], params={"image_base_url": base})
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["Image Position"] for r in rows] == ["1", "2"]
    assert {r["Handle"] for r in rows} == {"red-backpack"}  # the product's name, as trained
    for row in rows:
        assert row["Image Src"].startswith(base)
        assert (folder / unquote(row["Image Src"].removeprefix(base))).is_file()
    packed = zipfile.ZipFile(io.BytesIO(studio.a.get(delivery["exports"]["zip"]).content))
    assert "delivery.json" in packed.namelist()
    assert sum(n.startswith("red-backpack/shopify/") for n in packed.namelist()) == 2
    assert studio.a.get(delivery["exports"]["google"]).status_code == 422  # no image_base_url


@pytest.mark.budget(30)  # intake's pick, one 2-step tiny-flux2 shot and its judges, in the worker
def test_instant_shoot_needs_photos_not_training(studio) -> None:
    merchant = studio.a
    product = merchant.post("/v1/products", json={"name": "red backpack", "class_name": "bag"})
    url = f"/v1/products/{product.json()['id']}/shoots"
    instant = {"mode": "instant", "descriptions": ["{product} on a table"], "count": 1}
    early = merchant.post(url, json={**instant, "base": "tiny-flux2"})
    assert early.status_code == 409 and "photos" in early.text  # nothing to refer to yet
    assert upload(merchant, product.json()["id"], example_photos()).status_code == 201
    refused = merchant.post(url, json={**instant, "base": "tiny"})
    assert refused.status_code == 422 and "FLUX.2 [klein]" in refused.text
    body = {**instant, "base": "tiny-flux2", "num_inference_steps": 2, "seed": 4}
    created = merchant.post(url, json=body)
    assert created.status_code == 201, created.text
    done = studio.wait(merchant, f"/v1/shoots/{created.json()['id']}", ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    assert done["request"]["mode"] == "instant" and done["request"]["base"] == "tiny-flux2"
    (shot,) = done["shots"]
    assert shot["scores"]["dino"] is not None  # judged against the product's photos
    assert merchant.post(url, json={"descriptions": ["x"]}).status_code == 409  # trained: none


def test_shoot_checks_its_request(studio, product) -> None:
    url = f"/v1/products/{product['id']}/shoots"
    assert studio.a.post(url, json={"descriptions": []}).status_code == 422
    assert studio.a.post(url, json={"descriptions": ["x"], "aspect": "2:7"}).status_code == 422
    response = studio.a.post(url, json={"descriptions": ["x"], "presets": ["nope"]})
    assert response.status_code == 422 and "nope" in response.json()["error"]["message"]
    for body in ({"descriptions": ["x"]}, {"mode": "instant", "descriptions": ["x"]}):
        response = studio.a.post(url, json={**body, "profiles": ["shopify", "walmart"]})
        message = response.json()["error"]["message"]
        assert response.status_code == 422 and "`profiles`" in message, message
        assert "Unknown marketplace profile walmart: choose from amazon-main" in message
    assert (
        studio.a.post(url, json={"descriptions": ["x"], "training_id": "trn_x"}).status_code == 404
    )


# -- placements (pixel-true mode) --------------------------------------------------------------


def test_placement_keeps_the_products_pixels(studio, product, placement) -> None:
    import numpy as np
    from PIL import Image

    from packshot.place import GUARANTEE_BAND_PX, compose
    from packshot.shoot.sizes import size_for
    from placing_support import erode_square

    assert placement["status"] == "succeeded", placement
    assert placement["cutout"]["source"] == "grabcut"  # no model offline: the fallback
    assert any("GrabCut" in w for w in placement["warnings"])
    cutout = studio.a.get(placement["cutout"]["url"])
    assert cutout.status_code == 200
    rgba = np.asarray(Image.open(io.BytesIO(cutout.content)).convert("RGBA"))
    pixels, mask = rgba[..., :3], (rgba[..., 3] > 127).astype(np.uint8)
    assert 0.01 < mask.mean() < 0.9
    shots = placement["shots"]
    assert [s["seed"] for s in shots] == [3, 4]
    for shot in shots:
        assert shot["composition"] == "hero" and shot["preset"] == "studio"
        assert shot["scores"]["dino"] is not None
        assert shot["product_missing"] == (shot["scores"]["present"] is False)
        image = studio.a.get(shot["url"])
        assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
        out = np.asarray(Image.open(io.BytesIO(image.content)).convert("RGB"))
        assert out.shape[1::-1] == (shot["width"], shot["height"])
        assert (shot["width"], shot["height"]) == size_for("4:5", 64)  # tiny-inpaint's size
        # The guarantee, on what the API delivers: inside the product's mask less the band,
        # the product's own pixels as placed.
        placed, _ = compose.place_product(
            pixels, mask, (shot["width"], shot["height"]), compose.get_composition("hero")
        )
        x, y, w, h = placed.box
        assert shot["placement"] == {
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "scale": placed.to_dict()["scale"],
        }
        inner = erode_square(placed.mask, GUARANTEE_BAND_PX)
        assert inner.sum() > 50
        assert np.array_equal(out[inner], placed.rgb[inner])
    archive = zipfile.ZipFile(io.BytesIO(studio.a.get(placement["download_url"]).content))
    names = archive.namelist()
    assert sum(n.endswith(".png") and "place-" in n for n in names) == 2
    assert {"place.json", "scores.json", "contact-sheet.png", "cutout.png"} <= set(names)
    assert studio.a.get(placement["contact_sheet_url"]).status_code == 200
    listed = studio.a.get(f"/v1/products/{product['id']}/placements").json()
    assert placement["id"] in [p["id"] for p in listed["data"]]


def test_placement_delivery_exports_for_the_shop(studio, placement) -> None:
    """The studio's export download: a job's marketplace delivery (`delivery/` in its output
    folder, as a catalogue shoot writes it) as the shop's CSV, feed or zip."""
    import csv
    from urllib.parse import unquote

    from packshot.deliver import deliver_run
    from packshot.deliver.report import DELIVERY_DIR

    url = f"/v1/placements/{placement['id']}/exports"
    base = "https://cdn.example.com/d/"
    missing = studio.a.get(f"{url}/shopify", params={"image_base_url": base})
    assert missing.status_code == 409 and "no marketplace delivery" in missing.text
    assert placement["delivery"] is None  # asked for no profiles
    shots = Path(studio.settings.service.data_dir) / "jobs" / placement["id"] / "placements"
    deliver_run(shots, ["shopify", "amazon-main"])  # as a placement with profiles does

    response = studio.a.get(f"{url}/shopify", params={"image_base_url": base})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["Image Position"] for r in rows] == ["1", "2"]
    for row in rows:
        assert (shots / DELIVERY_DIR / unquote(row["Image Src"].removeprefix(base))).is_file()
    packed = studio.a.get(f"{url}/zip")
    assert "delivery.json" in zipfile.ZipFile(io.BytesIO(packed.content)).namelist()
    no_base = studio.a.get(f"{url}/google")
    assert no_base.status_code == 422 and "image_base_url" in no_base.json()["error"]["message"]
    assert studio.a.get(f"{url}/csv").status_code == 422
    assert studio.b.get(f"{url}/zip").status_code == 404  # another merchant's job


def test_placement_events_and_webhooks(studio, placement) -> None:
    import time

    events = studio.a.get(f"/v1/placements/{placement['id']}/events").text
    kinds = [
        line.removeprefix("event: ") for line in events.splitlines() if line.startswith("event:")
    ]
    assert "cutout" in kinds and kinds.count("shot") == 2 and kinds[-2:] == ["done", "end"]
    assert str(studio.settings.service.data_dir) not in events  # no server paths leave
    deadline = time.monotonic() + 10
    mine: list = []
    while time.monotonic() < deadline:
        mine = [r for r in studio.receiver.received if r["json"]["data"]["id"] == placement["id"]]
        if mine and mine[-1]["json"]["type"] == "job.succeeded":
            break
        time.sleep(0.2)
    assert mine[0]["json"]["type"] == "job.started" and mine[-1]["json"]["type"] == "job.succeeded"
    assert mine[-1]["json"]["data"]["url"] == f"/v1/placements/{placement['id']}"
    assert all(verify(studio.a.secret, d["headers"], d["body"]) for d in mine)


def test_placement_checks_its_request(studio, product) -> None:
    url = f"/v1/products/{product['id']}/placements"
    photo = studio.a.get(f"/v1/products/{product['id']}/photos").json()["data"][0]
    good = {**PLACEMENT, "photo_id": photo["id"]}

    def error(body: dict, status: int) -> str:
        response = studio.a.post(url, json=body)
        assert response.status_code == status, (body, response.text)
        return response.json()["error"]["message"]

    assert "photo" in error({**good, "photo_id": "pho_nope"}, 404)
    other = studio.a.post("/v1/products", json={"name": "mug", "class_name": "mug"}).json()
    upload(studio.a, other["id"], example_photos()[:1])
    other_photo = studio.a.get(f"/v1/products/{other['id']}/photos").json()["data"][0]
    error({**good, "photo_id": other_photo["id"]}, 404)  # another product's photo
    # A photo a placement is taking the product from stays until that placement is over.
    busy = studio.a.post(
        f"/v1/products/{other['id']}/placements",
        json={**PLACEMENT, "photo_id": other_photo["id"], "count": 1},
    ).json()
    response = studio.a.delete(f"/v1/photos/{other_photo['id']}")
    assert response.status_code == 409 and "placement" in response.json()["error"]["message"]
    studio.wait(studio.a, f"/v1/placements/{busy['id']}", ("succeeded", "failed"))
    assert studio.a.delete(f"/v1/photos/{other_photo['id']}").status_code == 204
    error({**good, "descriptions": []}, 422)
    assert "blank" in error({**good, "descriptions": ["   "]}, 422)
    assert "`aspect`" in error({**good, "aspect": "2:7"}, 422)
    assert "held or worn" in error({**good, "presets": ["in-hand"]}, 422)
    assert "nope" in error({**good, "presets": ["nope"]}, 422)
    assert "choose from amazon-main" in error({**good, "profiles": ["walmart"]}, 422)
    assert "keep_framing" in error({**good, "keep_framing": True}, 422)  # with an aspect
    error({**good, "model": "/etc/passwd"}, 422)
    error({**good, "training_id": "trn_nope"}, 404)
    error({**good, "count": 0}, 422)
    error({key: v for key, v in good.items() if key != "photo_id"}, 422)


def test_placement_without_a_visible_product_fails_clearly(studio) -> None:
    import numpy as np
    from PIL import Image

    fresh = studio.a.post("/v1/products", json={"name": "grey", "class_name": "box"}).json()
    buffer = io.BytesIO()
    Image.fromarray(np.full((480, 640, 3), 128, np.uint8)).save(buffer, format="PNG")
    assert upload(studio.a, fresh["id"], [("grey.png", buffer.getvalue())]).status_code == 201
    photo = studio.a.get(f"/v1/products/{fresh['id']}/photos").json()["data"][0]
    created = studio.a.post(
        f"/v1/products/{fresh['id']}/placements",
        json={**PLACEMENT, "photo_id": photo["id"], "count": 1},
    )
    assert created.status_code == 201, created.text
    final = studio.wait(studio.a, f"/v1/placements/{created.json()['id']}", ("succeeded", "failed"))
    assert final["status"] == "failed" and final["error"]["code"] == "job_failed"
    assert "No product found" in final["error"]["message"] and final["shots"] == []
    response = studio.a.get(final["download_url"])
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"


def test_marketplaces_say_which_take_drawn_shots(studio) -> None:
    marketplaces = {m["name"]: m for m in studio.a.get("/v1/marketplaces").json()}
    assert marketplaces["amazon-main"]["generated"] == "fail"
    assert marketplaces["amazon-main"]["white_background"] is True
    assert "photograph" in marketplaces["amazon-main"]["generated_rule"]
    assert marketplaces["shopify"]["generated"] == "ok"
    assert studio.client.get("/v1/marketplaces").status_code == 401


def test_models_suggest_every_familys_base_models_with_what_each_needs(studio) -> None:
    body = studio.a.get("/v1/models").json()
    models = {m["id"]: m for m in body["data"]}
    assert body["data"][0]["id"] == body["training_default"] == TRAINING_MODEL
    assert body["instant_default"] == INSTANT_MODEL and models[INSTANT_MODEL]["takes_references"]
    # Every family's base models, from the families themselves: Z-Image too.
    assert {m["family"] for m in body["data"]} == {"sd15", "sdxl", "flux2-klein", "z-image"}
    assert models["Tongyi-MAI/Z-Image"]["trains"]
    assert not models["Tongyi-MAI/Z-Image"]["takes_references"]
    assert models[TRAINING_MODEL]["training_steps"] == {
        name: preset["max_train_steps"] for name, preset in load_training_presets("sdxl").items()
    }
    # Each says what it is, in its family's name, and more than that.
    for m in body["data"]:
        assert m["label"].startswith(get_family(m["family"]).label) and ": " in m["label"]
    assert studio.client.get("/v1/models").status_code == 401


def test_presets_say_which_keep_the_pixels(studio) -> None:
    presets = {p["name"]: p for p in studio.a.get("/v1/presets").json()}
    assert presets["studio"]["composition"] == "hero"
    assert presets["flat-lay"]["composition"] == "flat-lay"
    assert presets["in-hand"]["composition"] is None


# -- scoping: another merchant's ids are 404 on every route ------------------------------------


def test_every_route_hides_other_merchants_objects(
    studio, product, training, shoot, placement
) -> None:
    photo = studio.a.get(f"/v1/products/{product['id']}/photos").json()["data"][0]
    shot = shoot["shots"][0]
    p, t, s, pl = product["id"], training["id"], shoot["id"], placement["id"]
    # A catalogue shoot of merchant A's, canceled at once: its routes must hide it from B too.
    catalogue = {"product_ids": [p], "shots": CATALOGUE_SHOTS, "model": "tiny"}
    c = studio.a.post("/v1/catalogue-shoots", json=catalogue).json()["id"]
    assert studio.a.post(f"/v1/catalogue-shoots/{c}/cancel").status_code == 200
    routes = [
        ("GET", f"/v1/products/{p}", None),
        ("DELETE", f"/v1/products/{p}", None),
        ("GET", f"/v1/products/{p}/photos", None),
        ("POST", f"/v1/products/{p}/photos", "files"),
        ("GET", f"/v1/products/{p}/report", None),
        ("GET", f"/v1/photos/{photo['id']}/image", None),
        ("DELETE", f"/v1/photos/{photo['id']}", None),
        ("POST", f"/v1/products/{p}/trainings", TRAINING),
        ("GET", f"/v1/products/{p}/trainings", None),
        ("GET", f"/v1/trainings/{t}", None),
        ("POST", f"/v1/trainings/{t}/cancel", None),
        ("GET", f"/v1/trainings/{t}/events", None),
        ("GET", f"/v1/trainings/{t}/files/packshot.json", None),
        ("POST", f"/v1/products/{p}/shoots", {"descriptions": ["x"]}),
        ("GET", f"/v1/products/{p}/shoots", None),
        ("GET", f"/v1/shoots/{s}", None),
        ("POST", f"/v1/shoots/{s}/cancel", None),
        ("GET", f"/v1/shoots/{s}/events", None),
        ("GET", f"/v1/shoots/{s}/download", None),
        ("GET", f"/v1/shoots/{s}/contact-sheet", None),
        ("GET", f"/v1/shots/{shot['id']}/image", None),
        ("GET", f"/v1/shots/{placement['shots'][0]['id']}/image", None),
        ("POST", f"/v1/products/{p}/placements", {"photo_id": photo["id"], "descriptions": ["x"]}),
        ("GET", f"/v1/products/{p}/placements", None),
        ("GET", f"/v1/placements/{pl}", None),
        ("POST", f"/v1/placements/{pl}/cancel", None),
        ("GET", f"/v1/placements/{pl}/events", None),
        ("GET", f"/v1/placements/{pl}/download", None),
        ("GET", f"/v1/placements/{pl}/contact-sheet", None),
        ("GET", f"/v1/placements/{pl}/cutout", None),
        ("GET", f"/v1/shoots/{s}/exports/shopify", None),
        ("GET", f"/v1/placements/{pl}/exports/shopify", None),
        ("GET", f"/v1/catalogue-shoots/{c}", None),
        ("POST", f"/v1/catalogue-shoots/{c}/cancel", None),
        ("GET", f"/v1/catalogue-shoots/{c}/events", None),
        ("GET", f"/v1/catalogue-shoots/{c}/download", None),
        ("GET", f"/v1/catalogue-shoots/{c}/contact-sheet", None),
        ("GET", f"/v1/catalogue-shoots/{c}/exports/shopify", None),
    ]
    # Every /v1 route with an id is in the list (a new route must be added here).
    schema = studio.client.get("/openapi.json").json()
    with_ids = {
        (method.upper(), path)
        for path, ops in schema["paths"].items()
        for method in ops
        if "{" in path
    }
    import re

    ids = r"/(prd|pho|trn|sht|plc|shot|cat)_[\w-]+"
    listed = {(m, re.sub(ids, "/{id}", u)) for m, u, _ in routes}
    templated = {(m, re.sub(r"\{[a-z_]+(:path)?\}", "{id}", u)) for m, u in with_ids}
    templated = {
        (
            m,
            u.replace("/files/{id}", "/files/packshot.json").replace(
                "/exports/{id}", "/exports/shopify"
            ),
        )
        for m, u in templated
    }
    assert templated <= listed, templated - listed
    for method, url, body in routes:
        headers = {"Authorization": f"Bearer {studio.b.key}"}
        if body == "files":
            response = studio.client.request(
                method, url, headers=headers, files=[("files", ("a.jpg", b"x", "image/jpeg"))]
            )
        else:
            response = studio.client.request(method, url, headers=headers, json=body)
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.json()["error"]["code"] == "not_found"
    # Nor can another merchant's photo or training be named from one's own product.
    own = studio.b.post("/v1/products", json={"name": "b's bag", "class_name": "bag"}).json()
    upload(studio.b, own["id"], example_photos()[:1])
    own_photo = studio.b.get(f"/v1/products/{own['id']}/photos").json()["data"][0]
    for body in (
        {"photo_id": photo["id"], "descriptions": ["x"]},
        {"photo_id": own_photo["id"], "descriptions": ["x"], "training_id": t},
    ):
        response = studio.b.post(f"/v1/products/{own['id']}/placements", json=body)
        assert response.status_code == 404, response.text
    response = studio.b.post(
        f"/v1/products/{own['id']}/shoots", json={"descriptions": ["x"], "training_id": t}
    )
    assert response.status_code == 404
    # …and they are all still there for their owner.
    assert studio.a.get(f"/v1/products/{p}").status_code == 200
    assert studio.a.get(f"/v1/photos/{photo['id']}/image").status_code == 200
    assert studio.a.get(f"/v1/placements/{pl}").status_code == 200


# -- the page's session -----------------------------------------------------------------------


def test_cookie_session_with_csrf(studio) -> None:
    from fastapi.testclient import TestClient

    browser = TestClient(studio.client.app)
    assert browser.post("/v1/session", json={"key": "pk_live_wrong"}).status_code == 401
    signed = browser.post("/v1/session", json={"key": studio.b.key})
    assert signed.status_code == 200
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    csrf = signed.json()["csrf_token"]
    assert browser.get("/v1/products").status_code == 200
    assert browser.get("/v1/session").json()["csrf_token"] == csrf
    refused = browser.post("/v1/products", json={"name": "n", "class_name": "c"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    wrong = browser.post(
        "/v1/products", json={"name": "n", "class_name": "c"}, headers={"X-CSRF-Token": "x"}
    )
    assert wrong.status_code == 403
    made = browser.post(
        "/v1/products", json={"name": "n", "class_name": "c"}, headers={"X-CSRF-Token": csrf}
    )
    assert made.status_code == 201
    assert browser.delete("/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert browser.get("/v1/products").status_code == 401


def test_expired_sessions_are_cleaned_up_on_sign_in(studio) -> None:
    """A session past its expiry stops working, and the next sign-in (anyone's) deletes it;
    sessions still valid stay."""
    import hashlib
    from datetime import timedelta

    from fastapi.testclient import TestClient
    from sqlalchemy import select, update

    from packshot.jobs import store
    from packshot.jobs.models import WebSession

    def signed_in(key: str) -> tuple[TestClient, str]:
        browser = TestClient(studio.client.app)
        assert browser.post("/v1/session", json={"key": key}).status_code == 200
        token = browser.cookies["packshot_session"]
        return browser, hashlib.sha256(token.encode()).hexdigest()

    old, old_id = signed_in(studio.a.key)
    live, live_id = signed_in(studio.b.key)
    with studio.db.session() as session:  # a day goes by for the first one
        session.execute(
            update(WebSession)
            .where(WebSession.id == old_id)
            .values(expires_at=store.now() - timedelta(minutes=1))
        )
        session.commit()
    assert old.get("/v1/products").status_code == 401
    _new, new_id = signed_in(studio.a.key)
    with studio.db.session() as session:
        ids = set(session.scalars(select(WebSession.id)))
    assert old_id not in ids and {live_id, new_id} <= ids
    assert live.get("/v1/products").status_code == 200


def test_rate_limit_per_key(studio, cache_dir: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from packshot.api.app import create_app
    from packshot.api.settings import ApiSettings

    settings = ApiSettings(service=studio.settings.service, rate_limit=3)
    client = TestClient(create_app(settings, migrate=False))
    headers_a = {"Authorization": f"Bearer {studio.a.key}"}
    codes = [client.get("/v1/products", headers=headers_a).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/v1/products", headers=headers_a)
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    other = client.get("/v1/products", headers={"Authorization": f"Bearer {studio.b.key}"})
    assert other.status_code == 200  # per key


def test_photo_limit_per_product(studio) -> None:
    """At most `max_photos` a product: a request that would pass it is refused whole (409),
    saying how many more fit, and stores nothing; what was accepted before stays."""
    from fastapi.testclient import TestClient

    from packshot.api.app import create_app
    from packshot.api.settings import ApiSettings

    settings = ApiSettings(service=studio.settings.service, max_photos=4, rate_limit=100000)
    client = TestClient(create_app(settings, migrate=False))
    client.headers["Authorization"] = f"Bearer {studio.a.key}"
    made = client.post("/v1/products", json={"name": "limited", "class_name": "backpack"}).json()
    photos = example_photos()
    url = f"/v1/products/{made['id']}/photos"
    files = [("files", (n, d, "application/octet-stream")) for n, d in photos[:3]]
    assert client.post(url, files=files).json()["accepted"] == 3
    folder = studio.settings.service.data_dir / "products" / made["id"] / "photos"
    stored = sorted(folder.iterdir())
    refused = client.post(url, files=[("files", (n, d, "image/jpeg")) for n, d in photos[3:5]])
    assert refused.status_code == 409
    assert "send at most 1 more" in refused.json()["error"]["message"]
    assert sorted(folder.iterdir()) == stored  # nothing of the refused request kept
    assert client.get(f"/v1/products/{made['id']}").json()["photo_count"] == 3
    fourth = [("files", (photos[3][0], photos[3][1], "image/jpeg"))]
    assert client.post(url, files=fourth).status_code == 201
    full = client.post(url, files=files[:1])
    assert full.status_code == 409 and "already has 4 photos" in full.json()["error"]["message"]


def test_the_api_imports_no_torch() -> None:
    code = (
        "import sys; from packshot.api.app import create_app; "
        "import packshot.api.routes.jobs, packshot.jobs.store; "
        "assert 'torch' not in sys.modules, 'torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- catalogue shoots ---------------------------------------------------------------------------

CATALOGUE_SHOTS = [
    {"slot": "main", "preset": "studio"},
    {"slot": "additional", "description": "{product} on a grey table", "aspect": "4:5"},
    {"slot": "lifestyle", "preset": "lifestyle", "description": "{product} in a park"},
]


@pytest.mark.budget(15)  # a tiny training of 4 steps and 6 judged shots of 2 steps, in the worker
def test_catalogue_shoot_in_the_worker(studio, product, training) -> None:
    """Three products: one trained before, one whose photos are not enough, one trained by the
    job. (A catalogue shoot killed and run again: test_catalogue.py, with a real SIGKILL.)"""
    ids = [product["id"]]
    for name, class_name, photos in (
        ("Desk lamp", "lamp", example_photos()[:2] + [("broken.jpg", b"\xff\xd8 not a JPEG")]),
        ("Canvas tote", "bag", example_photos()),
    ):
        made = studio.a.post("/v1/products", json={"name": name, "class_name": class_name}).json()
        assert upload(studio.a, made["id"], photos).status_code == 201
        ids.append(made["id"])
    body = {
        "product_ids": ids,
        "shots": CATALOGUE_SHOTS,
        "model": "tiny",
        "preset": "quick",
        "max_train_steps": 4,
        "num_inference_steps": 2,
        "seed": 5,
        "profiles": ["amazon-main", "ebay"],
    }
    created = studio.a.post("/v1/catalogue-shoots", json=body)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "queued" and [p["status"] for p in job["products"]] == ["queued"] * 3
    assert [p["handle"] for p in job["products"]] == ["red-backpack", "desk-lamp", "canvas-tote"]

    final = studio.wait(studio.a, f"/v1/catalogue-shoots/{job['id']}", ("succeeded", "failed"))
    assert final["status"] == "succeeded", final
    backpack, lamp, tote = final["products"]
    assert (backpack["status"], backpack["trained"], backpack["images"]) == ("done", False, 3)
    assert (lamp["status"], lamp["verdict"]) == ("failed", "not enough")
    assert "not enough to train on" in lamp["error"]
    assert (tote["status"], tote["trained"], tote["images"]) == ("done", True, 3)
    assert [p["route"] for p in final["products"]] == ["model", None, "trained"]
    shots = final["shots"]
    assert len(shots) == 6
    assert sorted((s["product"], s["slot"]) for s in shots) == sorted(
        (h, slot)
        for h in ("red-backpack", "canvas-tote")
        for slot in ("main", "additional", "lifestyle")
    )
    assert all(s["scores"] for s in shots)
    # Delivered: a drawn shot is never Amazon's main image; eBay takes it, enlarged.
    assert backpack["compliance"]["amazon-main"] == {"pass": 0, "fixed": 0, "warn": 0, "fail": 3}
    assert tote["compliance"]["ebay"]["fail"] == 0 and sum(tote["compliance"]["ebay"].values()) == 3
    assert final["delivery"]["compliance"]["amazon-main"]["fail"] == 6  # both products
    assert lamp["compliance"] == {}
    for shot in shots:
        verdicts = {b["profile"]: b["status"] for b in shot["badges"]}
        assert verdicts["amazon-main"] == "fail" and verdicts["ebay"] != "fail"
    assert studio.a.get(shots[0]["url"]).headers["content-type"] == "image/png"
    assert 0 < final["cost"]["cost_per_image"] < 10 and final["cost"]["products_failed"] == 1
    assert studio.a.get(final["contact_sheet_url"]).status_code == 200
    events = studio.a.get(f"/v1/catalogue-shoots/{job['id']}/events").text
    assert events.count("event: product") == 6  # each product: running, then done or failed
    archive = zipfile.ZipFile(io.BytesIO(studio.a.get(final["download_url"]).content))
    names = archive.namelist()
    assert "catalogue.json" in names
    assert sum(n.startswith("canvas-tote/shots/") and n.endswith(".png") for n in names) == 3
    exported = studio.a.get(
        f"/v1/catalogue-shoots/{job['id']}/exports/shopify",
        params={"image_base_url": "https://cdn.example.com/x/", "profile": "ebay"},
    )
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["Handle"] for r in rows} == {"red-backpack", "canvas-tote"}
    listed = studio.a.get("/v1/catalogue-shoots").json()
    assert [j["id"] for j in listed["data"]][:1] == [job["id"]]
    assert studio.b.get(f"/v1/catalogue-shoots/{job['id']}").status_code == 404


def test_catalogue_shoot_instant_in_the_worker(studio, product, training) -> None:
    """`instant`: the product without a model is drawn from its photos as references of a
    tiny-flux2 model, no training; the trained one by its model. A family that takes no
    references is refused at once (422), before any job."""
    tote = studio.a.post("/v1/products", json={"name": "Linen tote", "class_name": "bag"}).json()
    assert upload(studio.a, tote["id"], example_photos()).status_code == 201
    body = {
        "product_ids": [product["id"], tote["id"]],
        "shots": [{"slot": "main", "preset": "studio"}],
        "instant": True,
        "num_inference_steps": 2,
        "seed": 5,
    }
    before = len(studio.a.get("/v1/catalogue-shoots").json()["data"])
    refused = studio.a.post("/v1/catalogue-shoots", json={**body, "model": "tiny"})
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]["message"]
    assert "`tiny` is a Stable Diffusion 1.5 model" in message and "FLUX.2 [klein]" in message
    steps = studio.a.post(
        "/v1/catalogue-shoots", json={**body, "model": "tiny-flux2", "max_train_steps": 4}
    )
    assert steps.status_code == 422 and "trains nothing" in steps.text
    preset = studio.a.post(
        "/v1/catalogue-shoots", json={**body, "model": "tiny-flux2", "preset": "best"}
    )
    assert preset.status_code == 422 and "`preset` is for trainings" in preset.text
    assert len(studio.a.get("/v1/catalogue-shoots").json()["data"]) == before  # no job

    created = studio.a.post("/v1/catalogue-shoots", json={**body, "model": "tiny-flux2"})
    assert created.status_code == 201, created.text
    final = studio.wait(
        studio.a, f"/v1/catalogue-shoots/{created.json()['id']}", ("succeeded", "failed")
    )
    assert final["status"] == "succeeded", final
    backpack, linen = final["products"]
    assert (backpack["status"], backpack["route"], backpack["images"]) == ("done", "model", 1)
    assert (linen["status"], linen["route"], linen["trained"]) == ("done", "instant", False)
    (shot,) = [s for s in final["shots"] if s["product"] == "linen-tote"]
    assert shot["scores"]["dino"] is not None  # judged against its photos
    assert final["cost"]["training_device_seconds"] == 0 and final["cost"]["images"] == 2
    assert final["request"]["instant"] is True


def test_catalogue_shoot_checks_its_request(studio, product) -> None:
    def refused(changes: dict, status: int, says: str) -> None:
        body = {"product_ids": [product["id"]], "shots": CATALOGUE_SHOTS, "model": "tiny"}
        answer = studio.a.post("/v1/catalogue-shoots", json={**body, **changes})
        assert answer.status_code == status, answer.text
        assert says in answer.json()["error"]["message"], answer.text

    refused({"shots": [{"slot": "main", "preset": "nope"}]}, 422, "unknown preset 'nope'")
    refused({"shots": [{"slot": "main"}]}, 422, "give a `description`, a `preset`, or both")
    refused({"shots": [{"slot": "hero", "preset": "studio"}]}, 422, "shots.0.slot")
    refused({"product_ids": [product["id"], product["id"]]}, 422, "names a product twice")
    refused({"product_ids": ["prd_nope"]}, 404, "product")
    refused({"model": "../../etc"}, 422, "Hugging Face Hub id")
    refused({"profiles": ["amazon-main", "walmart"]}, 422, "Unknown marketplace profile walmart")
    other = studio.b.post("/v1/products", json={"name": "Mug", "class_name": "mug"}).json()
    refused({"product_ids": [other["id"]]}, 404, "product")


def test_a_product_in_a_catalogue_shoot_to_come_is_not_deleted(studio) -> None:
    """A running catalogue shoot (its row made here, so that no worker finishes it first) keeps
    the products it names from being deleted."""
    from packshot.jobs.models import Job, new_id

    made = studio.a.post("/v1/products", json={"name": "Vase", "class_name": "vase"}).json()
    with studio.db.session() as session:
        job = Job(
            id=new_id("cat"),
            merchant_id=studio.a.id,
            product_id=None,
            kind="catalogue",
            status="running",
            request={"product_ids": [made["id"]]},
        )
        session.add(job)
        session.commit()
        job_id = job.id
    refused = studio.a.delete(f"/v1/products/{made['id']}")
    assert refused.status_code == 409 and job_id in refused.json()["error"]["message"]
    with studio.db.session() as session:
        session.get(Job, job_id).status = "canceled"
        session.commit()
    assert studio.a.delete(f"/v1/products/{made['id']}").status_code == 204
