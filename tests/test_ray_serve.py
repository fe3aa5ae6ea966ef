"""Ray Serve shooting: one deployment per base model, scaled from zero, LoRAs swapped per
request, the same images as a local shoot."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

pytest.importorskip("ray")

from packshot.jobs.ray.serving import (  # noqa: E402
    ServeSettings,
    deploy_shooting,
    running_replicas,
    shoot_with_serve,
)

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    # Ray Serve deprecates `metrics_interval_s` in favour of environment variables read when
    # its processes start; it still honours it, and it is the one knob a test can set.
    pytest.mark.filterwarnings("ignore:The `metrics_interval_s` field:DeprecationWarning"),
]


@pytest.mark.budget(30)  # Serve's controller, then a replica from zero (the model stack)
def test_products_of_one_base_share_a_replica_scaled_from_zero(
    ray_local: object, cache_dir: Path, training_set: Path, tmp_path: Path
) -> None:
    from packshot.shoot import ShootRequest, shoot
    from packshot.train import TrainConfig, train

    # 1. Two products of the tiny base: a trained model, and a copy with its LoRA halved.
    config = TrainConfig(
        model="tiny", class_word="backpack", resolution=64, max_train_steps=2, sample_at_end=False
    )
    first = train(config, training_set, tmp_path / "bag-a").model_dir
    second = tmp_path / "bag-b"
    shutil.copytree(first, second)
    lora = second / "pytorch_lora_weights.safetensors"
    save_file({k: v * 0.5 for k, v in load_file(str(lora)).items()}, str(lora))

    # 2. The deployment starts with no replica at all.
    # Short windows, so the scale-down to zero is seen in seconds (Serve's own defaults average
    # the requests over 30 s, reported every 10 s).
    settings = ServeSettings(
        num_cpus=0.5,
        max_replicas=1,
        downscale_delay_s=1.0,
        look_back_period_s=1.0,
        metrics_interval_s=0.25,
    )
    deploy_shooting("tiny", settings)
    assert running_replicas("tiny") == 0

    # 3. Both products go to the one replica the first request started.
    served = []
    for model in (first, second):
        request = ShootRequest(
            model, ["{product} on a desk"], count=2, seed=4, num_inference_steps=2
        )
        served.append(shoot_with_serve(request, tmp_path / f"served-{model.name}"))
        local = shoot(request, tmp_path / f"local-{model.name}")
        for shot in local.shots:  # the LoRA of this request, and only it: local's pixels
            assert (tmp_path / f"served-{model.name}" / shot.path.name).read_bytes() == (
                shot.path.read_bytes()
            )
    assert served[0].replica == served[1].replica
    assert [s.served for s in served] == [1, 2]
    a, b = (sorted(p.read_bytes() for p in s.result.out_dir.glob("0*.png")) for s in served)
    assert a != b  # the second product's own LoRA, not the first's left behind

    # 4. Idle, it goes back to zero replicas.
    deadline = time.monotonic() + 90
    while running_replicas("tiny") > 0:
        assert time.monotonic() < deadline, "the idle deployment never scaled to zero"
        time.sleep(1)
