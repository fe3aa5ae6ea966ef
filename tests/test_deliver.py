"""`packshot deliver` and `packshot export` end to end on the tiny models: pixel-true shots
(tiny-inpaint) and shots the model drew (tiny SD 1.5), checked against every marketplace
profile; the tests measure the delivered files themselves (white background, fill, size,
format, colour profile, file size, the IPTC label through exiftool) and parse every export."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image, ImageCms
from typer.testing import CliRunner

from packshot.artifacts.provenance import COMPOSITE, GENERATED
from packshot.cli import app
from packshot.deliver import DeliveryShot, deliver, export_delivery, load_profiles
from packshot.deliver.profiles import get_profiles
from packshot.deliver.shop import ALT_TEXT_MAX, GOOGLE_COLUMNS, SHOPIFY_COLUMNS, alt_text
from packshot.deliver.upscale import FAITHFUL_DINO, diffusion_upscaler, dino_similarity, resize
from packshot.errors import UsageError
from packshot.place import PlaceRequest, place
from placing_support import product_photo, write_photo
from test_artifacts_shots import exiftool_source_type

runner = CliRunner()
ALL = "amazon-main,amazon-additional,shopify,google,ebay,etsy"
BASE_URL = "https://cdn.example.com/shop/"
HERE = Path(__file__).resolve().parent
BACKPACK = sorted((HERE.parent / "examples" / "backpack").glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict[str, Path]:
    """A placement (2 pixel-true shots) and a shoot of the tiny base model (1 drawn shot)."""
    root = tmp_path_factory.mktemp("deliver-shots")
    photo, _ = write_photo(root / "photo")
    placed = root / "placed"
    place(
        PlaceRequest(
            str(photo),
            descriptions=["on a marble counter"],
            presets=["studio", "lifestyle"],
            count=1,
            seed=11,
            num_inference_steps=2,
            cutout_model="grabcut",
            model="tiny-inpaint",
            product="teapot",
            judge=False,
        ),
        placed,
        cache_dir=cache_dir,
    )
    # The drawn shot through the command, delivered as it is shot (`--profile`).
    drawn = root / "drawn"
    args = ["shoot", "--base", "tiny", "{product} on a marble table", "--product", "teapot"]
    args += ["-n", "1", "--seed", "3", "--steps", "2", "--no-judge"]
    result = runner.invoke(app, [*args, "--profile", "amazon-main", "--out", str(drawn)])
    assert result.exit_code == 0, result.output
    assert "amazon-main: 1 fail" in result.output
    assert "photograph of the real product" in " ".join(result.output.split())
    return {"placed": placed, "drawn": drawn}


@pytest.fixture(scope="module")
def delivery(shots: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("delivery") / "out"
    result = runner.invoke(
        app,
        ["deliver", str(shots["placed"]), str(shots["drawn"]), "--profile", ALL, "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "amazon-main: 2 fixed, 1 fail" in result.output
    return out


def _report(delivery: Path) -> dict:
    return json.loads((delivery / "delivery.json").read_text())


def _result(delivery: Path, origin: str, profile: str) -> list[dict]:
    return [
        image["results"][profile]
        for image in _report(delivery)["images"]
        if image["origin"] == origin
    ]


def _outer_band(rgb: np.ndarray) -> np.ndarray:
    band = max(1, round(0.02 * min(rgb.shape[:2])))
    return np.concatenate(
        [
            rgb[:band].reshape(-1, 3),
            rgb[-band:].reshape(-1, 3),
            rgb[:, :band].reshape(-1, 3),
            rgb[:, -band:].reshape(-1, 3),
        ]
    )


def test_every_profile_is_data_with_its_source() -> None:
    profiles = load_profiles()
    assert set(profiles) == {
        "amazon-main",
        "amazon-additional",
        "shopify",
        "google",
        "ebay",
        "etsy",
    }
    for profile in profiles.values():
        assert profile.rules, profile.name
        for rule in profile.rules.values():
            assert rule.source.startswith("https://") and rule.says, (profile.name, rule.name)
    amazon = profiles["amazon-main"]
    assert amazon.generated == "fail" and amazon.white_background
    assert amazon.fill is not None and amazon.fill.min == 0.85
    assert "WEBP" not in amazon.value("formats") and amazon.value("max_file_bytes") == 10_000_000
    assert profiles["etsy"].generated == "warn"
    assert profiles["google"].value("ai_label") is True
    with pytest.raises(UsageError, match="Unknown marketplace profile walmart"):
        get_profiles("amazon-main,walmart")


@pytest.mark.budget(30)  # its setup: the module's placement and shoot, and the CLI's delivery
def test_amazon_main_pixel_true_on_exact_white_and_drawn_shots_refused(delivery: Path) -> None:
    placed = _result(delivery, "pixel-true", "amazon-main")
    assert [r["status"] for r in placed] == ["fixed", "fixed"]
    for result in placed:
        path = delivery / result["file"]
        with Image.open(path) as image:
            assert image.format == "JPEG"
            icc = ImageCms.ImageCmsProfile(__import__("io").BytesIO(image.info["icc_profile"]))
            assert icc.profile.profile_description.startswith("sRGB")
            rgb = np.asarray(image.convert("RGB"))
        height, width = rgb.shape[:2]
        assert (width, height) == (1600, 1600)  # Amazon's recommended size, square
        # The background: every pixel of the outer band exactly (255, 255, 255).
        assert np.all(_outer_band(rgb) == 255)
        # The product fills at least 85% of the frame (its box, from the non-white pixels).
        ys, xs = np.nonzero(np.any(rgb < 250, axis=-1))
        fill = max((xs.max() + 1 - xs.min()) / width, (ys.max() + 1 - ys.min()) / height)
        assert 0.85 <= fill <= 0.95
        assert path.stat().st_size <= 10_000_000
        assert exiftool_source_type(path).endswith(COMPOSITE)
        assert "background made pure white from the cut-out mask" in result["fixes"]
    (drawn,) = _result(delivery, "generated", "amazon-main")
    assert drawn["status"] == "fail" and drawn["file"] is None
    assert drawn["problems"][0]["rule"] == "generated"
    assert "photograph of the real product" in drawn["problems"][0]["reason"]
    assert drawn["problems"][0]["source"].startswith("https://sellercentral.amazon.com/")


def test_other_profiles_measured_on_the_files(delivery: Path) -> None:
    expected = {  # profile: (long side, file size limit)
        "amazon-additional": (1600, 10_000_000),
        "shopify": (2048, 20_000_000),
        "google": (1500, 16_000_000),
        "ebay": (1600, 12_000_000),
        "etsy": (2000, 1_000_000),
    }
    for profile, (long_side, max_bytes) in expected.items():
        for origin in ("pixel-true", "generated"):
            for result in _result(delivery, origin, profile):
                assert result["status"] in ("fixed", "warn"), (profile, origin, result)
                path = delivery / result["file"]
                with Image.open(path) as image:
                    assert image.format == "JPEG" and max(image.size) == long_side
                    assert image.info["icc_profile"]
                    if profile == "shopify":
                        assert image.width == image.height  # Shopify's square
                assert path.stat().st_size <= max_bytes
                label = GENERATED if origin == "generated" else COMPOSITE
                assert exiftool_source_type(path).endswith(label)
    # Etsy warns about a drawn shot; Google's fill is within 75-90%.
    (etsy,) = _result(delivery, "generated", "etsy")
    assert etsy["status"] == "warn" and etsy["warnings"][0]["rule"] == "generated"
    for result in _result(delivery, "pixel-true", "google"):
        assert 0.75 <= result["measured"]["fill"] <= 0.9


def test_a_shoot_delivers_into_its_own_folder(shots: dict[str, Path]) -> None:
    """`packshot shoot --profile` writes `deliver`'s folder into OUT/delivery, the layout the
    studio's exports read: the drawn shot refused for Amazon's main image, with its rule."""
    report = json.loads((shots["drawn"] / "delivery" / "delivery.json").read_text())
    (image,) = report["images"]
    assert Path(image["source"]).parent == shots["drawn"] and image["origin"] == "generated"
    (badge,) = report["badges"][image["source"]]
    assert (badge["profile"], badge["status"]) == ("amazon-main", "fail")
    assert "drawn by the model" in badge["title"]
    assert (shots["drawn"] / "delivery" / "report.html").is_file()


def test_report_json_html_and_badges(delivery: Path) -> None:
    report = _report(delivery)
    assert report["kind"] == "packshot-delivery" and len(report["images"]) == 3
    assert report["counts"]["amazon-main"] == {"pass": 0, "fixed": 2, "warn": 0, "fail": 1}
    drawn = next(i for i in report["images"] if i["origin"] == "generated")
    badges = report["badges"][drawn["source"]]
    assert [b["profile"] for b in badges] == ALL.split(",")
    assert badges[0]["status"] == "fail" and "photograph" in badges[0]["title"]
    assert drawn["product"] == "teapot" and "teapot on a marble table" in drawn["description"]
    page = (delivery / "report.html").read_text()
    assert page.count("<tr>") == 4 and "Amazon main" in page and ">fail<" in page
    for image in report["images"]:
        for result in image["results"].values():
            if result["file"]:
                assert f'href="{result["file"]}"' in page


def _delivered(delivery: Path, url: str) -> Path:
    assert url.startswith(BASE_URL), url
    path = delivery / unquote(url.removeprefix(BASE_URL))
    assert path.is_file(), url
    return path


def test_exports_parse_and_point_at_delivered_files(shots: dict[str, Path], tmp_path: Path) -> None:
    # Two products: the placed teapot (lifestyle shot first on disk, studio as main) and a
    # drawn mug; slots from the shot list.
    placed = sorted(shots["placed"].glob("0*.png"))
    (drawn,) = sorted(shots["drawn"].glob("0*.png"))
    items = [
        DeliveryShot(placed[1], slot="lifestyle"),
        DeliveryShot(placed[0], slot="main"),
        DeliveryShot(drawn, product="blue-mug", title="Blue mug", slot="main"),
    ]
    out = tmp_path / "delivery"
    deliver(items, ["shopify", "google", "amazon-main"], out)
    feeds = tmp_path / "feeds"

    shopify = export_delivery(out, "shopify", feeds, image_base_url=BASE_URL)
    with shopify.path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == SHOPIFY_COLUMNS
    assert [(r["Handle"], r["Image Position"]) for r in rows] == [
        ("teapot", "1"),
        ("teapot", "2"),
        ("blue-mug", "1"),
    ]
    assert (
        rows[0]["Title"] == "teapot" and rows[1]["Title"] == "" and rows[2]["Title"] == "Blue mug"
    )
    assert "studio" in rows[0]["Image Src"]  # the main image first
    for row in rows:
        assert _delivered(out, row["Image Src"]).parent.name == "shopify"
        assert 0 < len(row["Image Alt Text"]) <= ALT_TEXT_MAX
    assert rows[0]["Image Alt Text"].startswith("teapot: ")

    woo = export_delivery(out, "woocommerce", feeds, image_base_url=BASE_URL, profile="shopify")
    with woo.path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["SKU", "Name", "Images"] and [r["SKU"] for r in rows] == [
        "teapot",
        "blue-mug",
    ]
    urls = rows[0]["Images"].split(", ")
    assert len(urls) == 2 and "studio" in urls[0]
    assert all(_delivered(out, u) for r in rows for u in r["Images"].split(", "))

    google = export_delivery(out, "google", feeds, image_base_url=BASE_URL)
    with google.path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert list(rows[0]) == GOOGLE_COLUMNS
    teapot = rows[0]
    assert "studio" in teapot["image_link"] and "lifestyle" in teapot["lifestyle_image_link"]
    assert teapot["additional_image_link"] == ""
    for row in rows:
        for url in [
            row["image_link"],
            row["lifestyle_image_link"],
            *row["additional_image_link"].split(","),
        ]:
            if url:
                assert _delivered(out, url).parent.name == "google"

    # Amazon's main image: only the pixel-true shots; the drawn one is left out, with why.
    amazon = export_delivery(
        out, "woocommerce", feeds, image_base_url=BASE_URL, profile="amazon-main"
    )
    assert amazon.images == 2 and "photograph" in amazon.left_out[0]

    packed = export_delivery(out, "zip", feeds)
    with zipfile.ZipFile(packed.path) as archive:
        names = set(archive.namelist())
    assert {"delivery.json", "report.html"} <= names
    assert {n.split("/")[0] for n in names if n.endswith(".jpg")} == {"teapot", "blue-mug"}

    with pytest.raises(UsageError, match="image-base-url"):
        export_delivery(out, "shopify", feeds)
    with pytest.raises(UsageError, match="not a delivery"):
        export_delivery(tmp_path, "shopify", feeds, image_base_url=BASE_URL)


def test_cli_export_and_bad_input_are_one_line(delivery: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "export",
            str(delivery),
            "--format",
            "shopify",
            "--image-base-url",
            BASE_URL,
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        tmp_path / "shopify-products.csv"
    ).is_file() and "3 images of 1 products" in result.output
    bad = runner.invoke(
        app, ["deliver", str(tmp_path / "nope"), "--profile", "shopify", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "does not exist" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["export", str(delivery), "--format", "csv", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "Unknown export format" in bad.output


def test_a_real_photo_to_every_size_with_lanczos(tmp_path: Path) -> None:
    """The CPU fallback on a real photo (DreamBench's backpack, 3:4): downsized, squared only
    where that cuts nothing, an sRGB JPEG, and no AI label on a photograph."""
    report = deliver([BACKPACK], ["shopify", "ebay", "google"], tmp_path)
    (image,) = report.images
    assert image.origin == "photo"
    for name, result in image.results.items():
        assert result.status in ("fixed", "warn", "pass"), (name, result)
        assert result.method in (None, "lanczos")
        with Image.open(tmp_path / str(result.file)) as delivered:
            assert delivered.format == "JPEG" and "xmp" not in delivered.info
            sharp = np.asarray(delivered.convert("L"), np.float32)
        assert np.abs(np.diff(sharp, axis=1)).mean() > 1.0  # not a blur


def test_a_scene_is_never_padded_but_a_flat_background_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The product fills 91% of the frame: Google wants at most 90%. On a scene (a
    # gradient) more of it would have to be drawn; on one flat colour, padding is honest.
    scene, mask = product_photo(size=(200, 200), box=(9, 9, 191, 191))
    flat = np.where(mask[..., None] > 0, np.asarray(scene), np.uint8([90, 120, 200]))
    for name, pixels in (("scene", np.asarray(scene)), ("flat", flat.astype(np.uint8))):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    monkeypatch.chdir(tmp_path)  # paths as a caller passes them: relative ones too
    report = deliver([Path("scene.png"), Path("flat.png")], ["google"], Path("out"))
    assert set(report.badges()) == {"scene.png", "flat.png"}  # keyed as passed in
    scene_result, flat_result = (image.results["google"] for image in report.images)
    assert scene_result.status == "fail" and scene_result.problems[0]["rule"] == "fill"
    assert "would have to be drawn" in scene_result.problems[0]["reason"]
    assert flat_result.status == "fixed", flat_result
    assert any(fix.startswith("padded with its background colour") for fix in flat_result.fixes)


def test_alt_text_is_at_most_512_characters() -> None:
    assert alt_text("Teapot", "on a table") == "Teapot: on a table"
    assert len(alt_text("Teapot", "x " * 600)) == ALT_TEXT_MAX


def test_diffusion_upscaler_on_a_tiny_model_and_its_fidelity_check(cache_dir: Path) -> None:
    """diffusers' x4 upscaler (tiny, random weights): 4x larger; kept when the judge finds it
    faithful to the Lanczos enlargement, else Lanczos is delivered and the report says why."""
    upscaler = diffusion_upscaler("tiny-upscaler", cache_dir=cache_dir)
    small = Image.open(BACKPACK).convert("RGB").resize((16, 16))
    assert upscaler(small).size == (64, 64)
    kept = resize(small, (64, 64), upscaler=upscaler, upscaler_name="tiny-upscaler")
    assert kept.method == "tiny-upscaler" and kept.image.size == (64, 64)
    # The judge's re-check (the tiny DINO stand-in here): an image is faithful to itself.
    similarity = dino_similarity("tiny-upscaler", cache_dir=cache_dir)
    assert similarity(kept.image, kept.image) == pytest.approx(1.0, abs=1e-4)
    checked = resize(
        small, (64, 64), upscaler=upscaler, upscaler_name="tiny-upscaler", similarity=similarity
    )
    assert checked.method in ("tiny-upscaler", "lanczos") and checked.image.size == (64, 64)
    refused = resize(
        small,
        (64, 64),
        upscaler=upscaler,
        upscaler_name="tiny-upscaler",
        similarity=lambda a, b: FAITHFUL_DINO - 0.1,
    )
    assert refused.method == "lanczos" and "changed the product" in (refused.note or "")


@pytest.mark.slow  # ~3 min on 2 CPU cores: the x4 model on a 400 px shot, decoded at 1600 px
def test_cli_upscales_drawn_shots_with_the_model_and_rechecks_them(
    shots: dict[str, Path], tmp_path: Path
) -> None:
    """`--upscaler tiny-upscaler`: the drawn shot goes through the x4 model, then the tiny
    judge compares it with the Lanczos enlargement; pixel-true shots are never redrawn."""
    out = tmp_path / "out"
    args = ["deliver", str(shots["drawn"]), str(shots["placed"]), "--profile", "ebay"]
    result = runner.invoke(app, [*args, "--upscaler", "tiny-upscaler", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for image in _report(out)["images"]:
        ebay = image["results"]["ebay"]
        with Image.open(out / ebay["file"]) as delivered:
            assert max(delivered.size) == 1600
        if image["origin"] == "pixel-true":
            assert ebay["method"] == "lanczos"
        elif ebay["method"] == "lanczos":  # the judge found the model's image unfaithful
            assert "changed the product (DINO" in ebay["warnings"][0]["reason"]
        else:
            assert ebay["method"] == "tiny-upscaler" and ebay["status"] == "fixed"


def test_a_placed_shot_without_its_cut_out_is_not_whitened(
    shots: dict[str, Path], tmp_path: Path
) -> None:
    """Only the cut-out says which pixels are the product's: a placed shot copied away from
    its folder keeps its scene, and Amazon's main image is refused with what is missing."""
    (studio,) = sorted(shots["placed"].glob("000-*.png"))
    copy = tmp_path / studio.name
    copy.write_bytes(studio.read_bytes())
    copy.with_suffix(".json").write_bytes(studio.with_suffix(".json").read_bytes())
    (image,) = deliver([copy], ["amazon-main"], tmp_path / "out").images
    result = image.results["amazon-main"]
    assert image.origin == "pixel-true" and result.status == "fail"
    assert "product/cutout.png" in result.problems[0]["reason"]
