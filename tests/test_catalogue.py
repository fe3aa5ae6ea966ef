"""Catalogue shoots: the shot list, the catalogue folder, and `packshot catalogue shoot` end to end
on the tiny models: three products (one given its model, one trained here, one whose photos are
all bad), a shot list of three shots, killed with SIGKILL mid-run and run again without redoing
the product it had finished."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from packshot.artifacts.catalogue import (
    OUTCOME_FILE,
    CatalogueProduct,
    handle_for,
    read_catalogue,
)
from packshot.cli import app
from packshot.errors import UsageError
from packshot.flows.catalogue import shoot_catalogue
from packshot.jobs.kinds import KINDS, CatalogueParams, to_json
from packshot.jobs.ray.driver import _path_params, pack_inputs, unpack_inputs
from packshot.shoot.shotlist import ShotList, load_shot_list
from photo_corpus import bad_files, varied_set, write_files

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "shot-list.yaml"
SHOTS = {
    "shots": [
        {"slot": "main", "preset": "studio"},
        {"slot": "additional", "description": "{product} on a grey table", "aspect": "4:5"},
        {"slot": "lifestyle", "preset": "lifestyle", "description": "{product} in a park"},
    ]
}


# -- the shot list -------------------------------------------------------------------------------


def test_example_shot_list_reads() -> None:
    shot_list = load_shot_list(EXAMPLE)
    assert [e.slot for e in shot_list.shots] == ["main", "additional", "lifestyle"]
    assert [e.name for e in shot_list.shots] == ["01-main", "02-additional", "03-lifestyle"]
    assert shot_list.images_per_product == 4
    assert shot_list.shots[0].preset == "studio" and shot_list.shots[0].description is None


def test_shot_list_json_and_yaml_agree(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text(json.dumps(SHOTS))
    import yaml

    (tmp_path / "list.yml").write_text(yaml.safe_dump(SHOTS))
    assert load_shot_list(tmp_path / "list.json") == load_shot_list(tmp_path / "list.yml")


@pytest.mark.parametrize(
    ("shots", "says"),
    [
        ([{"slot": "hero", "preset": "studio"}], "`slot` must be one of main"),
        ([{"slot": "main"}], "give a `description`, a `preset`, or both"),
        ([{"slot": "main", "preset": "nope"}], "unknown preset 'nope'"),
        ([{"slot": "main", "preset": "studio", "count": 0}], "`count` must be 1 to 16"),
        ([{"slot": "main", "preset": "studio", "aspect": "2:1"}], "`aspect` must be one of"),
        ([{"slot": "main", "preset": "studio", "colour": "red"}], "unknown field(s) colour"),
        (
            [{"slot": "main", "preset": "studio", "name": "a"}, {"slot": "main", "name": "a"}],
            "shot 2: give a `description`",
        ),
        (
            [
                {"slot": "main", "preset": "studio", "name": "a"},
                {"slot": "lifestyle", "preset": "lifestyle", "name": "a"},
            ],
            "two shots are named a",
        ),
        ([], "must list 1 to 20 shots"),
    ],
)
def test_shot_list_mistakes_are_named(shots: list, says: str) -> None:
    with pytest.raises(UsageError, match=None) as caught:
        ShotList.from_dict({"shots": shots})
    assert says in str(caught.value)


def test_shot_list_file_mistakes(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_shot_list(tmp_path / "missing.yaml")
    (tmp_path / "list.txt").write_text("shots: []")
    with pytest.raises(UsageError, match=r"\.yaml, \.yml or \.json"):
        load_shot_list(tmp_path / "list.txt")
    (tmp_path / "bad.yaml").write_text("shots: [slot: main\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_shot_list(tmp_path / "bad.yaml")
    (tmp_path / "flat.json").write_text('["main"]')
    with pytest.raises(UsageError, match="must hold `shots:`"):
        load_shot_list(tmp_path / "flat.json")


# -- the catalogue folder ------------------------------------------------------------------------


def make_catalogue(root: Path, product_model: Path) -> Path:
    """Three products: `backpack` with its model (the session's tiny one, copied) and no photos,
    `lamp` whose photos intake rejects every one of, `tote` with good photos and no model yet."""
    catalogue = root / "catalogue"
    backpack = catalogue / "backpack"
    shutil.copytree(product_model, backpack / "model")
    (backpack / "product.json").write_text('{"name": "Trail backpack", "class": "backpack"}')
    write_files(catalogue / "lamp", bad_files()[:6])
    (catalogue / "lamp" / "product.json").write_text('{"name": "Desk lamp", "class": "lamp"}')
    (catalogue / "tote" / "photos").mkdir(parents=True)
    for number, image in enumerate(varied_set(6, size=(320, 320))):
        image.save(catalogue / "tote" / "photos" / f"{number:02d}.jpg", quality=90)
    (catalogue / "tote" / "product.json").write_text('{"name": "Canvas tote", "class": "bag"}')
    return catalogue


def test_read_catalogue(tmp_path: Path, product_model: Path) -> None:
    catalogue = make_catalogue(tmp_path, product_model)
    backpack, lamp, tote = read_catalogue(catalogue)
    assert backpack.model_dir == str((catalogue / "backpack" / "model").resolve())
    assert backpack.photos_dir is None
    assert (backpack.name, backpack.class_word) == ("Trail backpack", "backpack")
    assert lamp.model_dir is None and lamp.photos_dir == str((catalogue / "lamp").resolve())
    assert tote.photos_dir == str((catalogue / "tote" / "photos").resolve())
    assert (tote.handle, tote.class_word) == ("tote", "bag")
    assert handle_for("Trail Backpack!") == "trail-backpack"


def test_catalogue_folder_mistakes(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_catalogue(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no product folders"):
        read_catalogue(tmp_path / "empty")
    (tmp_path / "cat" / "Big Lamp").mkdir(parents=True)
    with pytest.raises(UsageError, match="'big-lamp'"):
        read_catalogue(tmp_path / "cat")
    shutil.rmtree(tmp_path / "cat" / "Big Lamp")
    (tmp_path / "cat" / "lamp").mkdir()
    with pytest.raises(UsageError, match="no photos and no model"):
        read_catalogue(tmp_path / "cat")
    (tmp_path / "cat" / "lamp" / "a.jpg").write_bytes(b"x")
    (tmp_path / "cat" / "lamp" / "product.json").write_text('{"name": "Lamp", "colour": "red"}')
    with pytest.raises(UsageError, match="unknown field"):
        read_catalogue(tmp_path / "cat")


def test_catalogue_params_travel_to_a_ray_worker(tmp_path: Path, product_model: Path) -> None:
    """The Ray driver ships the files a catalogue names inside its product list (photos, a
    product's model without its checkpoints) and points the worker's params at them."""
    products = read_catalogue(make_catalogue(tmp_path, product_model))
    params = CatalogueParams(products=products, shots=list(ShotList.from_dict(SHOTS).shots))
    data = to_json(params)
    keys = [key for key, _ in _path_params(data)]
    assert keys == [
        "products.0.model_dir",
        "products.1.photos_dir",
        "products.2.photos_dir",
    ]
    inputs = pack_inputs(data, (tmp_path / "job").resolve(), KINDS["catalogue"].product_models)
    assert "packshot.json" in inputs["products.0.model_dir"].files
    mapped, renames = unpack_inputs(data, inputs, tmp_path / "worker")
    record = KINDS["catalogue"].load_params(mapped)
    assert Path(record.products[2].photos_dir, "00.jpg").is_file()
    assert Path(record.products[0].model_dir, "packshot.json").is_file()
    assert renames[record.products[1].photos_dir] == products[1].photos_dir
    assert data["products"][0]["model_dir"] == products[0].model_dir  # the driver's untouched


# -- packshot catalogue shoot, killed and run again -------------------------------------------


def _packshot(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("packshot")), *args]


# One real `packshot` process (its start-up imports torch), killed, then the rest in this one: a
# tiny training of 4 steps and 6 judged shots of 2 steps.
@pytest.mark.budget(25)
def test_catalogue_shoot_cli_resumes_after_kill(
    tmp_path: Path, product_model: Path, cache_dir: Path
) -> None:
    catalogue = make_catalogue(tmp_path, product_model)
    shot_list = tmp_path / "shots.json"
    shot_list.write_text(json.dumps(SHOTS))
    out = tmp_path / "out"
    command = _packshot(
        "catalogue", "shoot", str(catalogue), "--shots", str(shot_list), "--out", str(out),
        "--model", "tiny", "--train-steps", "4", "--steps", "2", "--seed", "7", "--json",
    )  # fmt: skip
    env = {**os.environ, "PACKSHOT_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1"}

    # 1. Killed (SIGKILL: nothing runs after it) once the first product is finished.
    first = out / "catalogue" / "backpack" / OUTCOME_FILE
    run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not first.is_file():
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the first product did not finish in 240 s"
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not (out / "result.json").exists()
    kept = {p: p.stat().st_mtime_ns for p in (out / "catalogue" / "backpack").rglob("*")}

    # 2. The same command again (in this process: no second start-up of torch): the finished
    #    product is kept as it was, the rest is done.
    again = CliRunner().invoke(app, command[1:])
    assert again.exit_code == 1, again.output  # one product failed: said in the exit code
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    summary = json.loads(again.stdout)
    outcomes = {p["handle"]: p for p in summary["products"]}
    assert [outcomes[h]["status"] for h in ("backpack", "lamp", "tote")] == [
        "done",
        "failed",
        "done",
    ]
    assert "not enough to train on" in outcomes["lamp"]["error"]
    assert outcomes["lamp"]["verdict"] == "not enough" and outcomes["lamp"]["photos"]["rejected"]
    assert [outcomes[h]["route"] for h in ("backpack", "lamp", "tote")] == [
        "model",
        None,
        "trained",
    ]
    assert outcomes["tote"]["train_s"] > 0 and outcomes["backpack"]["train_s"] == 0
    assert (out / "catalogue" / "tote" / "model" / "packshot.json").is_file()
    for handle in ("backpack", "tote"):
        images = [i for i in summary["images"] if i["product"] == handle]
        assert [i["slot"] for i in images] == ["main", "additional", "lifestyle"]
        for image in images:
            assert (out / image["file"]).is_file() and image["scores"] is not None
        assert images[1]["width"] < images[1]["height"]  # 4:5
    cost = summary["cost"]
    assert cost["images"] == 6 and cost["products_failed"] == 1
    assert 0 < cost["cost_per_image"] < cost["studio_price_per_photo"] == 10.0

    # 3. Finished: a third run returns the result without any work; another list is refused.
    third = CliRunner().invoke(app, command[1:])
    assert json.loads(third.stdout) == summary
    other = tmp_path / "other.yaml"
    other.write_text("shots:\n  - {slot: main, preset: flat-lay}\n")
    (out / "result.json").unlink()
    refused = CliRunner().invoke(app, [*command[1:5], str(other), *command[6:]])
    assert refused.exit_code == 2 and "another catalogue shoot" in refused.stderr
    unknown = CliRunner().invoke(app, [*command[1:], "--profile", "amazon-main,walmart"])
    assert unknown.exit_code == 2 and "Unknown marketplace profile walmart" in unknown.stderr


# A given model's 2-step shot and a tiny-flux2 instant shot, both judged (2-4 s); run again:
# no work.
def test_catalogue_shoot_instant_draws_from_the_photos_without_training(
    tmp_path: Path, product_model: Path, cache_dir: Path
) -> None:
    catalogue = make_catalogue(tmp_path, product_model)
    shot_list = tmp_path / "shots.json"
    shot_list.write_text(json.dumps({"shots": [{"slot": "main", "preset": "studio"}]}))
    out = tmp_path / "out"
    command = ["catalogue", "shoot", str(catalogue), "--shots", str(shot_list), "--out", str(out)]
    command += ["--steps", "2", "--seed", "7", "--json", "--instant"]

    # 1. A model whose family takes no references: refused before any work.
    refused = CliRunner().invoke(app, [*command, "--model", "tiny"])
    assert refused.exit_code == 2 and "takes no reference images" in refused.stderr
    assert "FLUX.2 [klein]" in refused.stderr and not out.exists()
    steps = CliRunner().invoke(app, [*command, "--model", "tiny-flux2", "--train-steps", "4"])
    assert steps.exit_code == 2 and "--instant trains nothing" in steps.stderr
    preset = CliRunner().invoke(app, [*command, "--model", "tiny-flux2", "--preset", "best"])
    assert preset.exit_code == 2 and "--preset" in preset.stderr
    assert "--instant trains nothing" in preset.stderr
    unknown = CliRunner().invoke(app, [*command, "--model", "tiny-flux2", "--preset", "nope"])
    assert unknown.exit_code == 2 and "choose quick, standard, best" in unknown.stderr

    # 2. The tote (photos, no model) drawn from its best photos; the backpack by its own model;
    #    the lamp (no usable photo) fails alone.
    run = CliRunner().invoke(app, [*command, "--model", "tiny-flux2"])
    assert run.exit_code == 1, run.output
    summary = json.loads(run.stdout)
    outcomes = {p["handle"]: p for p in summary["products"]}
    assert [outcomes[h]["status"] for h in ("backpack", "lamp", "tote")] == [
        "done",
        "failed",
        "done",
    ]
    assert "reference" in outcomes["lamp"]["error"]
    tote = outcomes["tote"]
    assert (tote["route"], tote["model_dir"], tote["train_s"]) == ("instant", None, 0.0)
    photos = {p.name for p in (catalogue / "tote" / "photos").iterdir()}
    assert 1 <= len(tote["references"]) <= 4 and set(tote["references"]) <= photos
    assert outcomes["backpack"]["route"] == "model"
    assert not (out / "catalogue" / "tote" / "model").exists()  # nothing trained
    assert not (out / "catalogue" / "tote" / "training-set").exists()
    (image,) = [i for i in summary["images"] if i["product"] == "tote"]
    assert image["scores"] is not None  # judged against all its photos
    shoot = json.loads((out / image["file"]).parent.joinpath("shoot.json").read_text())
    assert shoot["base_model"] == "tiny-flux2"
    assert [Path(r).name for r in shoot["settings"]["references"]] == tote["references"]
    cost = summary["cost"]
    assert cost["images"] == 2 and cost["training_device_seconds"] == 0  # no training to share
    assert cost["cost_per_image"] < cost["studio_price_per_photo"]

    # 3. Run again (its result gone): the finished products are kept, nothing is redone; the
    #    other route is another catalogue shoot.
    kept = {p: p.stat().st_mtime_ns for p in (out / "catalogue").rglob("*") if "tote" in p.parts}
    (out / "result.json").unlink()
    again = CliRunner().invoke(app, [*command, "--model", "tiny-flux2"])
    assert json.loads(again.stdout)["products"] == summary["products"]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    (out / "result.json").unlink()
    trained = CliRunner().invoke(app, [*command[:-1], "--model", "tiny-flux2"])
    assert trained.exit_code == 2 and "differs in instant" in trained.stderr


def test_catalogue_product_record_is_plain(tmp_path: Path) -> None:
    """What the API stores: the params as JSON and back, unknown names refused."""
    params = CatalogueParams(
        products=[CatalogueProduct("tote", "Canvas tote", "bag", photos_dir="/photos")],
        shots=list(ShotList.from_dict(SHOTS).shots),
        model="tiny",
    )
    data = to_json(params)
    assert KINDS["catalogue"].load_params(data) == params
    with pytest.raises(UsageError, match="Unknown catalogue parameter"):
        KINDS["catalogue"].load_params({**data, "colour": "red"})


def test_a_product_out_of_memory_fails_alone(tmp_path: Path) -> None:
    """A product whose training runs out of device memory is that product's failure; the next
    product is still judged, and the summary written."""
    tote = tmp_path / "tote"
    tote.mkdir()
    for number, image in enumerate(varied_set(5, size=(256, 256))):
        image.save(tote / f"{number:02d}.jpg", quality=90)
    lamp = write_files(tmp_path / "lamp", bad_files()[:3])
    products = [
        CatalogueProduct("tote", "Canvas tote", "bag", photos_dir=str(tote)),
        CatalogueProduct("lamp", "Desk lamp", "lamp", photos_dir=str(lamp)),
    ]

    def too_big(product: CatalogueProduct) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    summary = shoot_catalogue(
        products, ShotList.from_dict(SHOTS), tmp_path / "out", train_config=too_big, seed=0
    )
    tote_outcome, lamp_outcome = summary.products
    assert tote_outcome.status == "failed" and "ran out of device memory" in tote_outcome.error
    assert tote_outcome.verdict in ("ready", "usable")  # judged before it failed
    assert lamp_outcome.status == "failed" and "not enough" in lamp_outcome.error
    assert summary.cost["products_failed"] == 2 and summary.images == []
    assert (tmp_path / "out" / "catalogue.json").is_file()
