"""The studio on a Ray cluster of two nodes on this machine: a head (no CPUs for tasks) beside
the studio's process and its data folder, and a second node, each with its own temporary
folder and resources (`ray start --head` and `ray start --address`). The studio's training and
shoot run on the second node; its worker killed mid-training, the job still succeeds, resumed
from the checkpoint that reached the head. Nothing assumes one machine: the photos, the model
and the shots travel through Ray, never through a shared folder."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

pytest.importorskip("ray")

RAY = str(Path(sys.executable).parent / "ray")
SUPPORT = Path(__file__).with_name("ray_cluster_support.py")
MARKER = "PACKSHOT_TEST_RAY_CLUSTER"  # in the environment of every process of the cluster


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cluster_processes(token: str) -> list[int]:
    """The processes started for this cluster (their environment carries the token)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"{MARKER}={token}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@contextmanager
def two_nodes() -> Iterator[tuple[str, dict[str, str]]]:
    """(the head's address, the environment to join it with); everything stopped after."""
    token = secrets.token_hex(8)
    # Short folders: Ray's sockets live in them, and a socket path has at most 107 bytes.
    head_tmp, node_tmp = (Path(tempfile.mkdtemp(prefix=p, dir="/tmp")) for p in ("rh", "rn"))
    env = {**os.environ, MARKER: token, "RAY_AUTH_MODE": "disabled"}
    address = f"127.0.0.1:{_free_port()}"
    common = ["--node-ip-address=127.0.0.1", "--num-gpus=0", "--disable-usage-stats"]
    try:
        subprocess.run(
            [RAY, "start", "--head", f"--port={address.split(':')[1]}", "--num-cpus=0",
             f"--temp-dir={head_tmp}", "--include-dashboard=false", *common],
            env=env, check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        subprocess.run(
            [RAY, "start", f"--address={address}", "--num-cpus=2", '--resources={"second": 1}',
             f"--temp-dir={node_tmp}", *common],
            env=env, check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        yield address, env
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _cluster_processes(token):
                with suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while _cluster_processes(token) and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(head_tmp, ignore_errors=True)
        shutil.rmtree(node_tmp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.budget(180)  # two Ray nodes start (~30 s), a training is killed and resumed, a shoot
def test_studio_jobs_run_on_the_second_node_and_survive_its_worker_killed(
    cache_dir: Path, training_set: Path, tmp_path: Path
) -> None:
    data = tmp_path / "studio"
    data.mkdir()
    with two_nodes() as (address, env):
        env = {**env, "RAY_ADDRESS": address, "PACKSHOT_CACHE": str(cache_dir)}
        env.update({"PACKSHOT_RAY_TRAIN_GPUS": "0", "PACKSHOT_RAY_SHOOT_GPUS": "0"})
        done = subprocess.run(
            [sys.executable, str(SUPPORT), str(data), str(training_set)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    report = json.loads(line.removeprefix("REPORT "))

    second = [node for node, resources in report["nodes"].items() if "second" in resources]
    assert len(report["nodes"]) == 2 and len(second) == 1
    training, shoot = report["training"], report["shoot"]
    # Every try of both jobs ran on the second node (the head offers no CPU to tasks).
    assert {t["node_id"] for t in training["tasks"] + shoot["tasks"]} == set(second)
    # The training's worker was killed after its first checkpoint; the retry resumed from it.
    assert training["status"] == "succeeded", training["error"]
    assert report["killed"] == training["tasks"][0] and len(training["tasks"]) == 2
    assert "retry" in training["events"] and "resume" in training["events"]
    assert training["result"]["resumed_from"] == 4 and training["result"]["final_step"] == 12
    assert (data / "jobs" / training["id"] / "model" / "pytorch_lora_weights.safetensors").is_file()
    # The shoot of that model, on the second node too, its shots in the head's data folder.
    assert shoot["status"] == "succeeded", shoot["error"]
    files = [Path(image["file"]).name for image in shoot["result"]["images"]]
    assert len(files) == 2 and set(files) <= set(report["shots_here"])
