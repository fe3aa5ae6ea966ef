"""`packshot serve` and `packshot merchants`: the commands a merchant's operator runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from packshot.cli import app

runner = CliRunner()


def test_merchants_create_list_revoke(tmp_path: Path) -> None:
    created = runner.invoke(app, ["merchants", "create", "Acme", "--data", str(tmp_path), "--json"])
    assert created.exit_code == 0, created.output
    body = json.loads(created.output)
    key = body["api_key"]
    assert key.startswith("pk_live_") and body["webhook_secret"].startswith("whsec_")
    assert key not in (tmp_path / "packshot.db").read_bytes().decode("latin-1")  # only a hash
    listed = runner.invoke(app, ["merchants", "list", "--data", str(tmp_path), "--json"])
    rows = json.loads(listed.output)
    assert [r["name"] for r in rows] == ["Acme"] and key not in listed.output
    assert rows[0]["revoked"] is False
    revoked = runner.invoke(app, ["merchants", "revoke", "Acme", "--data", str(tmp_path)])
    assert revoked.exit_code == 0
    listed = runner.invoke(app, ["merchants", "list", "--data", str(tmp_path), "--json"])
    assert json.loads(listed.output)[0]["revoked"] is True
    missing = runner.invoke(app, ["merchants", "revoke", "Nobody", "--data", str(tmp_path)])
    assert missing.exit_code == 2 and "No merchant" in missing.output


def test_data_dir_comes_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PACKSHOT_DATA", str(tmp_path / "from-env"))
    assert runner.invoke(app, ["merchants", "create", "Env"]).exit_code == 0
    assert (tmp_path / "from-env" / "packshot.db").is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _running_elsewhere(data: Path, merchant_id: str) -> str:
    """A training running on another runner (its stream stays open; no worker takes it)."""
    from packshot.jobs import store
    from packshot.jobs.models import Job, Product, new_id
    from packshot.jobs.settings import ServiceSettings

    db = store.Database(ServiceSettings.from_env(data).database_url)
    with db.session() as session:
        session.add(Product(id="prd_1", merchant_id=merchant_id, name="mug", class_name="mug"))
        session.flush()
        job = Job(
            id=new_id("trn"),
            merchant_id=merchant_id,
            product_id="prd_1",
            kind="training",
            status="running",
            runner="elsewhere",
        )
        session.add(job)
        session.commit()
    db.dispose()
    return job.id


def test_serve_runs_the_api_and_the_worker(tmp_path: Path) -> None:
    """…and stops on SIGINT with a progress stream open (its job still running elsewhere)."""
    data = tmp_path / "data"
    created = runner.invoke(app, ["merchants", "create", "Acme", "--data", str(data), "--json"])
    key = json.loads(created.output)["api_key"]
    job_id = _running_elsewhere(data, json.loads(created.output)["id"])
    port = _free_port()
    env = {**os.environ, "PACKSHOT_WORKER_THREADS": "1"}
    env.pop("PACKSHOT_DATA", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "packshot.cli", "serve", "--port", str(port), "--data", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stream = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        headers = {"Authorization": f"Bearer {key}"}
        made = httpx.post(
            f"{base}/v1/products", json={"name": "mug", "class_name": "mug"}, headers=headers
        )
        assert made.status_code == 201
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "packshot studio"
        workers = _workers_of(process.pid)
        assert workers, "no worker process"
        events = stream.stream("GET", f"{base}/v1/trainings/{job_id}/events").__enter__()
        assert events.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()  # the stream still open
        stream.close()
    assert process.returncode == 0, output
    assert key not in output  # no key in the logs
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _workers_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and b"packshot.jobs.worker" in cmd:
            found.append(int(entry.name))
    return found


def _zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_serve_runs_several_web_processes_over_one_database(tmp_path: Path) -> None:
    """`packshot serve --web-workers 2`: two web processes on one port, one worker; the rate
    limit and the stream caps hold across them (their state is in the database). Slow (~45 s:
    three processes start and stop); the shared state itself is tested in the default suite
    (test_api_limits: two limiters over one database; test_api_streams: the caps' leases)."""
    data = tmp_path / "data"
    created = runner.invoke(app, ["merchants", "create", "Acme", "--data", str(data), "--json"])
    key = json.loads(created.output)["api_key"]
    job_id = _running_elsewhere(data, json.loads(created.output)["id"])
    port = _free_port()
    env = {
        **os.environ,
        "PACKSHOT_RATE_LIMIT": "10",
        "PACKSHOT_MAX_STREAMS_PER_MERCHANT": "2",
    }
    env.pop("PACKSHOT_DATA", None)
    command = ["serve", "--port", str(port), "--data", str(data), "--web-workers", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "packshot.cli", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert len(_children_of(process.pid, b"spawn_main")) == 2  # the web processes
        assert _workers_of(process.pid), "no worker process"
        headers = {"Authorization": f"Bearer {key}"}
        events = f"{base}/v1/trainings/{job_id}/events"
        with (
            httpx.Client(headers=headers) as one,
            httpx.Client(headers=headers) as two,
            one.stream("GET", events) as first,
            two.stream("GET", events) as second,
        ):
            assert first.status_code == second.status_code == 200
            third = httpx.get(events, headers=headers)
            assert third.status_code == 429, third.text  # whichever process answers
        codes = [httpx.get(f"{base}/v1/products", headers=headers).status_code for _ in range(10)]
        # 10 a minute in all: 3 went to the streams, 7 more pass, whichever process answers.
        assert codes == [200] * 7 + [429] * 3
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output


def _children_of(pid: int, marker: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and marker in cmd:
            found.append(int(entry.name))
    return found


def test_the_kubernetes_manifests_run_the_studio_on_the_ray_cluster() -> None:
    """deploy/kuberay.yaml (shape only: no Kubernetes here): every pod runs the one image,
    the studio's command is one `packshot serve` takes, and it joins the RayCluster through
    the head service KubeRay names after it; deploy/Containerfile installs packshot[ray]."""
    import typer.main
    import yaml

    root = Path(__file__).resolve().parents[1]
    documents = list(yaml.safe_load_all((root / "deploy" / "kuberay.yaml").read_text()))
    by_kind = {doc["kind"]: doc for doc in documents}
    assert set(by_kind) == {"RayCluster", "Deployment", "Service"}
    cluster, studio = by_kind["RayCluster"], by_kind["Deployment"]
    pods = [cluster["spec"]["headGroupSpec"]["template"]]
    pods += [group["template"] for group in cluster["spec"]["workerGroupSpecs"]]
    pods += [studio["spec"]["template"]]
    images = {c["image"] for pod in pods for c in pod["spec"]["containers"]}
    assert len(images) == 1  # Ray needs the same packshot on every node
    assert cluster["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (container,) = studio["spec"]["template"]["spec"]["containers"]
    program, command, *arguments = container["command"]
    assert (program, command) == ("packshot", "serve")
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    context = serve.make_context("serve", list(arguments))  # raises on an unknown option
    assert context.params["web_workers"] == 2 and context.params["host"] == "0.0.0.0"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PACKSHOT_RUNNER"] == "ray"
    assert env["RAY_ADDRESS"] == f"ray://{cluster['metadata']['name']}-head-svc:10001"
    containerfile = (root / "deploy" / "Containerfile").read_text()
    assert "'.[ray]'" in containerfile and "COPY --chown=ray:users src ./src" in containerfile
