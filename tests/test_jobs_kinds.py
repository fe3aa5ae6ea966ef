"""The job kinds' table: one record per kind, in the core's names, read without torch."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from packshot.api.schemas import PlacementCreate, ShootCreate, TrainingCreate
from packshot.errors import UsageError
from packshot.jobs.kinds import KINDS, ShootParams, TrainingParams, to_json


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def test_the_api_and_the_jobs_use_the_cores_names() -> None:
    """No renaming table: what a create call takes is what its job's params record holds,
    and a training's options are `TrainConfig`'s own fields."""
    from packshot.place import PlaceRequest
    from packshot.train import TrainConfig

    server_side = {"webhook", "training_id", "photo_id", "mode"}  # mode: which route runs it
    assert set(TrainingCreate.model_fields) - server_side <= _names(TrainingParams)
    assert set(ShootCreate.model_fields) - server_side <= _names(ShootParams)
    assert set(PlacementCreate.model_fields) - server_side <= _names(PlaceRequest)
    overrides = _names(TrainingParams) - {"photos_dir", "preset", "force", "product"}
    assert overrides - {"model", "class_word"} <= set(TrainConfig.model_fields)
    assert KINDS["placement"].params_type is PlaceRequest


def test_params_and_results_are_records_json_only_at_the_boundary() -> None:
    params = ShootParams(model_dir="/m", descriptions=["{product} on a desk"], count=2)
    stored = to_json(params)
    assert stored["count"] == 2 and stored["judge"] is True
    assert KINDS["shoot"].load_params(stored) == params
    assert params.request().count == 2 and not hasattr(params.request(), "judge")
    with pytest.raises(UsageError, match="Unknown training parameter.*steps"):
        KINDS["training"].load_params({"photos_dir": "/p", "model": "tiny", "class_word": "x",
                                       "steps": 4})  # fmt: skip


def test_the_table_loads_without_torch() -> None:
    code = (
        "import sys, packshot.api.app; from packshot.jobs.kinds import KINDS; "
        "assert 'cv2' not in sys.modules, 'OpenCV at start-up'; "
        "[(k.params_type, k.result_type) for k in KINDS.values()]; "
        "assert 'torch' not in sys.modules, 'torch in the API'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
