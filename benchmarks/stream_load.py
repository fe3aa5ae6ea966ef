"""Benchmark: the studio with 500 open progress streams on a running job and 50 clients on the
other routes, on SQLite and on PostgreSQL, with 1 and 2 web processes.

Starts the real `packshot serve [--web-workers N]` (its worker process idles: the job followed
is marked as running elsewhere), opens `--streams` event streams (`GET /v1/trainings/{id}/events`,
raw sockets) on one merchant's running training, and while they stay open writes a step event
to the job every 0.5 s (as a training would) and runs `--clients` clients, each its own
merchant, calling `GET /v1/health` and `GET /v1/products` in turn every `--interval` seconds.
Then the job ends: every stream must have received every step and the `end` event.

First the same clients run `--seconds` without any stream (`--no-baseline` skips it): on a
shared machine, what they measure is the machine's share, against which the streams' own cost
shows. Prints, per configuration: streams held to the end, p50/p99 of both routes, errors (HTTP
errors, transport errors, streams refused, cut or short of events), the peak memory (RSS) of
the web processes and of the whole server; writes benchmarks/stream_load.json. Target
(issue 18): p99 under 200 ms on both routes and 0 errors, on both databases.

    .venv/bin/python benchmarks/stream_load.py                     # SQLite ×1, PostgreSQL ×1, ×2
    .venv/bin/python benchmarks/stream_load.py --configs sqlite:1   # one of them
    PACKSHOT_TEST_POSTGRES_URL=postgresql://u:p@127.0.0.1:5432/postgres  # the server to use

PostgreSQL runs get a fresh database on that server (created and dropped here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx

TARGET_P99_MS = 200.0
ROUTES = ("GET /v1/health", "GET /v1/products")
ENV_POSTGRES = "PACKSHOT_TEST_POSTGRES_URL"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# -- the server and its memory ------------------------------------------------------------------


def _tree(root: int) -> dict[int, bytes]:
    """The process `root` and its descendants: pid → command line."""
    parents: dict[int, int] = {}
    commands: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[1])
    found, frontier = {root: commands.get(root, b"")}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = commands.get(pid, b"")
                frontier.append(pid)
    return found


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemoryWatch:
    """Samples the server's process tree every 0.5 s: peak RSS of the web processes (the ones
    answering HTTP: `serve` itself with one, its uvicorn workers with several) and of all."""

    def __init__(self, root: int, web_workers: int):
        self.root, self.web_workers = root, web_workers
        self.peak_web: dict[int, float] = {}
        self.peak_total = 0.0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _web(self, tree: dict[int, bytes]) -> list[int]:
        if self.web_workers == 1:
            return [self.root]
        return [
            pid
            for pid, cmd in tree.items()
            if pid != self.root and b"spawn_main" in cmd and _parent(pid) == self.root
        ]

    def web_pids(self) -> list[int]:
        return self._web(_tree(self.root))

    def sample(self) -> None:
        tree = _tree(self.root)
        self.peak_total = max(self.peak_total, sum(_rss_mb(pid) for pid in tree))
        for pid in self._web(tree):
            self.peak_web[pid] = max(self.peak_web.get(pid, 0.0), _rss_mb(pid))

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            self.sample()

    def __enter__(self) -> MemoryWatch:
        self.sample()
        self.start_web = sum(self.peak_web.values())
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def _postgres_database(server: str) -> tuple[str, str]:
    """(SQLAlchemy URL of a fresh database on `server`, its name)."""
    import psycopg

    name = f"packshot_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = server.rpartition("/")[0]
    return f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}", name


def _drop_postgres_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _prepare(url: str, clients: int) -> tuple[str, str, list[str]]:
    """The database migrated; (followed merchant's key, its running job's id, clients' keys)."""
    from packshot.jobs import store
    from packshot.jobs.models import Job, Product, new_id

    store.migrate(url)
    db = store.Database(url)
    try:
        with db.session() as session:
            merchant, key = store.create_merchant(session, "followed")
            session.add(
                Product(id="prd_bench", merchant_id=merchant.id, name="mug", class_name="mug")
            )
            session.flush()
            job = Job(
                id=new_id("trn"),
                merchant_id=merchant.id,
                product_id="prd_bench",
                kind="training",
                status="running",
                runner="elsewhere",
            )
            session.add(job)
            session.commit()
            keys = [store.create_merchant(session, f"client{i}")[1] for i in range(clients)]
            for i, client_key in enumerate(keys[:10]):  # some merchants have products to list
                merchant_id = store.merchant_for_key(session, client_key).id  # type: ignore[union-attr]
                for j in range(5):
                    session.add(
                        Product(
                            id=f"prd_{i}_{j}",
                            merchant_id=merchant_id,
                            name=f"item {j}",
                            class_name="mug",
                        )
                    )
            session.commit()
            return key, job.id, keys
    finally:
        db.dispose()


class Progress:
    """Writes a step event to the job every 0.5 s, as a running training does; then ends it."""

    def __init__(self, url: str, job_id: str):
        from packshot.jobs import store

        self.store = store
        self.db = store.Database(url)
        self.job_id = job_id
        self.steps = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            self.steps += 1
            event = {
                "stage": "train",
                "done": self.steps,
                "total": 10_000,
                "data": {"event": "step", "step": self.steps, "loss": 0.1},
            }
            with self.db.session() as session:
                self.store.add_event(session, self.job_id, event)

    def start(self) -> None:
        self.thread.start()

    def end(self) -> None:
        self.stopping.set()
        self.thread.join()
        with self.db.session() as session:
            self.store.mark_canceled(session, self.job_id)
        self.db.dispose()


# -- the load -------------------------------------------------------------------------------------


async def open_stream(port: int, path: str, key: str) -> tuple[Any, Any, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
    return reader, writer, int(head.split()[1])


async def follow(reader: Any, counts: dict[str, int]) -> None:
    """Read one stream to its end: count its step events and whether `end` came."""
    buffer = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            if b"event: step\n" in event:
                counts["steps"] += 1
            elif b"event: end\n" in event:
                counts["ended"] = 1
                return


async def client_loop(
    base: str,
    key: str,
    interval: float,
    stop: asyncio.Event,
    samples: dict[str, list[float]],
    errors: list[str],
) -> None:
    import aiohttp

    async with aiohttp.ClientSession(
        base,
        headers={"Authorization": f"Bearer {key}"},
        timeout=aiohttp.ClientTimeout(total=30),
        connector=aiohttp.TCPConnector(limit=1),
    ) as http:
        async with http.get("/v1/health") as response:  # the connection, opened untimed
            await response.read()
        i = 0
        while not stop.is_set():
            route = ROUTES[i % 2]
            i += 1
            started = time.perf_counter()
            try:
                async with http.get(route.split(" ", 1)[1]) as response:
                    await response.read()
                    status = response.status
            except Exception as exc:
                errors.append(f"{route}: {type(exc).__name__}")
            else:
                samples[route].append((time.perf_counter() - started) * 1000)
                if status != 200:
                    errors.append(f"{route}: HTTP {status}")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def run_config(database: str, web_workers: int, args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="stream-load-"))
    server_url = os.environ.get(ENV_POSTGRES, "")
    pg_name = None
    if database == "sqlite":
        url = f"sqlite:///{data / 'packshot.db'}"
    else:
        if not server_url:
            raise SystemExit(f"PostgreSQL runs need {ENV_POSTGRES} (a server URL)")
        url, pg_name = _postgres_database(server_url)
    try:
        key, job_id, keys = _prepare(url, args.clients)
        return asyncio.run(_measure(database, web_workers, url, data, key, job_id, keys, args))
    finally:
        if pg_name is not None:
            _drop_postgres_database(server_url, pg_name)


async def _measure(
    database: str,
    web_workers: int,
    url: str,
    data: Path,
    key: str,
    job_id: str,
    keys: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    port = _free_port()
    env = {
        **os.environ,
        "PACKSHOT_DATA": str(data),
        "PACKSHOT_DATABASE_URL": url,
        "PACKSHOT_RATE_LIMIT": "1000000",  # the clients' pace, not the limiter, is measured
        "PACKSHOT_MAX_STREAMS_PER_MERCHANT": str(args.streams),
    }
    command = [sys.executable, "-m", "packshot.cli", "serve", "--port", str(port)]
    command += ["--web-workers", str(web_workers)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    errors: list[str] = []
    samples: dict[str, list[float]] = {route: [] for route in ROUTES}
    baseline: dict[str, list[float]] = {route: [] for route in ROUTES}
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(240):
                with suppress(httpx.HTTPError):
                    if (await http.get("/v1/health", timeout=1)).status_code == 200:
                        break
                await asyncio.sleep(0.25)
        await asyncio.sleep(2)  # the web processes' intake pools warm up
        with MemoryWatch(server.pid, web_workers) as memory:
            if args.baseline:  # the same clients first, without streams: the machine's own share
                stop = asyncio.Event()
                clients = [
                    asyncio.create_task(client_loop(base, k, args.interval, stop, baseline, errors))
                    for k in keys
                ]
                await asyncio.sleep(args.seconds)
                stop.set()
                await asyncio.gather(*clients)
            path = f"/v1/trainings/{job_id}/events"
            gate = asyncio.Semaphore(50)

            async def opened_stream() -> tuple[Any, Any, int] | None:
                async with gate:
                    try:
                        return await open_stream(port, path, key)
                    except Exception as exc:
                        errors.append(f"stream: {type(exc).__name__}")
                        return None

            started = time.perf_counter()
            cpu_before = _cpu_s(memory.web_pids())
            streams = await asyncio.gather(*(opened_stream() for _ in range(args.streams)))
            open_s = time.perf_counter() - started
            open_cpu_s = _cpu_s(memory.web_pids()) - cpu_before
            held = [s for s in streams if s is not None and s[2] == 200]
            errors.extend(f"stream: HTTP {s[2]}" for s in streams if s is not None and s[2] != 200)
            counts = [{"steps": 0, "ended": 0} for _ in held]
            readers = [
                asyncio.create_task(follow(reader, c))
                for (reader, _w, _s), c in zip(held, counts, strict=True)
            ]
            progress = Progress(url, job_id)
            progress.start()
            stop = asyncio.Event()
            clients = [
                asyncio.create_task(client_loop(base, k, args.interval, stop, samples, errors))
                for k in keys
            ]
            cpu_before = _cpu_s(memory.web_pids())
            await asyncio.sleep(args.seconds)
            run_cpu_s = _cpu_s(memory.web_pids()) - cpu_before
            stop.set()
            await asyncio.gather(*clients)
            await asyncio.to_thread(progress.end)
            done, pending = await asyncio.wait(readers, timeout=30)
            for task in pending:
                task.cancel()
            for _r, writer, _s in held:
                writer.close()
        steps = progress.steps
        short = sum(1 for c in counts if c["steps"] < steps or not c["ended"])
        if short:
            errors.append(f"streams: {short} missed events or the end")
        complete = len(counts) - short
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            errors.append("server: did not stop within 60 s of SIGINT")
    routes = _figures(samples)
    worst = max((r["p99_ms"] or 0.0) for r in routes.values())
    return {
        "database": database,
        "web_workers": web_workers,
        "streams_asked": args.streams,
        "streams_held": len(held),
        "streams_complete": complete,
        "streams_open_s": round(open_s, 2),
        "streams_open_web_cpu_s": round(open_cpu_s, 2),
        "run_web_cpu_s": round(run_cpu_s, 2),
        "steps_written": steps,
        "clients": args.clients,
        "client_interval_s": args.interval,
        "seconds": args.seconds,
        "routes": routes,
        "worst_p99_ms": worst,
        "routes_without_streams": _figures(baseline) if args.baseline else None,
        "errors": len(errors),
        "error_samples": errors[:10],
        "peak_rss_mb_web_processes": [round(v, 1) for v in memory.peak_web.values()],
        "peak_rss_mb_server_total": round(memory.peak_total, 1),
        "meets_target": not errors and worst < TARGET_P99_MS,
    }


def _figures(samples: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    return {
        route: {
            "requests": len(values),
            "p50_ms": round(statistics.median(values), 1) if values else None,
            "p99_ms": round(percentile(values, 0.99), 1) if values else None,
        }
        for route, values in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.2, help="each client's pause, s")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the clients run")
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="first the same clients without streams, for comparison on a busy machine",
    )
    parser.add_argument(
        "--configs",
        default="sqlite:1,postgres:1,postgres:2",
        help="database:web processes, comma-separated",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    results = []
    for config in args.configs.split(","):
        database, _, workers = config.partition(":")
        result = run_config(database, int(workers or 1), args)
        results.append(result)
        routes = result["routes"]
        print(
            f"{database} × {result['web_workers']} web: {result['streams_held']}/{args.streams} "
            f"streams held ({result['streams_complete']} complete, opened in "
            f"{result['streams_open_s']} s, "
            f"{result['streams_open_web_cpu_s']} s of the web processes' CPU), "
            + ", ".join(
                f"{r} p50 {v['p50_ms']} ms p99 {v['p99_ms']} ms (n={v['requests']})"
                for r, v in routes.items()
            )
            + f", web CPU {result['run_web_cpu_s']} s in {args.seconds:g} s"
            + f", {result['errors']} errors, web RSS {result['peak_rss_mb_web_processes']} MB, "
            f"server {result['peak_rss_mb_server_total']} MB: "
            + ("target met" if result["meets_target"] else "target NOT met"),
            flush=True,
        )
        if result["routes_without_streams"]:
            print(
                "  the same clients without streams: "
                + ", ".join(
                    f"{r} p50 {v['p50_ms']} ms p99 {v['p99_ms']} ms (n={v['requests']})"
                    for r, v in result["routes_without_streams"].items()
                ),
                flush=True,
            )
        if result["error_samples"]:
            print("  errors:", result["error_samples"], flush=True)
    out = Path(__file__).with_suffix(".json")
    summary = {
        "results": results,
        "target_p99_ms": TARGET_P99_MS,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    out.write_text(json.dumps(summary, indent=2))
    print(
        f"load average before {summary['load_average_before']}, after "
        f"{summary['load_average_after']} ({os.cpu_count()} CPUs); wrote {out}"
    )


if __name__ == "__main__":
    main()
