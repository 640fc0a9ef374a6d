"""`seqrec serve` under load: p50/p95/p99 latency and requests/s of POST /recommend at fixed concurrencies, for the
plain model and with steering per request, with concurrent requests batched and scored one at a time.

    SEQREC_DATA=../shared/data python benchmarks/serve.py runs/sasrec-ml-1m-sas \\
        --steer-run runs/sasrec-ml-1m-sas/sae-popsteer --out docs/serve_ml-1m-sas

Each server is a `seqrec serve` process on 127.0.0.1 (a free port), stopped at the end. The load generator
(asyncio + httpx, in this process) sends a fixed number of requests for random users with `--concurrency`
requests in flight, after a warm-up, and stops by itself (`--timeout` bounds each measurement). It shares the
machine with the server, so on a small machine its own CPU time is part of what is measured: httpx takes about
1.5 ms of CPU per request, `--client raw` (a minimal HTTP/1.1 client on asyncio streams) far less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from seqrec.runs import load_recommending

STEERING = {"alpha": 1.5}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(run: Path, options: list[str], log: Path, env: dict[str, str] | None = None,
           startup: float = 120.0) -> Iterator[str]:
    """A `seqrec serve` process for `run` on a free local port; yields its URL and always stops it."""
    port = free_port()
    command = [sys.executable, "-m", "seqrec", "-q", "serve", str(run), "--port", str(port), *options]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup
        while True:
            if process.poll() is not None:
                raise SystemExit(f"seqrec serve exited with {process.returncode}; see {log}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"seqrec serve did not come up within {startup:.0f} s; see {log}")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


class RawConnection:
    """One keep-alive HTTP/1.1 connection that posts JSON and reads the status: a client far lighter than httpx,
    so that on a small machine the load generator takes less of the CPU the server needs."""

    def __init__(self, url: str) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, payload: bytes) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
        await reader.readexactly(int(fields["content-length"]))
        return int(head[0].split()[1])

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


async def measure(url: str, bodies: list[dict], concurrency: int, client: str = "httpx") -> dict:
    """Send every body once, `concurrency` at a time: latency percentiles (ms), requests/s, failures."""
    latencies: list[float] = []
    failures = 0
    queue = iter([json.dumps(body).encode() for body in bodies])
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        ready = asyncio.Barrier(concurrency + 1)  # every connection is open before the clock starts

        async def worker() -> None:
            nonlocal failures
            raw = RawConnection(url) if client == "raw" else None

            async def post(payload: bytes) -> int:
                if raw is not None:
                    return await raw.post("/recommend", payload)
                return (await http.post("/recommend", content=payload, headers=headers)).status_code

            try:
                await post(first)
                await ready.wait()
                for payload in queue:
                    start = time.perf_counter()
                    status = await post(payload)
                    latencies.append(time.perf_counter() - start)
                    failures += status != 200
            finally:
                if raw is not None:
                    await raw.close()

        first = json.dumps(bodies[0]).encode()
        workers = asyncio.gather(*(worker() for _ in range(concurrency)))
        await ready.wait()
        start = time.perf_counter()
        await workers
        seconds = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    percentiles = {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)}
    return {"client": client, "concurrency": concurrency, "requests": len(bodies), "failures": failures,
            "seconds": round(seconds, 3), "requests_per_s": round(len(bodies) / seconds, 1), **percentiles}


def request_bodies(users: list[str], count: int, k: int, steering: dict | None, seed: int) -> list[dict]:
    rng = random.Random(seed)
    extra = {"steering": steering} if steering else {}
    return [{"user": rng.choice(users), "k": k, **extra} for _ in range(count)]


def run_scenario(name: str, run: Path, steering: dict | None, mode: str, args: argparse.Namespace,
                 users: list[str]) -> list[dict]:
    options = ["--threads", str(args.threads), "--workers", str(args.workers),
               "--no-batching" if mode == "direct" else "--batching"]
    window = mode.removeprefix("batched-").removesuffix("ms") if mode.startswith("batched-") else "0"
    rows = []
    with server(run, options, args.log_dir / f"serve-{name}-{mode}.log", {"SEQREC_SERVE_WINDOW_MS": window}) as url:
        asyncio.run(measure(url, request_bodies(users, args.warmup, args.k, steering, seed=1), 8))
        for client in args.client:
            for concurrency in args.concurrency:
                bodies = request_bodies(users, args.requests, args.k, steering, seed=concurrency)
                result = asyncio.run(asyncio.wait_for(measure(url, bodies, concurrency, client), args.timeout))
                rows.append({"scenario": name, "scoring": mode, **result})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| scenario | scoring | client | concurrency | requests/s | p50 ms | p95 ms | p99 ms | failures |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['scoring']} | {r['client']} | {r['concurrency']} | "
                     f"{r['requests_per_s']:.0f} | "
                     f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['failures']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run served plainly")
    parser.add_argument("--steer-run", type=Path, help="an SAE run served with steering per request")
    parser.add_argument("--out", type=Path, required=True, help="prefix of the .json and .md files")
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--scoring", nargs="+", default=["batched", "direct"],
                        help="batched (scored together while the model is busy), batched-<N>ms (and waiting N ms "
                             "for more), direct (one request at a time)")
    parser.add_argument("--client", nargs="+", default=["httpx"], choices=("httpx", "raw"),
                        help="httpx, or raw: a minimal keep-alive HTTP/1.1 client on asyncio streams")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server worker")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one measurement may take")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    users = list(load_recommending(args.run).recommender.user_map.external)
    scenarios = [("plain", args.run, None)] + ([("steered", args.steer_run, STEERING)] if args.steer_run else [])
    rows = [row for name, run, steering in scenarios for mode in args.scoring
            for row in run_scenario(name, run, steering, mode, args, users)]
    record = {"run": str(args.run), "steer_run": str(args.steer_run) if args.steer_run else None,
              "steering": STEERING, "k": args.k, "threads": args.threads, "workers": args.workers,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
              "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
