"""Training survives what users lose hours to: kill -9, NaN losses, existing folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from packshot.artifacts.product_model import work_dir_for
from packshot.errors import PackshotError, PhotoSetError, UsageError
from packshot.progress import ProgressEvent
from packshot.train import TrainConfig, train
from packshot.train.checkpoints import latest_checkpoint
from packshot.train.loop import oom_advice
from training_support import kill_at_first_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EXAMPLE_PHOTOS = Path(__file__).resolve().parents[1] / "examples" / "backpack"


def _config(**overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "model": "tiny",
        "class_word": "backpack",
        "resolution": 64,
        "max_train_steps": 10,
        "learning_rate": 1e-3,
        "checkpointing_steps": 5,
        "sample_at_end": False,  # samples are tested in test_train.py; here they cost time
    }
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.budget(15)  # a training process (its imports) killed, then resumed here
def test_resume_after_kill_9_reaches_the_final_step(
    training_set: Path, cache_dir: Path, tmp_path: Path
) -> None:
    # The kill comes a step or two after the first checkpoint (step 2); the rest is resumed.
    config = _config(max_train_steps=16, checkpointing_steps=2, checkpoints_total_limit=3)
    out = tmp_path / "model"

    # 1. Start a run in another process; kill -9 it as soon as a checkpoint is complete.
    killed_at = kill_at_first_checkpoint(config, training_set, out, cache_dir)

    # 2. Without resume the interrupted run is protected; with it, training finishes.
    with pytest.raises(UsageError, match="resume"):
        train(config, training_set, out, cache_dir=cache_dir)
    events: list[ProgressEvent] = []
    result = train(
        config, training_set, out, resume=True, progress=events.append, cache_dir=cache_dir
    )
    assert result.resumed_from is not None and result.resumed_from >= killed_at.step
    assert result.final_step == config.max_train_steps
    steps = [e.data["step"] for e in events if e.data.get("event") == "step"]
    assert steps == list(range(result.resumed_from + 1, config.max_train_steps + 1))
    meta = json.loads(result.metadata_path.read_text())
    assert meta["resumed_from"] == result.resumed_from
    assert meta["final_step"] == config.max_train_steps
    assert not work_dir_for(out).exists()
    assert not list((out / "checkpoints").glob("*.tmp"))
    assert len(list((out / "checkpoints").iterdir())) <= config.checkpoints_total_limit


def test_nan_loss_rolls_back_and_lowers_the_learning_rate(
    training_set: Path, cache_dir: Path, tmp_path: Path
) -> None:
    config = _config(debug_nan_at_step=8, lr_scheduler="constant")
    events: list[ProgressEvent] = []
    result = train(
        config, training_set, tmp_path / "m", progress=events.append, cache_dir=cache_dir
    )
    assert result.final_step == 10 and result.nan_rollbacks == 1
    rollback = next(e for e in events if e.data.get("event") == "rollback")
    assert rollback.data["step"] == 5 and rollback.data["failed_step"] == 8  # the last checkpoint
    assert rollback.data["lr"] == pytest.approx(config.learning_rate * config.nan_lr_factor)
    steps = [e.data["step"] for e in events if e.data.get("event") == "step"]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 10]  # 6 and 7 again after the roll-back
    last = [e for e in events if e.data.get("event") == "step"][-1]
    assert last.data["lr"] == pytest.approx(config.learning_rate * config.nan_lr_factor)
    assert json.loads(result.metadata_path.read_text())["nan_rollbacks"] == 1


def test_second_nan_fails_clearly_and_the_run_resumes_exactly(
    mixed_training_set: Path, cache_dir: Path, tmp_path: Path
) -> None:
    # Photos of mixed aspects in four buckets at batch 2 (4 batches an epoch: the checkpoint at
    # step 5 falls inside the second epoch, whose plan the resumed run draws again).
    photos = mixed_training_set

    def config(**overrides: object) -> TrainConfig:
        return _config(resolution=96, train_batch_size=2, **overrides)

    # 1. An uninterrupted run, for reference.
    reference = train(config(), photos, tmp_path / "ref", cache_dir=cache_dir)
    assert reference.buckets is not None and len(reference.buckets) == 4

    # 2. The same run with a NaN at step 8, twice: roll back, then fail with a reason.
    out = tmp_path / "model"
    with pytest.raises(PackshotError, match=r"again after rolling back.*learning_rate"):
        train(config(debug_nan_at_step=8, debug_nan_times=2), photos, out, cache_dir=cache_dir)
    assert not out.exists(), "a failed run must leave no model folder"
    assert latest_checkpoint(work_dir_for(out) / "checkpoints").step == 5  # type: ignore[union-attr]

    # 3. Resuming from the checkpoint at step 5 gives exactly the uninterrupted run's LoRA:
    #    weights, optimizer, schedule, random state and the batches all come back.
    resumed = train(config(), photos, out, resume=True, cache_dir=cache_dir)
    assert resumed.resumed_from == 5 and resumed.final_step == 10
    expected, got = load_file(reference.lora_path), load_file(resumed.lora_path)
    assert set(got) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6)


def test_never_overwrites_a_model_without_force(
    training_set: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("a model the merchant already has")
    with pytest.raises(UsageError, match="already exists"):
        train(_config(), training_set, out, cache_dir=cache_dir)
    assert (out / "keep.txt").is_file() and not work_dir_for(out).exists()

    # Forced, and from the raw photos this time: intake runs inside the training run.
    result = train(_config(max_train_steps=2), EXAMPLE_PHOTOS, out, force=True, cache_dir=cache_dir)
    assert result.final_step == 2 and not (out / "keep.txt").exists()
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    assert (out / "training-set" / "packshot.json").is_file()
    photos = json.loads(result.metadata_path.read_text())["photos"]
    assert sorted(p["file"] for p in photos) == sorted(p.name for p in EXAMPLE_PHOTOS.glob("*.jpg"))


def test_refuses_a_photo_set_that_is_not_enough_unless_forced(
    cache_dir: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(EXAMPLE_PHOTOS / "00.jpg", photos / "00.jpg")
    out = tmp_path / "model"
    with pytest.raises(PhotoSetError, match="not enough"):
        train(_config(max_train_steps=1), photos, out, cache_dir=cache_dir)
    assert not out.exists() and not work_dir_for(out).exists()
    result = train(_config(max_train_steps=1), photos, out, force=True, cache_dir=cache_dir)
    assert result.final_step == 1


def test_resume_refuses_a_different_config(
    training_set: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    with pytest.raises(PackshotError):  # fails after the checkpoint at step 5
        train(
            _config(debug_nan_at_step=7, debug_nan_times=2), training_set, out, cache_dir=cache_dir
        )
    with pytest.raises(UsageError, match=r"rank: 4 → 8"):
        train(_config(rank=8), training_set, out, resume=True, cache_dir=cache_dir)

    # A run started before a config field existed (its run.json lacks `buckets`, as a job
    # interrupted by an upgrade): it resumes with the field at its default, never changed.
    run_file = work_dir_for(out) / "run.json"
    recorded = json.loads(run_file.read_text())
    del recorded["buckets"]
    run_file.write_text(json.dumps(recorded))
    with pytest.raises(UsageError, match=r"buckets: True → False"):
        train(_config(buckets=False), training_set, out, resume=True, cache_dir=cache_dir)
    assert train(_config(), training_set, out, resume=True, cache_dir=cache_dir).final_step == 10


def test_a_run_failing_before_its_first_checkpoint_leaves_nothing(
    training_set: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    with pytest.raises(PackshotError, match="unstable"):
        train(
            _config(debug_nan_at_step=2, debug_nan_times=2), training_set, out, cache_dir=cache_dir
        )
    assert not out.exists() and not work_dir_for(out).exists()


def test_bad_inputs_fail_before_loading_anything(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="No photo folder"):
        train(_config(), tmp_path / "missing", tmp_path / "out")


def test_out_of_memory_advice_names_settings() -> None:
    config = _config(resolution=1024, train_batch_size=4, rank=32)
    advice = oom_advice(config, "cuda")
    for setting in (
        "train_batch_size 1",
        "gradient_checkpointing on",
        "resolution 768",
        "rank 16",
    ):
        assert setting in advice
