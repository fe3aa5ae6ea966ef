"""The studio's side of test_ray_cluster, run as a script on the "head" (a process of its own,
since the test session may have a local Ray already): the job store and its data folder here,
the studio's Ray runner joined to the cluster at RAY_ADDRESS; a training, whose worker is
killed after its first checkpoint, then a shoot of its model. Prints what happened as JSON.

    python tests/ray_cluster_support.py DATA_DIR PHOTOS_DIR
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from packshot.jobs import store
from packshot.jobs.kinds import ShootParams, TrainingParams
from packshot.jobs.models import Job, Product
from packshot.jobs.ray.driver import _ray
from packshot.jobs.runner import make_runner
from packshot.jobs.settings import ServiceSettings

data, photos = Path(sys.argv[1]), sys.argv[2]
url = f"sqlite:///{data / 'packshot.db'}"
store.migrate(url)
settings = ServiceSettings(data_dir=data, database_url=url, runner="ray")
runner = make_runner(settings)
db = store.Database(url)
with db.session() as session:
    merchant, _ = store.create_merchant(session, "Acme")
    session.add(Product(id="prd_1", merchant_id=merchant.id, name="bag", class_name="bag"))
    session.commit()
    merchant_id = merchant.id
runner.start()
ray = _ray()
nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
report: dict[str, Any] = {"nodes": {k: sorted(v) for k, v in nodes.items()}, "killed": None}


def run(kind: str, params: object, kill_at_checkpoint: bool) -> dict[str, Any]:
    with db.session() as session:
        job = store.enqueue(
            session,
            merchant_id=merchant_id,
            product_id="prd_1",
            kind=kind,
            params=params,
            request={},
            webhook=None,
            prefix="job",
        )
        job_id = job.id
    seen, tasks, deadline = 0, [], time.monotonic() + 300
    while time.monotonic() < deadline:
        with db.session() as session:
            for event in store.events_after(session, job_id, seen, limit=10_000):
                seen = event.id
                data = (event.data or {}).get("data") or {}
                if event.type == "ray_task":
                    tasks.append({"pid": data["pid"], "node_id": data["node_id"]})
                if event.type == "checkpoint" and kill_at_checkpoint and not report["killed"]:
                    os.kill(tasks[-1]["pid"], signal.SIGKILL)
                    report["killed"] = tasks[-1]
            job = session.get(Job, job_id)
            if job.status in store.TERMINAL:
                types = [e.type for e in store.events_after(session, job_id, 0, limit=10_000)]
                return {
                    "id": job_id,
                    "status": job.status,
                    "error": job.error,
                    "result": job.result,
                    "tasks": tasks,
                    "events": types,
                }
        time.sleep(0.1)
    raise SystemExit(f"{kind} {job_id} did not finish")


try:
    training = run(
        "training",
        TrainingParams(
            photos_dir=photos,
            model="tiny",
            class_word="backpack",
            preset="quick",
            max_train_steps=12,
            resolution=64,
            checkpointing_steps=4,
            validation_steps=0,
            learning_rate=1e-3,
            seed=5,
        ),
        kill_at_checkpoint=True,
    )
    report["training"] = training
    model = data / "jobs" / training["id"] / "model"
    report["shoot"] = run(
        "shoot",
        ShootParams(
            model_dir=str(model),
            descriptions=["{product} on a marble table"],
            count=2,
            num_inference_steps=2,
        ),
        kill_at_checkpoint=False,
    )
    shoot_dir = data / "jobs" / report["shoot"]["id"]
    report["shots_here"] = sorted(p.name for p in shoot_dir.rglob("*.png"))
finally:
    runner.stop()
    db.dispose()
print("REPORT " + json.dumps(report))
