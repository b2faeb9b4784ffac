"""The service end to end: the server's own overhead per request (client-seen latency minus the
engine's encode + diffusion + decode) at p50 and p99, and throughput at 1, 4 and 16 concurrent
clients with batching off (VTON_MAX_BATCH=1: the baseline) and on, both measured in the same run
against real uvicorn servers on 127.0.0.1 (v2 by reference, warm caches, distinct seeds).

    PYTHONPATH=src:. python bench/api_bench.py [--write-results]             CPU, tiny model
    PYTHONPATH=src:. python bench/api_bench.py --fullsize [--write-results]  CUDA, full-size model
                                                                            (random weights)

`--write-results` replaces the setup's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import build_fullsize_model, machine, write_section
from tests.api.live import LiveServer, make_settings, register_garment, register_person
from vton.config import Settings
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.tiny import make_tiny_model
from vton.scheduler import DevicePipelines
from vton.service import LoadEngine
from vton.service.engine import DeviceEngine, load_engine, resolve_dtype

CONCURRENCY = (1, 4, 16)
MODES = {
    "off": {"max_batch": 1, "batch_window_ms": 0},
    "on": {"max_batch": 8, "batch_window_ms": 20},
}
NOTES = """
Reading it: overhead is everything but the engine's own phases: HTTP, auth, JSON and base64,
artifact loading (warm caches), queueing and batching wait, PNG encoding and paste-back; at 1
client it is the service's cost per request; with more clients it includes waiting for the
batch ahead. With 1 client no batch can form: the two columns differ by the batch window
(20 ms) and by noise. Batching pays where a batch of n costs less than n single calls."""


@dataclass(frozen=True)
class Setup:
    name: str
    title: str
    width: int
    height: int
    steps: int
    requests: int
    rounds: int
    """Each mode is measured this many times per level, alternating; the best run is kept."""
    notes: str = ""
    """Said under the table, after NOTES."""


CPU = Setup("api-bench", "CPU, tiny model", 96, 128, 4, 32, 2)
GPU = Setup(
    "api-bench-gpu",
    "CUDA, full-size model, random weights",
    768,
    1024,
    20,
    16,
    1,
    notes="""
On the GPU the 1-client overhead is mostly host work on the image: paste-back (composite with
a feathered mask) and one PNG encoding, both on the worker's finisher thread, then base64 and
JSON (images of random weights are noise, whose PNGs are about 3x a photo's), plus HTTP and the
artifact gather. Batching gains little here because the full-size engine is already compute-bound
from batch 1 on (bench/RESULTS.md, gpu-bench: throughput at batch 1 against batch 8).""",
)


def load_fullsize(settings: Settings, device: str) -> DeviceEngine:
    """The full-size IDM-VTON (bench/harness.py) on `device`, without a fallback copy."""
    dtype = resolve_dtype(settings.dtype, device)
    pipeline = TryOnPipeline(
        build_fullsize_model(dtype, device), EngineOptimizations(compile=False)
    )
    return DeviceEngine(device, pipeline, dtype, None, DevicePipelines(pipeline))


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
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=600) as client:
            for r in range(per_client):
                body = {"clothingId": "shirt", "denoiseSteps": steps, "seed": seed0 + c * 1000 + r}
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


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def start_server(
    model: Path, tmp: Path, setup: Setup, mode: str, users: list[str], load: LoadEngine
) -> LiveServer:
    settings = make_settings(
        model, tmp / mode, width=setup.width, height=setup.height, **MODES[mode]
    )
    server = LiveServer(settings, load=load).start()
    for user_id in users:
        with server.client(user_id, timeout=600) as client:
            register_person(client)
            register_garment(client, "shirt")
    return server


def measure(model: Path, tmp: Path, setup: Setup, load: LoadEngine) -> dict[str, list[Level]]:
    """Both servers up at once, the modes measured in turn at each level (drift hits both)."""
    users = [f"bench-{i}" for i in range(max(CONCURRENCY))]
    servers = {mode: start_server(model, tmp, setup, mode, users, load) for mode in MODES}
    results: dict[str, list[Level]] = {mode: [] for mode in MODES}
    try:
        for i, clients in enumerate(CONCURRENCY):
            runs: dict[str, list[Level]] = {mode: [] for mode in MODES}
            for attempt in range(setup.rounds):
                for mode, server in servers.items():
                    seed0 = (i * setup.rounds + attempt) * 100_000
                    warm = run_level(server, users, clients, clients, setup.steps, seed0 + 90_000)
                    asyncio.run(warm)
                    level = run_level(server, users, clients, setup.requests, setup.steps, seed0)
                    runs[mode].append(asyncio.run(level))
            for mode in MODES:
                results[mode].append(max(runs[mode], key=lambda level: level.throughput))
        return results
    finally:
        for server in servers.values():
            server.stop()


def report(results: dict[str, list[Level]], setup: Setup, command: str) -> str:
    lines = [
        f"## Service: overhead and throughput ({setup.title})",
        "",
        f"`{command}`",
        "",
        f"Machine: {machine()}; try-ons {setup.width}x{setup.height}, {setup.steps} steps, "
        f"{setup.requests} requests per level, best of {setup.rounds} alternating run(s).",
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
    return "\n".join(lines) + "\n" + (NOTES.rstrip() + "\n" + setup.notes).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fullsize", action="store_true", help="CUDA, full-size model")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    setup, load = (GPU, load_fullsize) if args.fullsize else (CPU, load_engine)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = make_tiny_model(tmp / "model")  # on CPU the engine; for both the model id
        results = measure(model, tmp, setup, load)
    command = "PYTHONPATH=src:. python bench/api_bench.py"
    command += " --fullsize --write-results" if args.fullsize else " --write-results"
    section = report(results, setup, command)
    sys.stdout.write(section)
    if args.write_results:
        write_section(setup.name, section)


if __name__ == "__main__":
    main()
