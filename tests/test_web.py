"""The studio's web page in a real headless Chromium, against the real server and worker.

`packshot serve` runs on a free loopback port with a temporary data dir and a merchant made by
`packshot merchants create`; Playwright drives Debian's chromium (its executable path, never a
downloaded browser) through the whole flow: sign in, create a product, drop photos (one of them
broken), read the report, train `tiny` a few steps while the progress bar moves, shoot, read the
gallery's scores and download an image, the zip and the LoRA, then keep the product's pixels
(pixel-true mode with `tiny-inpaint`) and see those shots join the gallery. At every step the
page is laid out at desktop and phone width, where nothing may stick out sideways; with
$PACKSHOT_SCREENSHOTS set, each is photographed into that folder (a third of the test's time).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "src" / "packshot" / "api" / "web"
CHROMIUM = os.environ.get("PACKSHOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Resolves once the page has been laid out and painted after a change (two frames: the
# first may have started before it).
NEXT_FRAME = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
TRAIN_STEPS = 4


# -- the real server ----------------------------------------------------------------------------


class StudioServer:
    """`packshot serve` (web server + worker process) on a free loopback port."""

    def __init__(self, url: str, key: str):
        self.url = url
        self.key = key

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the API with the merchant's key (what a developer's script sees)."""
        import httpx

        response = httpx.request(
            method,
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def upload(self, product_id: str, files: list[tuple[str, bytes]]) -> Any:
        """Upload photos to a product (multipart), as a script would."""
        import httpx

        response = httpx.post(
            f"{self.url}/v1/products/{product_id}/photos",
            files=[("files", (name, data, "image/jpeg")) for name, data in files],
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=120,
        )
        response.raise_for_status()
        return response.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_studio(data: Path, cache_dir: Path) -> Iterator[StudioServer]:
    packshot = [str(Path(sys.executable).with_name("packshot"))]
    env = {
        **os.environ,
        "PACKSHOT_CACHE": str(cache_dir),
        "HF_HUB_OFFLINE": "1",
        # Tiny models spend their time in per-op overhead: one thread is faster, and on a busy
        # 2-core machine more threads spin against each other (see conftest.py).
        "PACKSHOT_WORKER_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("PACKSHOT_DATABASE_URL", None)  # this test's own SQLite database in `data`
    created = subprocess.run(
        [*packshot, "merchants", "create", "Web Shop", "--data", str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    key = re.search(r"pk_live_\S+", created.stdout)
    assert key, created.stdout
    port = _free_port()
    log = (data / "serve.log").open("w")
    server = subprocess.Popen(
        [*packshot, "serve", "--port", str(port), "--data", str(data)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the worker process goes down with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (data / "serve.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "packshot serve did not start in 90 s"
                time.sleep(0.2)
        yield StudioServer(url, key.group(0))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


# -- the static files, without a browser --------------------------------------------------------


def test_page_files_are_plain_modules_that_resolve() -> None:
    """Every relative import and url() in the page points at a file that ships with it."""
    index = (WEB / "index.html").read_text(encoding="utf-8")
    for ref in re.findall(r'(?:src|href)="([^"#:]+)"', index):
        assert (WEB / ref).is_file(), ref
    for js in WEB.glob("*.js"):
        text = js.read_text(encoding="utf-8")
        for ref in re.findall(r'from "(\./[^"]+)"', text):
            assert (WEB / ref).is_file(), f"{js.name} imports {ref}"
        assert "innerHTML = `" not in text or js.name == "dom.js", f"{js.name} builds markup"
    css = (WEB / "app.css").read_text(encoding="utf-8")
    for ref in re.findall(r'url\("([^"]+)"\)', css):
        assert (WEB / ref).is_file(), ref


def test_server_serves_the_page(studio: StudioServer) -> None:
    import httpx

    with httpx.Client(base_url=studio.url) as client:
        index = client.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="app.js">' in index.text
        js = client.get("/app.js")
        assert js.status_code == 200
        assert "javascript" in js.headers["content-type"]
        assert client.get("/fonts/inter-latin.woff2").status_code == 200
        # The API stays JSON underneath the page.
        missing = client.get("/v1/products")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "unauthorized"


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def studio(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    with start_studio(tmp_path_factory.mktemp("studio"), cache_dir) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class Camera:
    """Each step at desktop and phone width, numbered in order: checked for sideways overflow,
    and photographed into $PACKSHOT_SCREENSHOTS when it is set."""

    def __init__(self, page):
        self.page = page
        extra = os.environ.get("PACKSHOT_SCREENSHOTS")
        self.folder = Path(extra) if extra else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def shoot(self, name: str, full_page: bool = True) -> None:
        """`full_page=False` for a modal dialog, whose backdrop covers only the screen."""
        self.n += 1
        stem = f"{self.n:02d}-{name}"
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            self.page.set_viewport_size(size)
            self.page.evaluate(NEXT_FRAME)  # laid out at the new width
            # Nothing may stick out sideways at phone width.
            overflow = self.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{stem}: {overflow} px wider than the {label} screen"
            if self.folder:
                self.page.wait_for_timeout(120)  # images decoded at the new size
                self.page.evaluate("window.scrollTo(0, 0)")  # the sticky bar at the top
                path = self.folder / f"{stem}-{label}.png"
                self.page.screenshot(path=str(path), full_page=full_page)
        self.page.set_viewport_size(DESKTOP)


def _small_photos(paths: list[Path]) -> list[tuple[str, bytes]]:
    """Photos made smaller for the uploads a script makes (intake's time is not tested here)."""
    from PIL import Image

    small = []
    for path in paths:
        with Image.open(path) as image:
            image.thumbnail((640, 640))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=92)
        small.append((path.name, buffer.getvalue()))
    return small


def _drop_files(page, selector: str, files: list[tuple[str, bytes, str]]) -> None:
    """Drop files on an element the way a browser does: a `drop` event with a DataTransfer."""
    payload = [
        {"name": name, "type": mime, "b64": base64.b64encode(data).decode()}
        for name, data, mime in files
    ]
    page.evaluate(
        """([selector, files]) => {
          const dt = new DataTransfer();
          for (const f of files) {
            const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
            dt.items.add(new File([bytes], f.name, { type: f.type }));
          }
          const zone = document.querySelector(selector);
          zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true }));
          zone.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true }));
        }""",
        [selector, payload],
    )


@pytest.mark.budget(40)  # the real server, worker and Chromium: a training, a shoot, a placement
def test_whole_flow_in_chromium(
    studio: StudioServer, browser, dreambench: Path, tmp_path: Path
) -> None:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # 401 before signing in, the 403 and 422 provoked below are expected; nothing else may fail.
    expected = re.compile(r"status of (401|403|422)")
    page.on(
        "console",
        lambda msg: (
            msg.type == "error" and not expected.search(msg.text) and errors.append(msg.text)
        ),
    )
    camera = Camera(page)
    expect = pytest.importorskip("playwright.sync_api").expect
    expect.set_options(timeout=20_000)

    # 1. Sign in: a wrong key is refused with a message, the right one opens the studio.
    page.goto(studio.url + "/")
    expect(page.get_by_role("heading", name="Sign in to your studio")).to_be_visible()
    camera.shoot("sign-in")
    page.get_by_label("API key").fill("pk_live_not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("wasn't recognised")
    camera.shoot("sign-in-wrong-key")
    page.get_by_label("API key").fill(studio.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("products-empty")).to_be_visible()
    expect(page.get_by_test_id("merchant-name")).to_have_text("Web Shop")
    camera.shoot("products-empty")

    # The session cookie is out of the page's reach, and a write without the CSRF token fails.
    assert "packshot_session" not in page.evaluate("document.cookie")
    status = page.evaluate(
        """fetch('/v1/products', {method: 'POST', headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({name: 'x', class_name: 'y'})}).then(r => r.status)"""
    )
    assert status == 403

    # 2. Create a product.
    page.get_by_test_id("products-empty").get_by_role("button", name="New product").click()
    page.get_by_label("Name").fill("Trail backpack")
    page.get_by_label("What is it?").fill("backpack")
    camera.shoot("new-product", full_page=False)
    page.get_by_role("button", name="Create product").click()
    expect(page.get_by_test_id("product-title")).to_have_text("Trail backpack")
    camera.shoot("product-new")

    # 3. Drop the photos and one broken file: each gets its verdict, then the set's report.
    photos = sorted((dreambench / "backpack").glob("*.jpg"))
    files = [(p.name, p.read_bytes(), "image/jpeg") for p in photos]
    files.append(("broken.jpg", b"\xff\xd8\xff\xe0 this is not really a JPEG", "image/jpeg"))
    _drop_files(page, "[data-testid=dropzone]", files)
    results = page.get_by_test_id("upload-results")
    # Intake judges every file on the server (decode, sharpness, masks): allow a busy machine.
    expect(results.get_by_test_id("result-accepted")).to_have_count(len(photos), timeout=90_000)
    rejected = results.get_by_test_id("result-rejected")
    expect(rejected).to_have_count(1)
    expect(rejected).to_contain_text("broken.jpg")
    reason = rejected.locator(".why").inner_text()
    assert len(reason) > 15, reason  # a sentence, not a code
    report = page.get_by_test_id("photo-report")
    expect(report.get_by_test_id("verdict")).to_have_text(re.compile("Ready|Usable|Not enough"))
    expect(page.get_by_test_id("photo-count")).to_have_text(f"{len(photos)} photos")
    camera.shoot("photos-uploaded")

    # 3b. Instant shots, before any training: the best photos as references of tiny-flux2.
    expect(page.get_by_test_id("shoot-modes")).to_be_visible()
    page.get_by_label("Describe your instant shots").fill("the backpack on a wooden bench")
    page.locator("#shoot details.advanced summary").click()
    page.get_by_label("Sampling steps").fill("2")
    page.get_by_label("Reference model").fill("tiny-flux2")
    camera.shoot("instant-form")
    page.get_by_test_id("start-instant").click()
    instant = page.get_by_test_id("shoot").first
    expect(instant.get_by_test_id("job-mode")).to_have_text("Instant")
    expect(instant.get_by_test_id("download-zip")).to_be_visible(timeout=120_000)
    expect(instant.get_by_test_id("shot")).to_have_count(1)
    assert re.search(r"DINO\s+-?\d\.\d\d", instant.locator(".scores").inner_text())
    camera.shoot("instant-gallery")

    # 4. Train tiny for a few steps: the bar moves to done, samples appear, LoRA files listed.
    page.locator("#training details.advanced summary").click()
    # The presets' steps and the base models suggested come from the model families (/v1/models).
    models = studio.api("GET", "/v1/models")
    quick = models["data"][0]["training_steps"]["quick"]
    expect(page.locator("#training small[data-preset=quick]")).to_have_text(
        f"{quick} steps · a first look"
    )
    suggested = page.locator("#base-models option").evaluate_all("(os) => os.map((o) => o.value)")
    assert suggested == [m["id"] for m in models["data"] if m["trains"]]
    assert "Tongyi-MAI/Z-Image" in suggested
    expect(page.get_by_label("Base model")).to_have_attribute(
        "placeholder", models["training_default"]
    )
    page.get_by_label("Steps", exact=True).fill(str(TRAIN_STEPS))
    page.get_by_text("Quick", exact=True).click()
    # A bad value comes back from the API as a sentence next to the form, nothing starts.
    page.get_by_label("Base model").fill("../../etc/passwd")
    page.get_by_test_id("start-training").click()
    expect(page.locator("#training [role=alert]")).to_contain_text("Hugging Face Hub id")
    expect(page.get_by_label("Base model")).to_have_attribute("aria-invalid", "true")
    camera.shoot("training-bad-model")
    page.get_by_label("Base model").fill("tiny")
    camera.shoot("training-options")

    # Every text the progress line shows is recorded: a fast machine may finish 4 steps
    # between two looks, a recording can't miss them.
    page.evaluate(
        """() => {
          window.progressSeen = [];
          new MutationObserver(() => {
            const line = document.querySelector("[data-testid=training-step]");
            if (line) window.progressSeen.push(line.textContent);
          }).observe(document.body, { subtree: true, childList: true, characterData: true });
        }"""
    )
    page.get_by_test_id("start-training").click()
    expect(page.get_by_test_id("training-progress")).to_be_visible()
    page.wait_for_function(
        "(n) => window.progressSeen.some((t) => t.endsWith(` of ${n}`) && t.includes('step'))",
        arg=TRAIN_STEPS,
        timeout=120_000,
    )
    camera.shoot("training-progress")
    done = page.get_by_test_id("training-done")
    expect(done).to_be_visible(timeout=120_000)
    seen = page.evaluate("window.progressSeen")
    steps = [int(m.group(1)) for t in seen if (m := re.search(r"step (\d+) of", t))]
    assert steps and steps == sorted(steps), seen  # the bar only moves forward
    assert any(re.search(r"Checking photos|Cropping photos|Encoding photos", t) for t in seen), seen
    expect(done.locator(".samples img").first).to_be_visible()
    lora_links = done.get_by_test_id("lora-file")
    expect(lora_links.first).to_be_visible()
    names = [link.get_attribute("data-file") for link in lora_links.all()]
    assert "pytorch_lora_weights.safetensors" in names, names
    assert "pytorch_lora_weights_kohya.safetensors" in names, names
    camera.shoot("training-done")

    with page.expect_download() as lora_download:
        done.locator("[data-file='pytorch_lora_weights.safetensors']").click()
    lora_path = tmp_path / "lora.safetensors"
    lora_download.value.save_as(lora_path)
    header_len = int.from_bytes(lora_path.read_bytes()[:8], "little")
    header = json.loads(lora_path.read_bytes()[8 : 8 + header_len])
    assert any("lora" in key for key in header), list(header)[:5]

    # 5. Shoot: two descriptions, one preset; the gallery fills in with scores.
    page.get_by_test_id("start-shoot").click()  # nothing described yet: said on the spot
    expect(page.locator("#shoot [role=alert]")).to_contain_text("Describe at least one shot")
    page.get_by_label("Describe your shots").fill(
        "the backpack on a wooden bench\nthe backpack on a mountain trail"
    )
    page.locator("#shoot details.advanced summary").click()
    page.get_by_label("Shots per description").fill("1")
    page.get_by_label("Sampling steps").fill("2")
    # Delivered to Shopify and to Amazon's main image, which takes no drawn shot: the badge
    # says so.
    for marketplace in ("Amazon main", "Shopify"):
        page.get_by_test_id("profiles").get_by_text(marketplace, exact=True).click()
        expect(page.get_by_label(marketplace)).to_be_checked()
    camera.shoot("shoot-form")
    page.get_by_test_id("start-shoot").click()
    # The new shoot's block, above the instant one (which is done: a zip to download already).
    expect(page.get_by_test_id("shoot")).to_have_count(2)
    shoot = page.get_by_test_id("shoot").first
    expect(shoot).to_be_visible()
    expect(shoot.get_by_test_id("download-zip")).to_be_visible(timeout=120_000)
    shots = shoot.get_by_test_id("shot")
    expect(shots).to_have_count(2)
    for text in shots.locator(".scores").all_inner_texts():
        assert re.search(r"DINO\s+-?\d\.\d\d", text), text  # scored, not blank
    shoot_id = shoot.get_attribute("data-shoot")
    from_api = studio.api("GET", f"/v1/shoots/{shoot_id}")
    assert from_api["status"] == "succeeded"
    flagged = sum(shot["product_missing"] for shot in from_api["shots"])
    expect(shoot.get_by_test_id("product-missing")).to_have_count(flagged)
    badge = shots.first.get_by_test_id("badge").filter(has_text="Amazon main")
    expect(badge).to_have_text("Amazon main: fail")
    expect(badge).to_have_attribute("title", re.compile("drawn by the model"))
    export_zip = shoot.get_by_test_id("export-zip")
    expect(export_zip).to_have_attribute("href", f"/v1/shoots/{shoot_id}/exports/zip")
    # The shop's CSV links every image where the merchant puts the zip's folders online.
    shopify_csv = shoot.get_by_test_id("export-shopify")
    expect(shopify_csv).to_have_attribute("aria-disabled", "true")
    shoot.get_by_label("Where the images will be online").fill("https://cdn.example.com/bag/")
    expect(shopify_csv).to_have_attribute(
        "href", re.compile(r"/exports/shopify\?image_base_url=https%3A%2F%2Fcdn.*&profile=shopify$")
    )
    camera.shoot("gallery")

    shots.first.get_by_role("button", name="View this shot larger").click()
    viewer = page.locator("dialog.viewer")
    expect(viewer).to_be_visible()
    expect(viewer).to_contain_text("Seed")
    expect(viewer.get_by_test_id("verdicts")).to_contain_text("drawn by the model")
    camera.shoot("shot-viewer", full_page=False)
    viewer.get_by_role("button", name="Close").click()
    expect(viewer).to_have_count(0)

    with page.expect_download() as zip_download:
        shoot.get_by_test_id("download-zip").click()
    zip_path = tmp_path / "shots.zip"
    zip_download.value.save_as(zip_path)
    with zipfile.ZipFile(zip_path) as archive:
        pngs = [n for n in archive.namelist() if n.endswith(".png")]
    assert len(pngs) >= 2, archive.namelist()
    with page.expect_download() as delivery_download:
        export_zip.click()
    with zipfile.ZipFile(delivery_download.value.path()) as archive:
        names = archive.namelist()
    assert "delivery.json" in names and sum(n.endswith(".jpg") for n in names) == 2, names

    with page.expect_download() as shot_download:
        shots.first.get_by_test_id("download-shot").click()
    shot_bytes = Path(shot_download.value.path()).read_bytes()
    from PIL import Image

    assert Image.open(io.BytesIO(shot_bytes)).size[0] > 0

    # 6. Keep the product's pixels: the backpack cut out of one photo, a scene painted
    #    around it, and the gallery filling in beside the generated shots.
    page.get_by_text("Keep my product's pixels", exact=True).click()
    picker = page.get_by_test_id("place-photos")
    expect(picker.locator("label")).to_have_count(len(photos))
    page.get_by_test_id("start-placement").click()  # nothing described yet: said on the spot
    expect(page.locator("#shoot [role=alert]")).to_contain_text("Describe the scene")
    picker.locator("label").nth(1).click()
    page.get_by_label("Describe the scene").fill("on a wooden bench in a sunny park")
    page.locator("#shoot details.advanced summary").click()
    page.get_by_label("Shots per scene").fill("2")
    page.get_by_label("Sampling steps").fill("2")
    page.get_by_label("Inpainting model").fill("tiny-inpaint")
    page.get_by_label("Use my trained model too").check()
    camera.shoot("place-form")
    page.get_by_test_id("start-placement").click()
    placement = page.get_by_test_id("placement").first
    expect(placement).to_be_visible()
    expect(placement.get_by_test_id("job-mode")).to_have_text("Your pixels")
    expect(placement.get_by_test_id("download-zip")).to_be_visible(timeout=120_000)
    placed = placement.get_by_test_id("shot")
    expect(placed).to_have_count(2)
    for text in placed.locator(".scores").all_inner_texts():
        assert re.search(r"DINO\s+-?\d\.\d\d", text), text
    expect(placement.get_by_test_id("cutout")).to_contain_text("as photographed")
    expect(placement.get_by_test_id("cutout").locator("img")).to_be_visible()
    placement_id = placement.get_attribute("data-placement")
    from_api = studio.api("GET", f"/v1/placements/{placement_id}")
    assert from_api["status"] == "succeeded", from_api
    second_photo = studio.api("GET", f"/v1/products/{from_api['product_id']}/photos")["data"][1]
    assert from_api["photo_id"] == second_photo["id"]
    assert from_api["training_id"] and from_api["request"]["model"] == "tiny-inpaint"
    assert all(shot["placement"]["width"] > 0 for shot in from_api["shots"])
    flagged = sum(shot["product_missing"] for shot in from_api["shots"])
    expect(placement.get_by_test_id("product-missing")).to_have_count(flagged)
    expect(page.get_by_test_id("shoot")).to_have_count(2)  # every mode in one gallery
    camera.shoot("placement-gallery")

    placed.first.get_by_role("button", name="View this shot larger").click()
    viewer = page.locator("dialog.viewer")
    expect(viewer).to_contain_text("not painted over")
    camera.shoot("placement-viewer", full_page=False)
    viewer.get_by_role("button", name="Close").click()
    expect(viewer).to_have_count(0)

    with page.expect_download() as place_download:
        placement.get_by_test_id("download-zip").click()
    place_zip = tmp_path / "placement.zip"
    place_download.value.save_as(place_zip)
    with zipfile.ZipFile(place_zip) as archive:
        names = archive.namelist()
    assert "place.json" in names and "cutout.png" in names, names
    assert sum(n.endswith(".png") and "place-" in n for n in names) == 2, names

    # 7. Back to the products list, where a product made through the API shows up too.
    teapot = studio.api("POST", "/v1/products", {"name": "Ceramic teapot", "class_name": "teapot"})
    page.get_by_role("link", name="Products").first.click()
    expect(page.get_by_test_id("product-card")).to_have_count(2)
    card = page.get_by_test_id("product-card").filter(has_text="Trail backpack")
    expect(card).to_contain_text(f"{len(photos)} photos")
    expect(card).to_contain_text("Ready to shoot")
    expect(card.locator(".cover img")).to_be_visible()
    expect(page.get_by_test_id("product-card").filter(has_text="Ceramic teapot")).to_contain_text(
        "Needs photos"
    )
    camera.shoot("products")

    # A reload keeps the session (cookie) and lands on the trained product with its gallery.
    card.click()
    page.reload()
    expect(page.get_by_test_id("training-done")).to_be_visible()
    expect(page.get_by_test_id("shot")).to_have_count(5)  # the instant, shoot and placement shots
    camera.shoot("product-reloaded")

    # 8. The catalogue: a tote with good photos and no model, the teapot with two photos (not
    #    enough); every product's state, the shot list, one button; each product's outcome.
    small = _small_photos(photos)
    tote = studio.api("POST", "/v1/products", {"name": "Canvas tote", "class_name": "bag"})
    studio.upload(tote["id"], small)
    studio.upload(teapot["id"], small[:2])
    page.get_by_role("link", name="Catalogue").click()
    rows = page.get_by_test_id("catalogue-row")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="Trail backpack")).to_contain_text("Trained")
    expect(rows.filter(has_text="Ceramic teapot").get_by_test_id("verdict")).to_have_text(
        "Not enough"
    )
    expect(rows.filter(has_text="Canvas tote")).to_contain_text("Not trained")
    expect(page.get_by_test_id("shot-row")).to_have_count(3)  # the page's default list
    # One shot per product is enough to follow the job through the page (the API's catalogue
    # test shoots the whole list): the rows' own remove buttons take the other two away.
    for n in (3, 2):
        page.get_by_role("button", name=f"Remove shot {n}").click()
    expect(page.get_by_test_id("shot-row")).to_have_count(1)
    page.get_by_text("eBay", exact=True).click()
    expect(page.get_by_label("eBay")).to_be_checked()
    page.locator("form details.advanced summary").click()
    page.get_by_label("Base model").fill("tiny")
    page.get_by_label("Training steps").fill(str(TRAIN_STEPS))
    page.get_by_label("Sampling steps").fill("2")
    # Instant shots with a model that takes no references: refused at once (422), no job.
    instant = page.get_by_label("Instant shots, no training")
    instant.check()
    expect(page.get_by_label("Training steps")).to_be_disabled()
    offered = page.locator("#catalogue-models option").evaluate_all(
        "(os) => os.map((o) => o.value)"
    )
    assert offered == [m["id"] for m in models["data"] if m["takes_references"]]
    page.get_by_test_id("start-catalogue").click()
    refused = page.get_by_role("alert").filter(has_text="takes no reference images")
    expect(refused).to_contain_text("FLUX.2 [klein]")
    expect(page.get_by_test_id("catalogue-job")).to_have_count(0)
    instant.uncheck()
    expect(page.get_by_label("Base model")).to_have_value("tiny")  # the merchant's own kept
    camera.shoot("catalogue")
    page.get_by_test_id("start-catalogue").click()
    job = page.get_by_test_id("catalogue-job")
    expect(job).to_have_attribute("data-status", "succeeded", timeout=240_000)
    outcomes = job.get_by_test_id("catalogue-product")
    expect(outcomes).to_have_count(3)
    failed = outcomes.filter(has_text="Ceramic teapot")
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed).to_contain_text("not enough to train on")
    for name in ("Trail backpack", "Canvas tote"):
        done = outcomes.filter(has_text=name)
        expect(done).to_have_attribute("data-status", "done")
        expect(done.get_by_test_id("catalogue-shot")).to_have_count(1)
        expect(rows.filter(has_text=name).get_by_test_id("compliance")).to_contain_text("eBay")
    expect(rows.filter(has_text="Canvas tote")).to_contain_text("Trained in the catalogue")
    routes = {"Trail backpack": "model", "Canvas tote": "trained"}
    for name, route in routes.items():
        shown = outcomes.filter(has_text=name).get_by_test_id("product-route")
        expect(shown).to_have_attribute("data-route", route)
    expect(job.get_by_test_id("catalogue-cost")).to_contain_text("against £10.00")
    camera.shoot("catalogue-done")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to your studio")).to_be_visible()
    context.close()
    assert not errors, errors
