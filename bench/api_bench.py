"""The service on CPU with the tiny model: the server's own overhead per request (client-seen
latency minus the engine's encode + diffusion + decode) at p50 and p99, and throughput at 1, 4
and 16 concurrent clients with batching off (VTON_MAX_BATCH=1: the baseline) and on, measured in
the same run against a real uvicorn server on 127.0.0.1.

Run: PYTHONPATH=src:. python bench/api_bench.py [--requests 32] [--steps 4] [--write-results]
`--write-results` replaces this benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.api.live import LiveServer, make_settings, register_garment, register_person
from vton.engine.runtime import quiet_model_libraries
from vton.engine.tiny import make_tiny_model

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- api-bench:start -->", "<!-- api-bench:end -->"
CONCURRENCY = (1, 4, 16)
ROUNDS = 2
"""Each mode is measured this many times per level, alternating; the best run is kept."""
MODES = {
    "off": {"max_batch": 1, "batch_window_ms": 0},
    "on": {"max_batch": 8, "batch_window_ms": 20},
}
NOTES = """
Reading it: overhead is everything but the engine's own phases: HTTP, auth, JSON and base64,
artifact loading (warm caches), queueing and batching wait, PNG encoding and paste-back; at 1
client it is the service's cost per request; with more clients it includes waiting for the
batch ahead. With 1 client no batch can form: the two columns differ by the batch window
(20 ms) and by noise (the machine is shared). Batching pays where a batch of n costs less than n
single calls."""


@dataclass
class Level:
    clients: int
    throughput: float
    overhead_ms: list[float]


async def run_level(
    server: LiveServer, users: list[str], clients: int, requests: int, steps: int, seed0: int
) -> Level:
    overheads: list[float] = []
    per_client = max(1, requests // clients)

    async def client_loop(c: int) -> None:
        headers = {"Authorization": f"Bearer {server.token(users[c % len(users)])}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=300) as client:
            for r in range(per_client):
                body = {
                    "clothingId": "shirt",
                    "denoiseSteps": steps,
                    "seed": seed0 + c * 10_000 + r,
                }
                started = time.perf_counter()
                response = await client.post("/api/fitting/single-item-tryon-v2", json=body)
                seen_ms = (time.perf_counter() - started) * 1000.0
                response.raise_for_status()
                t = response.json()["timings"]
                overheads.append(seen_ms - t["encode"] - t["diffusion"] - t["decode"])

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(c) for c in range(clients)))
    seconds = time.perf_counter() - started
    return Level(clients, clients * per_client / seconds, overheads)


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )


def start_server(model: Path, tmp: Path, mode: str, users: list[str]) -> LiveServer:
    server = LiveServer(make_settings(model, tmp / mode, **MODES[mode])).start()
    for user_id in users:
        with server.client(user_id) as client:
            register_person(client)
            register_garment(client, "shirt")
    return server


def measure(model: Path, tmp: Path, requests: int, steps: int) -> dict[str, list[Level]]:
    """Both servers up at once, the modes measured in turn at each level (drift hits both)."""
    users = [f"bench-{i}" for i in range(max(CONCURRENCY))]
    servers = {mode: start_server(model, tmp, mode, users) for mode in MODES}
    results: dict[str, list[Level]] = {mode: [] for mode in MODES}
    try:
        for i, clients in enumerate(CONCURRENCY):
            runs: dict[str, list[Level]] = {mode: [] for mode in MODES}
            for attempt in range(ROUNDS):
                for mode, server in servers.items():
                    seed0 = (i * ROUNDS + attempt) * 100_000
                    asyncio.run(run_level(server, users, clients, clients, steps, seed0 + 90_000))
                    level = run_level(server, users, clients, requests, steps, seed0)
                    runs[mode].append(asyncio.run(level))
            for mode in MODES:
                results[mode].append(max(runs[mode], key=lambda level: level.throughput))
        return results
    finally:
        for server in servers.values():
            server.stop()


def report(results: dict[str, list[Level]], requests: int, steps: int) -> str:
    lines = [
        "## Service: overhead and throughput (CPU, tiny model)",
        "",
        "`PYTHONPATH=src:. python bench/api_bench.py --write-results`",
        "",
        f"Machine: {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}; try-ons 96x128, {steps} steps, {requests} requests "
        f"per level, best of {ROUNDS} alternating runs, v2 by reference (warm caches, distinct "
        "seeds: no result cache).",
        "",
        "| clients | throughput, batching off (baseline) | throughput, batching on | speed-up "
        "| overhead p50 / p99 off | overhead p50 / p99 on |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for off, on in zip(results["off"], results["on"], strict=True):
        lines.append(
            f"| {off.clients} | {off.throughput:.2f} req/s | {on.throughput:.2f} req/s "
            f"| {on.throughput / off.throughput:.2f}x "
            f"| {percentile(off.overhead_ms, 50):.0f} / {percentile(off.overhead_ms, 99):.0f} ms "
            f"| {percentile(on.overhead_ms, 50):.0f} / {percentile(on.overhead_ms, 99):.0f} ms |"
        )
    return "\n".join(lines) + "\n" + NOTES.rstrip() + "\n"


def write_results(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{START}\n{section}{END}"
    if START in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    quiet_model_libraries()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = make_tiny_model(tmp / "model")
        results = measure(model, tmp, args.requests, args.steps)
    section = report(results, args.requests, args.steps)
    sys.stdout.write(section)
    if args.write_results:
        write_results(section)


if __name__ == "__main__":
    main()
