"""Low-latency shooting on Ray Serve: base pipelines stay loaded, product LoRAs swap per request.

One Serve application per base model (`shoot-<base>`): every product trained on that base is
shot by the same deployment, so products queued behind one base model share its replicas and
never pay for loading the base again. A replica loads the base pipeline once (the runtime's
pipeline cache) and runs each request through the very same `shoot` as the CLI, which loads
the product's LoRA into it for that request and unloads it after. Replicas scale with the
requests waiting, from zero: an idle base model holds no GPU.

    handle = deploy_shooting("stable-diffusion-v1-5/stable-diffusion-v1-5", num_gpus=1)
    result = shoot_with_serve(ShootRequest(model_dir, ["{product} on a desk"]), "shots/")
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from packshot.artifacts.product_model import SHOOT_FILES, ProductModel
from packshot.errors import UsageError
from packshot.jobs.ray.driver import (
    RaySettings,
    _ray,
    connect,
    pack_folder,
    rename_paths,
    unpack_folder,
)
from packshot.shoot import ShootRequest
from packshot.shoot.plan import draw_seed


@dataclass(frozen=True)
class ServeSettings:
    """How a base model's shooting deployment scales."""

    num_gpus: float = 0.0  # per replica; 1 on a GPU cluster
    num_cpus: float = 1.0
    min_replicas: int = 0  # an idle base model holds no GPU
    max_replicas: int = 4
    target_ongoing_requests: float = 1.0  # one shoot at a time per replica (one pipeline)
    downscale_delay_s: float = 300.0  # how long an idle replica keeps its pipeline loaded
    upscale_delay_s: float = 0.0
    # The window the autoscaler averages the requests over, and how often replicas and
    # handles report them (Ray Serve's defaults): an idle deployment reaches zero replicas
    # about look_back_period_s + downscale_delay_s after its last request.
    look_back_period_s: float = 30.0
    metrics_interval_s: float = 10.0


def app_name(base_model: str) -> str:
    """The Serve application that shoots every product of `base_model`."""
    slug = re.sub(r"[^a-z0-9]+", "-", base_model.lower()).strip("-")
    return f"shoot-{slug}"[:60]


