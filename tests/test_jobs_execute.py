"""The runner seam: `run_job` trains, shoots and places in a folder, cancels, and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packshot.errors import UsageError
from packshot.jobs.execute import JobCanceled, build_train_config, relative_event, run_job
from packshot.jobs.kinds import KINDS, ShootParams, TrainingParams, to_json
from packshot.models.standins import STAND_IN_SAMPLE_STEPS
from packshot.progress import ProgressEvent

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
}


def _never() -> bool:
    return False


@pytest.fixture(scope="module")
def trained(cache_dir: Path, training_set: Path, tmp_path_factory: pytest.TempPathFactory):
    """A training job canceled after its first checkpoint, then run again in its folder."""
    workdir = tmp_path_factory.mktemp("job") / "training"
    params = TrainingParams(**TRAINING, photos_dir=str(training_set))
    first: list[ProgressEvent] = []

    def cancel_after_checkpoint() -> bool:
        return any(e.data.get("event") == "checkpoint" for e in first)

    with pytest.raises(JobCanceled):
        run_job("training", params, workdir, first.append, cancel_after_checkpoint)
    second: list[ProgressEvent] = []
    result = run_job("training", params, workdir, second.append, _never)
    return workdir, params, first, second, result


def test_a_stand_in_trains_at_its_size_and_samples_in_a_few_steps(cache_dir: Path) -> None:
    params = TrainingParams(photos_dir="photos", model="tiny", class_word="mug", preset="quick")
    config = build_train_config(params, cache_dir=cache_dir)
    assert config.resolution == 64
    assert config.validation_inference_steps == STAND_IN_SAMPLE_STEPS
    params = TrainingParams(**{**vars(params), "resolution": 128})
    config = build_train_config(params, cache_dir=cache_dir)
    assert config.resolution == 128


def test_training_resumes_from_its_checkpoint(trained) -> None:
    workdir, _params, first, second, result = trained
    assert [e.data["step"] for e in first if e.data.get("event") == "step"] == [1, 2]
    assert result.resumed_from == 2
    assert result.final_step == 4
    assert [e.data["step"] for e in second if e.data.get("event") == "step"] == [3, 4]
    assert (workdir / "model" / "pytorch_lora_weights.safetensors").is_file()
    assert "model/pytorch_lora_weights.safetensors" in result.files
    assert all(not f.startswith("model/training-set") for f in result.files)
    assert json.loads((workdir / "result.json").read_text()) == to_json(result)


def test_a_finished_job_returns_its_result_without_work(trained) -> None:
    workdir, params, _first, _second, result = trained
    events: list[ProgressEvent] = []
    assert run_job("training", params, workdir, events.append, _never) == result
    assert events == []


def test_events_leave_the_machine_with_relative_paths(tmp_path: Path) -> None:
    event = ProgressEvent(
        "train", 2, 4, "checkpoint", {"event": "checkpoint", "path": str(tmp_path / "a" / "b")}
    )
    data = relative_event(event, tmp_path)
    assert data["data"]["path"] == "a/b"
    assert data["done"] == 2 and data["total"] == 4


def test_shoot_continues_without_rendering_again(trained, tmp_path: Path) -> None:
    workdir, *_ = trained
    params = ShootParams(
        model_dir=str(workdir / "model"),
        descriptions=["{product} on a marble table"],
        count=3,
        num_inference_steps=2,
        judge=True,
    )
    shoot_dir = tmp_path / "shoot"
    first: list[ProgressEvent] = []

    def cancel_after_first_shot() -> bool:
        return any(e.data.get("event") == "shot" for e in first)

    with pytest.raises(JobCanceled):
        run_job("shoot", params, shoot_dir, first.append, cancel_after_first_shot)
    done_first = sorted(p.name for p in (shoot_dir / "shots").glob("*.png"))
    assert len(done_first) >= 1
    kept = {name: (shoot_dir / "shots" / name).stat().st_mtime_ns for name in done_first}

    second: list[ProgressEvent] = []
    result = run_job("shoot", params, shoot_dir, second.append, _never)
    assert len(result.images) == 3
    assert all(image.scores is not None for image in result.images)
    for name, mtime in kept.items():  # not rendered again
        assert (shoot_dir / "shots" / name).stat().st_mtime_ns == mtime
    messages = [e.message for e in second if e.data.get("event") == "shot"]
    assert sum("(kept)" in m for m in messages) == len(kept)
    assert {i.file for i in result.images} >= {f"shots/{n}" for n in kept}


def test_placement_continues_with_the_same_seed(cache_dir: Path, tmp_path: Path) -> None:
    """A placement given no seed picks one, keeps it in its folder, and a re-run after a
    cancel renders only the missing shots, with the seeds the first run planned; then it
    delivers them to its profiles (pixel-true shots on white: eligible for a main image)."""
    from packshot.place import PlaceRequest
    from placing_support import write_photo

    assert KINDS["placement"].params_type is PlaceRequest
    photo, _mask = write_photo(tmp_path / "photo")
    params = PlaceRequest(
        photo=str(photo),
        descriptions=["on a marble kitchen counter"],
        count=3,
        num_inference_steps=2,
        model="tiny-inpaint",
        cutout_model="grabcut",
        profiles=["amazon-main"],
    )
    workdir = tmp_path / "job"
    first: list[ProgressEvent] = []

    def cancel_after_first_shot() -> bool:
        return any(e.data.get("event") == "shot" for e in first)

    with pytest.raises(JobCanceled):
        run_job("placement", params, workdir, first.append, cancel_after_first_shot)
    written = sorted(p.name for p in (workdir / "placements").glob("*.png"))
    written = [n for n in written if n != "contact-sheet.png"]
    assert 1 <= len(written) < 3  # canceled within one shot
    kept = {n: (workdir / "placements" / n).stat().st_mtime_ns for n in written}
    seed = int((workdir / "seed.txt").read_text())

    second: list[ProgressEvent] = []
    result = run_job("placement", params, workdir, second.append, _never)
    assert [shot.seed for shot in result.shots] == [seed, seed + 1, seed + 2]
    assert [shot.reused for shot in result.shots] == [i < len(kept) for i in range(3)]
    for name, mtime in kept.items():  # not rendered again
        assert (workdir / "placements" / name).stat().st_mtime_ns == mtime
    assert str(result.shots[0].path) == f"placements/{written[0]}"  # relative to the job
    assert result.cutout["source"] == "grabcut"
    assert all(shot.scores is not None for shot in result.shots)
    assert sum(e.data.get("event") == "shot" for e in second) == 3 - len(kept)
    assert json.loads((workdir / "result.json").read_text()) == to_json(result)
    # Delivered into the job's `placements/delivery/`, each shot with its verdict.
    assert [[b["status"] for b in shot.badges] for shot in result.shots] == [["fixed"]] * 3
    assert result.delivery["dir"] == "delivery"
    assert result.delivery["counts"]["amazon-main"]["fixed"] == 3
    assert (workdir / "placements" / "delivery" / "delivery.json").is_file()


def test_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown job kind"):
        run_job("juggle", {}, tmp_path, lambda e: None, _never)
