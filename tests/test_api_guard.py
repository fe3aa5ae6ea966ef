"""The studio against abuse (issue 18): bounded bodies, model names that are never folders,
fair use, the small holes, and messages for merchants rather than operators.

The real app in this process (no worker: jobs are queued through the store), fast.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import logging
import os
import re
import shutil
import threading
import zipfile
from pathlib import Path

import huggingface_hub.constants
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from PIL import Image

from packshot.api import judging
from packshot.api.app import create_app
from packshot.api.routes import products
from packshot.api.routes.jobs import ZIP_CHUNK, _zip_pieces
from packshot.api.settings import ApiSettings
from packshot.artifacts.product_model import DIFFUSERS_WEIGHT_NAME, METADATA_FILE
from packshot.cli import check_studio_models
from packshot.errors import UsageError
from packshot.jobs import store
from packshot.jobs.execute import run_job
from packshot.jobs.kinds import TrainingParams, TrainingResult
from packshot.jobs.models import Job, Photo, Product
from packshot.jobs.settings import ServiceSettings
from packshot.jobs.worker import Worker, drive_job


class Studio:
    def __init__(self, data: Path, **limits):
        url = f"sqlite:///{data / 'packshot.db'}"
        self.settings = ApiSettings(
            service=ServiceSettings(data_dir=data, database_url=url), **limits
        )
        self.app = create_app(self.settings)
        self.db = store.Database(url)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        with self.db.session() as session:
            merchant, key = store.create_merchant(session, "Shop")
            self.merchant_id = merchant.id
        self.auth = {"Authorization": f"Bearer {key}"}

    def product(self) -> str:
        response = self.client.post(
            "/v1/products", json={"name": "bag", "class_name": "bag"}, headers=self.auth
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def queue_training(self, product_id: str, merchant_id: str | None = None, **params: str) -> str:
        """A training queued as the API queues one (by default: tiny, on /photos)."""
        params = {"photos_dir": "/photos", "model": "tiny", "class_word": "bag", **params}
        with self.db.session() as session:
            job = store.enqueue(
                session,
                merchant_id=merchant_id or self.merchant_id,
                product_id=product_id,
                kind="training",
                params=TrainingParams(**params),
                request={},
                webhook=None,
                prefix="trn",
            )
            return job.id


@pytest.fixture()
def studio(tmp_path: Path):
    studio = Studio(tmp_path)
    yield studio
    studio.db.dispose()


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


# -- 2. bodies bounded before anything reads them -----------------------------------------------


def test_a_body_over_its_routes_limit_is_refused_before_it_is_read(studio) -> None:
    big = b'{"name": "' + b"x" * (5 * 2**20) + b'", "class_name": "bag"}'
    # Declared: refused at once, before authentication (no key here) could even answer 401.
    response = studio.client.post(
        "/v1/products", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "too_large"
    assert "256 KiB" in response.json()["error"]["message"]
    assert response.headers["x-content-type-options"] == "nosniff"

    # Streamed without a length: cut off once the bytes go over.
    def chunks():
        for _ in range(40):
            yield b"x" * 2**16

    response = studio.client.post(
        "/v1/products",
        content=chunks(),
        headers={"content-type": "application/json", **studio.auth},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "too_large"
    # The upload route keeps its own, bigger limit (here: authentication answers first).
    upload = studio.client.post(
        "/v1/products/prd_x/photos",
        files=[("files", ("a.png", b"x" * 2**20, "image/png"))],
    )
    assert upload.status_code == 401
    # A body within the limit goes through as before.
    assert studio.product().startswith("prd_")


def test_an_upload_over_the_request_limit_is_cut_off_while_it_streams(tmp_path: Path) -> None:
    studio = Studio(tmp_path, max_request_mb=1.0)
    product = studio.product()

    def body():
        yield b"--b\r\nContent-Disposition: form-data; name=files; filename=a.png\r\n\r\n"
        for _ in range(40):
            yield b"x" * 2**16

    response = studio.client.post(
        f"/v1/products/{product}/photos",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=b", **studio.auth},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "too_large"


# -- 6. the small ones --------------------------------------------------------------------------


def test_last_event_id_takes_our_ids_only(studio) -> None:
    job = studio.queue_training(studio.product())
    with studio.db.session() as session:  # a finished job: its stream ends
        store.fail(session, job, "job_failed", "It failed.")
        last = store.events_after(session, job, 0)[-1].id
    # One stream (a bare test client runs each request on an event loop of its own): resumed
    # after the last event, it has only the end.
    again = studio.client.get(
        f"/v1/trainings/{job}/events", headers={**studio.auth, "Last-Event-ID": str(last)}
    )
    assert again.status_code == 200 and "event: end" in again.text and "id: " not in again.text
    for bad in ("²", "1" * 20, "-1", "1e3", "١٢"):
        response = studio.client.get(
            f"/v1/trainings/{job}/events",
            headers={**studio.auth, "Last-Event-ID": bad.encode()},
        )
        assert response.status_code == 422, (bad, response.status_code)
        assert "Last-Event-ID" in response.json()["error"]["message"]


def test_security_headers_on_500s_hsts_over_tls_and_a_docs_page_that_loads(studio) -> None:
    def boom() -> None:
        raise RuntimeError("a bug")

    studio.app.router.routes.insert(0, APIRoute("/v1/boom", boom))  # before the page's mount
    response = studio.client.get("/v1/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # plain HTTP

    tls = TestClient(studio.app, base_url="https://testserver", raise_server_exceptions=False)
    for path in ("/v1/health", "/v1/boom", "/"):
        assert tls.get(path).headers["strict-transport-security"].startswith("max-age=")
    assert "strict-transport-security" not in studio.client.get("/v1/health").headers

    # /docs: every script and style it loads, and its inline script, are allowed by its policy.
    docs = studio.client.get("/docs")
    policy = dict(
        part.strip().split(" ", 1)
        for part in docs.headers["content-security-policy"].split(";")
        if " " in part.strip()
    )
    html = docs.text
    for directive, pattern in (
        ("script-src", r'<script src="(https://[^/"]+)/'),
        ("style-src", r'<link type="text/css" rel="stylesheet" href="(https://[^/"]+)/'),
    ):
        origins = re.findall(pattern, html)
        assert origins, html
        assert all(origin in policy[directive].split() for origin in origins), directive
    for script in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy["script-src"].split()
    assert "'unsafe-inline'" not in docs.headers["content-security-policy"]
    # Everywhere else the strict policy stays.
    assert "jsdelivr" not in studio.client.get("/").headers["content-security-policy"]


def test_product_names_lose_invisible_characters_and_refuse_direction_controls(studio) -> None:
    response = studio.client.post(
        "/v1/products",
        json={"name": "red\u200b ba\u2060g\ufeff", "class_name": "b\u200dag"},
        headers=studio.auth,
    )
    assert response.status_code == 201, response.text
    assert (response.json()["name"], response.json()["class_name"]) == ("red bag", "bag")
    for name in ("invoice\u202egpj.exe", "\u2067bag\u2069"):
        response = studio.client.post(
            "/v1/products", json={"name": name, "class_name": "bag"}, headers=studio.auth
        )
        assert response.status_code == 422
        assert "direction" in response.json()["error"]["message"]


def test_an_upload_racing_its_products_delete_leaves_nothing(
    studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    product = studio.product()

    async def judged_while_the_product_is_deleted(_request, fn, *args):
        results = fn(*args)  # intake, here and now (judging.judge_and_store)
        response = studio.client.delete(f"/v1/products/{product}", headers=studio.auth)
        assert response.status_code == 204
        return results

    monkeypatch.setattr(products, "run_intake", judged_while_the_product_is_deleted)
    photo = _png(400, 400)
    response = studio.client.post(
        f"/v1/products/{product}/photos",
        files=[("files", ("a.png", photo, "image/png")), ("files", ("b.png", photo, "image/png"))],
        headers=studio.auth,
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert not store.product_dir(studio.settings.service.data_dir, product).exists()
    with studio.db.session() as session:
        assert session.get(Product, product) is None
    assert judging.judge_and_store  # intake really ran (the files were written, then removed)


# -- 3. a merchant names models, never folders -----------------------------------------------

FIXTURE_MODEL = Path(__file__).parent / "fixtures" / "product-model-0.1.0"


def _with_photo(studio: Studio, product_id: str) -> None:
    with studio.db.session() as session:
        session.add(
            Photo(
                id=f"pho_{product_id}",
                merchant_id=studio.merchant_id,
                product_id=product_id,
                file_name="a.png",
                width=512,
                height=512,
                sha256="0" * 64,
                warnings=[],
            )
        )
        session.commit()


def _trained(studio: Studio, product_id: str) -> str:
    """A succeeded training of the product: its model folder as a run leaves it (the 0.1.0
    fixture's packshot.json, trained on `tiny`, and its LoRA file)."""
    job_id = studio.queue_training(product_id)
    with studio.db.session() as session:
        job = session.get(Job, job_id)
        folder = store.job_dir(studio.settings.service.data_dir, job) / "model"
        folder.mkdir(parents=True)
        shutil.copy(FIXTURE_MODEL / METADATA_FILE, folder / METADATA_FILE)
        (folder / DIFFUSERS_WEIGHT_NAME).write_bytes(b"lora")
        store.finish(
            session,
            job_id,
            TrainingResult(
                model_dir="model",
                base_model="tiny",
                token="sks",
                class_word="bag",
                final_step=4,
                final_loss=0.1,
            ),
        )
    return job_id


def test_models_are_names_and_the_operators_list_holds_for_every_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACKSHOT_MODELS", " tiny-sdxl, org/sdxl-base ")
    service = ServiceSettings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db'}")
    assert ApiSettings.from_env(service).models == ("tiny-sdxl", "org/sdxl-base")
    monkeypatch.setenv("PACKSHOT_MODELS", "tiny,/srv/models/mine")
    with pytest.raises(UsageError, match="PACKSHOT_MODELS"):
        ApiSettings.from_env(service)

    studio = Studio(tmp_path, models=("tiny-sdxl", "tiny-inpaint", "org/sdxl-base"))
    # The page suggests the allowed models only, in the operator's order.
    listed = studio.client.get("/v1/models", headers=studio.auth).json()["data"]
    assert [(m["id"], m["family"], m["trains"]) for m in listed] == [
        ("tiny-sdxl", "sdxl", True),
        ("tiny-inpaint", "sd15-inpaint", False),
        ("org/sdxl-base", None, False),
    ]
    product = studio.product()
    _with_photo(studio, product)
    url = f"/v1/products/{product}"
    for model in ("data/.", "tmp/.x", "data/..", "/etc/x", "./data", "a/b/c", "x./y"):
        response = studio.client.post(
            f"{url}/trainings", json={"model": model}, headers=studio.auth
        )
        assert response.status_code == 422, model
    response = studio.client.post(f"{url}/trainings", json={"model": "org/x"}, headers=studio.auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "model_not_offered"
    assert "tiny-sdxl" in response.json()["error"]["message"]
    # The training's base (tiny, trained before the list changed) is no longer offered: its
    # shoots and placements are refused too, and a placement's default inpainting model too.
    training = _trained(studio, product)
    scene = {"descriptions": ["on a table"], "training_id": training}
    shoot = studio.client.post(f"{url}/shoots", json=scene, headers=studio.auth)
    assert shoot.status_code == 422 and "training's model" in shoot.json()["error"]["message"]
    placement = {"descriptions": ["on a table"], "photo_id": f"pho_{product}"}
    response = studio.client.post(f"{url}/placements", json=placement, headers=studio.auth)
    assert response.status_code == 422
    assert "stable-diffusion-xl-1.0-inpainting" in response.json()["error"]["message"]
    response = studio.client.post(
        f"{url}/placements", json={**placement, "model": "tiny-inpaint"}, headers=studio.auth
    )
    assert response.status_code == 201, response.text


# -- 5. fair use ------------------------------------------------------------------------------


def test_a_merchants_queue_and_a_jobs_images_are_capped(tmp_path: Path) -> None:
    studio = Studio(tmp_path, max_queued_jobs=2, max_images_per_job=50)
    product = studio.product()
    _with_photo(studio, product)
    url = f"/v1/products/{product}"
    training = _trained(studio, product)
    big = {"descriptions": [f"scene {i}" for i in range(4)], "count": 16}  # 64 images
    response = studio.client.post(f"{url}/shoots", json=big, headers=studio.auth)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "too_many_images"
    assert "64 images" in response.json()["error"]["message"]
    best = {"descriptions": ["a"], "presets": ["studio", "flat-lay"], "best": 8}  # 2 x 16
    assert studio.client.post(f"{url}/shoots", json=best, headers=studio.auth).status_code == 201
    placement = {"descriptions": ["a"] * 4, "count": 16, "photo_id": f"pho_{product}"}
    response = studio.client.post(f"{url}/placements", json=placement, headers=studio.auth)
    assert response.json()["error"]["code"] == "too_many_images"

    ok = studio.client.post(f"{url}/trainings", json={"model": "tiny"}, headers=studio.auth)
    assert ok.status_code == 201  # two queued now: the shoot and this training
    scene = {"descriptions": ["a"], "training_id": training}
    response = studio.client.post(f"{url}/shoots", json=scene, headers=studio.auth)
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "too_many_jobs"
    assert "2 jobs waiting" in response.json()["error"]["message"]


def _other_merchant(studio: Studio):
    """A second merchant, with a product `prd_other`."""
    with studio.db.session() as session:
        other, _key = store.create_merchant(session, "Other shop")
        session.add(Product(id="prd_other", merchant_id=other.id, name="cup", class_name="cup"))
        session.commit()
        return other


def test_the_queue_takes_turns_between_merchants(tmp_path: Path) -> None:
    studio = Studio(tmp_path)
    other = _other_merchant(studio)
    mine = studio.product()
    busy = [studio.queue_training(mine) for _ in range(3)]  # queued first
    theirs = studio.queue_training("prd_other", other.id)
    order = []
    with studio.db.session() as session:
        while (job := store.claim_next(session, "w1")) is not None:
            order.append(job.id)
            store.fail(session, job.id, "job_failed", "done with it")
    assert order == [busy[0], theirs, busy[1], busy[2]]


def test_a_merchant_runs_at_most_max_running_jobs(tmp_path: Path, monkeypatch) -> None:
    studio = Studio(tmp_path)
    other = _other_merchant(studio)
    mine = studio.product()
    busy = [studio.queue_training(mine) for _ in range(3)]
    theirs = studio.queue_training("prd_other", other.id)
    with studio.db.session() as session:
        assert store.claim_next(session, "w1", max_running=1).id == busy[0]
        assert store.claim_next(session, "w2", max_running=1).id == theirs
        # Both merchants run as many as they may: the rest waits, though a worker is free.
        assert store.claim_next(session, "w3", max_running=1) is None
        store.fail(session, busy[0], "job_failed", "done with it")
        assert store.claim_next(session, "w3", max_running=1).id == busy[1]

    # The setting, from the environment to the worker that claims.
    monkeypatch.setenv("PACKSHOT_MAX_RUNNING_JOBS", "1")
    settings = ServiceSettings.from_env(tmp_path)
    assert settings.max_running_jobs == 1
    assert settings.environ()["PACKSHOT_MAX_RUNNING_JOBS"] == "1"  # for the worker process
    assert Worker(settings).run_one() is False  # busy[2] waits: busy[1] runs
    with studio.db.session() as session:
        assert session.get(Job, busy[2]).status == "queued"
    for bad in ("0", "1.5", "two"):
        monkeypatch.setenv("PACKSHOT_MAX_RUNNING_JOBS", bad)
        with pytest.raises(UsageError, match="PACKSHOT_MAX_RUNNING_JOBS"):
            ServiceSettings.from_env(tmp_path)


def test_an_upload_has_a_pixel_budget(tmp_path: Path) -> None:
    studio = Studio(tmp_path, max_upload_megapixels=5.0)
    product = studio.product()
    photo = _png(2000, 1500)  # 3 megapixels each
    response = studio.client.post(
        f"/v1/products/{product}/photos",
        files=[("files", ("a.png", photo, "image/png")), ("files", ("b.png", photo, "image/png"))],
        headers=studio.auth,
    )
    assert response.status_code == 413, response.text
    assert "6 megapixels" in response.json()["error"]["message"]


def test_the_zip_is_streamed_a_piece_at_a_time(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        path = tmp_path / f"{i:03d}.png"
        path.write_bytes(os.urandom(ZIP_CHUNK + 1000 * i))
        files.append(path)
    named = [(path, f"shots/{path.name}") for path in files]
    pieces = list(_zip_pieces([*named, (tmp_path / "gone.png", "gone.png")]))
    assert max(len(p) for p in pieces) <= ZIP_CHUNK + 200  # never the whole archive at once
    assert len(pieces) > len(files)
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as archive:
        assert archive.namelist() == [name for _path, name in named]
        for path, name in named:
            assert archive.read(name) == path.read_bytes()


# -- 7. messages for merchants, the fix for the operator ---------------------------------------


@pytest.mark.budget(15)  # imports torch; the tiny stand-in is built once a session
def test_a_job_failing_for_the_operator_tells_the_merchant_so_and_logs_the_fix(
    studio,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    cache_dir: Path,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    product = studio.product()
    data = studio.settings.service.data_dir
    cases = {  # model: what the merchant may read, and must not
        "nobody-here/no-such-model": ("operator has been told", "HF_HUB_OFFLINE"),
        "tiny": ("photo", str(data)),  # the photos' folder is missing: said without its path
    }
    for model, (said, unsaid) in cases.items():
        photos = str(data / "products" / product / "photos")
        job_id = studio.queue_training(product, model=model, photos_dir=photos)
        with studio.db.session() as session:
            job = session.get(Job, job_id)
            workdir = store.job_dir(data, job).resolve()
            params = dict(job.params)
        execute = functools.partial(run_job, cache_dir=cache_dir)
        with caplog.at_level(logging.ERROR, logger="packshot.worker"):
            drive_job(
                studio.db, "w", threading.Event(), job_id, "training", params, workdir, execute
            )
        body = studio.client.get(f"/v1/trainings/{job_id}", headers=studio.auth).json()
        assert body["status"] == "failed"
        assert said in body["error"]["message"] and unsaid not in body["error"]["message"], body
        with studio.db.session() as session:  # what its event stream would send
            events = [event.data for event in store.events_after(session, job_id, 0)]
        assert events and unsaid not in json.dumps(events)
    assert "HF_HUB_OFFLINE" in caplog.text  # the operator's fix, in the server log


def test_serve_warns_at_start_about_models_it_cant_get(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    service = ServiceSettings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db'}")
    with caplog.at_level(logging.WARNING, logger="packshot.serve"):
        problems = check_studio_models(ApiSettings(service=service))
    assert len(problems) == 3  # the default base, inpainting and instant models
    assert "stable-diffusion-xl-base-1.0" in caplog.text and "HF_HUB_OFFLINE" in caplog.text
    assert check_studio_models(ApiSettings(service=service, models=("tiny",))) == []