class ShootingReplica:
    """One replica: the base pipeline loaded once, any product of that base shot per request."""

    def __init__(self, base_model: str):
        from packshot.models.device import pick_device
        from packshot.models.load import load_pipeline

        self.base_model = base_model
        self.device = pick_device(None)
        load_pipeline(base_model, device=self.device)  # kept in the runtime's pipeline cache
        self.lock = threading.Lock()  # one pipeline: one shoot at a time
        self.served = 0

    def replica_id(self) -> str:
        from ray import serve

        return str(serve.get_replica_context().replica_id.unique_id)

    def shoot(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Shoot `payload["fields"]` with the product model in `payload["model_files"]`."""
        from packshot.shoot import shoot

        with self.lock, tempfile.TemporaryDirectory(prefix="packshot-serve-") as tmp:
            model_dir = Path(tmp) / "model" / payload["model_name"]
            unpack_folder(payload["model_files"], model_dir)
            fields = {**payload["fields"], "model_dir": model_dir, "device": self.device}
            request = ShootRequest(**fields)
            if request.base is not None:
                raise UsageError("A shooting deployment shoots product models, not bases alone.")
            out = Path(tmp) / "out"
            # The same shoot as the CLI's: the cached base pipeline, this product's LoRA loaded
            # into it for this request and unloaded after.
            shoot(request, out)
            self.served += 1
            renames = {str(model_dir): payload["model_dir_original"]}
            return {
                "files": rename_paths(pack_folder(out), renames),
                "replica": self.replica_id(),
                "served": self.served,
            }


def deploy_shooting(
    base_model: str, settings: ServeSettings | None = None, ray_settings: RaySettings | None = None
) -> Any:
    """Start (or update) the shooting application of `base_model`; its DeploymentHandle."""
    ray_settings = ray_settings or RaySettings()
    connect(ray_settings)
    _ray()
    from ray import serve

    settings = settings or ServeSettings()
    serve.start(proxy_location="Disabled")  # requests come through handles, not HTTP
    deployment = serve.deployment(ShootingReplica).options(
        name="ShootingReplica",
        ray_actor_options={"num_gpus": settings.num_gpus, "num_cpus": settings.num_cpus},
        max_ongoing_requests=max(1, int(settings.target_ongoing_requests)),
        autoscaling_config={
            "min_replicas": settings.min_replicas,
            "initial_replicas": settings.min_replicas,
            "max_replicas": settings.max_replicas,
            "target_ongoing_requests": settings.target_ongoing_requests,
            "downscale_delay_s": settings.downscale_delay_s,
            "upscale_delay_s": settings.upscale_delay_s,
            "look_back_period_s": settings.look_back_period_s,
            "metrics_interval_s": settings.metrics_interval_s,
        },
    )
    return serve.run(deployment.bind(base_model), name=app_name(base_model), route_prefix=None)


def running_replicas(base_model: str) -> int:
    """How many replicas of `base_model`'s application are running now."""
    from ray import serve

    application = serve.status().applications.get(app_name(base_model))
    if application is None:
        return 0
    deployment = application.deployments.get("ShootingReplica")
    if deployment is None:
        return 0
    return int(deployment.replica_states.get("RUNNING", 0))


@dataclass
class ServedShoot:
    result: Any  # ShootResult
    replica: str  # the replica that shot it
    served: int  # shoots that replica has served


def shoot_with_serve(request: Any, out_dir: Path | str, *, timeout_s: float = 600.0) -> ServedShoot:
    """Shoot `request` (a ShootRequest with a product model) on its base model's deployment.

    `deploy_shooting(base)` must have run (once per cluster); the shots, sidecars, contact
    sheet and shoot.json land in `out_dir` as a local shoot's do.
    """
    from ray import serve

    from packshot.shoot.run import SUMMARY_FILE

    if request.model_dir is None:
        raise UsageError("Shooting on Ray Serve needs a product model folder (model_dir).")
    out = Path(out_dir)
    if (out / SUMMARY_FILE).exists():
        raise UsageError(f"{out} already holds a shoot ({SUMMARY_FILE}). Choose another folder.")
    model_dir = Path(request.model_dir)
    model = ProductModel.load(model_dir)
    if request.seed is None:
        request = replace(request, seed=draw_seed())
    fields = asdict(request)
    for key in ("model_dir", "prompts_file", "presets_file", "device"):
        fields.pop(key)
    if request.prompts_file is not None or request.presets_file is not None:
        raise UsageError("Pass descriptions and presets by name when shooting on Ray Serve.")
    payload = {
        "fields": fields,
        "model_files": {name: (model_dir / name).read_bytes() for name in SHOOT_FILES},
        "model_name": model_dir.resolve().name,
        "model_dir_original": str(request.model_dir),
    }
    try:
        handle = serve.get_app_handle(app_name(model.base_model))
    except Exception:
        raise UsageError(
            f"No shooting deployment for {model.base_model}: deploy it first "
            "(packshot.jobs.ray.serving.deploy_shooting)."
        ) from None
    value = handle.shoot.remote(payload).result(timeout_s=timeout_s)
    unpack_folder(value["files"], out)
    return ServedShoot(_read_shoot(out), value["replica"], value["served"])


def _read_shoot(out: Path) -> Any:
    """A finished shoot folder as the result a local shoot returns."""
    from packshot.shoot import ShootResult, Shot
    from packshot.shoot.run import CONTACT_SHEET_FILE, SUMMARY_FILE

    summary = json.loads((out / SUMMARY_FILE).read_text("utf-8"))
    shots = []
    for image in summary["images"]:
        sidecar = json.loads((out / image["sidecar"]).read_text("utf-8"))
        shots.append(
            Shot(
                path=out / image["file"],
                sidecar=out / image["sidecar"],
                preset=image.get("preset"),
                description=image.get("description", ""),
                prompt=image["prompt"],
                negative_prompt=sidecar.get("negative_prompt", ""),
                seed=image["seed"],
                width=image["width"],
                height=image["height"],
                device_seconds=float(image.get("device_s", 0.0)),
            )
        )
    return ShootResult(
        out_dir=out,
        shots=shots,
        contact_sheet=out / summary.get("contact_sheet", CONTACT_SHEET_FILE),
        summary_path=out / SUMMARY_FILE,
        warnings=list(summary.get("warnings", [])),
        timings=dict(summary.get("timings", {})),
        cost=dict(summary.get("cost", {})),
    )
