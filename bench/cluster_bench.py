"""Cluster throughput: 1, 2, 4 ... `vton worker` processes on one Redis queue, fed by many users.

    python -m bench.cluster_bench                                  # sleep-timed engine, CPU
    python -m bench.cluster_bench --engine fullsize --workers 1,2 --steps 30 \\
        --devices cuda:0,cuda:1                                     # a two-GPU host

The workers are the real thing (vton.cluster.worker.run_worker: the Service with its in-host
scheduler and dynamic batching, the artifact loader on a store folder, the BullMQ consumer);
only the engine differs:
  sleep     a batch of b samples sleeps steps x (step_ms + sample_ms x b) and returns a flat image:
            the machine's cores do not limit the throughput, so the numbers are the cluster path's.
  fullsize  the full-size IDM-VTON with random weights (bench.harness.build_fullsize_model) on
            the worker's GPU, uncompiled by default (a cold compile takes minutes per process).
Jobs go straight onto the queue as a NestJS producer would put them, one garment of one user
each, users taken round-robin. A first untimed round gives every user one job (cold artifacts
and conditioning), then the timed round runs `jobs_per_worker x N` jobs.

Reported per worker count: throughput (jobs/s from the first enqueue to the last completion),
efficiency = throughput_N / (N x throughput_1), p50/p95 latency (enqueue to the completed event),
the batch-size histogram; and, for the sleep engine, the per-job overhead of the cluster path
against the in-process path (the same engine in this process, one job at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import torch
from PIL import Image
from prometheus_client import CollectorRegistry

from bench.harness import machine, photo_like
from tests.cluster.conftest import start_redis
from vton.cluster.handler import run_options
from vton.cluster.messages import GarmentRef, PersonRef, RunOptions, TryOnJob
from vton.cluster.queue import QueueSettings, TryOnEvents, TryOnQueue
from vton.config import Settings
from vton.engine.tiny import make_tiny_model
from vton.engine.types import DiffusionOptions, TextEmbeddings, TryOnOutput, TryOnSample
from vton.preprocess.garment import register_garment
from vton.preprocess.person import register_person
from vton.scheduler import DevicePipelines
from vton.service import Service
from vton.service.engine import DeviceEngine, engine_optimizations, load_engine, resolve_dtype
from vton.store.local import LocalStore

REPO = Path(__file__).resolve().parents[1]
GARMENTS_PER_USER = 2
TEXT_TOKENS, TEXT_WIDTH, POOLED_WIDTH = 77, 2048, 1280
"""The real model's text embedding shapes; the stored ones are random (a garment's text does not
change the time)."""


# -- the engines --------------------------------------------------------------------------------


class SleepPipeline:
    """Stands in for TryOnPipeline: a batch of b sleeps steps x (step_ms + sample_ms x b)."""

    def __init__(self, step_ms: float, sample_ms: float) -> None:
        self.step_ms = step_ms
        self.sample_ms = sample_ms

    def __call__(
        self,
        samples: list[TryOnSample],
        options: DiffusionOptions,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[TryOnOutput]:
        step_s = (self.step_ms + self.sample_ms * len(samples)) / 1000.0
        for step in range(options.steps):
            time.sleep(step_s)
            if on_step is not None:
                on_step(step + 1, options.steps)
        image = torch.zeros(3, options.height, options.width)
        flat = Image.new("RGB", (options.width, options.height), (128, 128, 128))
        timings = {"diffusion": step_s * options.steps * 1000.0}
        return [TryOnOutput(image=image, pil=flat, timings_ms=timings) for _ in samples]


def sleep_engine(step_ms: float, sample_ms: float) -> Callable[[Settings, str], DeviceEngine]:
    """The tiny model for what start-up needs of a model (warm-up, the text encoder), the sleep
    pipeline for every batch."""

    def load(settings: Settings, device: str) -> DeviceEngine:
        engine = load_engine(settings, device)
        return replace(engine, pipelines=DevicePipelines(SleepPipeline(step_ms, sample_ms)))

    return load


def fullsize_engine(settings: Settings, device: str) -> DeviceEngine:
    """The full-size model with random weights, built on `device` (no checkpoint files)."""
    from bench.harness import build_fullsize_model  # diffusers, transformers at full size
    from vton.engine.pipeline import TryOnPipeline

    dtype = resolve_dtype(settings.dtype, device)
    pipeline = TryOnPipeline(build_fullsize_model(dtype, device), engine_optimizations(settings))
    return DeviceEngine(device, pipeline, dtype, None, DevicePipelines(pipeline))


def engine_loader(args: argparse.Namespace) -> Callable[[Settings, str], DeviceEngine]:
    if args.engine == "sleep":
        return sleep_engine(args.step_ms, args.sample_ms)
    return fullsize_engine


# -- the deployment -----------------------------------------------------------------------------


class RandomText:
    def encode_garment(self, description: str) -> TextEmbeddings:
        def random(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, dtype=torch.float16)

        return TextEmbeddings(
            prompt_embeds=random(TEXT_TOKENS, TEXT_WIDTH),
            negative_prompt_embeds=random(TEXT_TOKENS, TEXT_WIDTH),
            pooled_prompt_embeds=random(POOLED_WIDTH),
            negative_pooled_prompt_embeds=random(POOLED_WIDTH),
            prompt_embeds_c=random(TEXT_TOKENS, TEXT_WIDTH),
        )


def register_users(store: LocalStore, users: int, size: tuple[int, int]) -> dict[str, list]:
    """Every user's person and garments: {user: [PersonRef, GarmentRef, ...]}."""
    photo, mask = photo_like(1, size), Image.new("L", size, 0)
    mask.paste(255, (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 2))
    garment, text = photo_like(2, size), RandomText()
    refs: dict[str, list] = {}
    for u in range(users):
        user = f"user-{u:04d}"
        person = register_person(store, user, photo, {"upper_body": mask}, photo_like(3, size))
        refs[user] = [PersonRef(version=person.version)]
        for g in range(GARMENTS_PER_USER):
            manifest = register_garment(
                store, text, user, f"shirt-{g}", garment, "a shirt", "upper_body"
            )
            refs[user].append(GarmentRef(clothing_id=f"shirt-{g}", version=manifest.version))
    return refs


def worker_env(args: argparse.Namespace, store: Path, redis_url: str, queue: str) -> dict:
    python_path = [str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(python_path),
        "VTON_MODEL_PATH": str(args.model_path),
        "VTON_STORE": f"file://{store}",
        "VTON_WIDTH": str(args.width),
        "VTON_HEIGHT": str(args.height),
        "VTON_MAX_BATCH": str(args.max_batch),
        "VTON_COMPILE": "true" if args.compile else "false",
        "VTON_FALLBACK_DTYPE": "none",
        "VTON_RESULT_CACHE_BYTES": "1",
        "VTON_JWT_SECRET": "cluster-bench-secret-at-least-32-bytes!",
        "VTON_REDIS_URL": redis_url,
        "VTON_QUEUE_NAME": queue,
        "VTON_QUEUE_MAX_WAITING": "100000",
    }  # fmt: skip


def start_workers(
    args: argparse.Namespace, env: dict, count: int, logs: Path
) -> list[subprocess.Popen[bytes]]:
    """`count` worker processes, device i % len(devices) each; returns once all consume."""
    devices = args.devices.split(",")
    started = []
    for i in range(count):
        log = logs / f"worker-{uuid.uuid4().hex[:6]}.log"
        command = [sys.executable, "-m", "bench.cluster_bench", "worker", *args.worker_args]
        process = subprocess.Popen(
            command,
            env={**env, "VTON_DEVICES": devices[i % len(devices)]},
            cwd=REPO,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        started.append((process, log))
    deadline = time.monotonic() + args.start_timeout_s
    for process, log in started:
        while "consuming queue=" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
    return [process for process, _ in started]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


# -- one round of jobs --------------------------------------------------------------------------


@dataclass
class Round:
    jobs: int
    wall_s: float
    latencies_s: list[float]
    finished_s: list[float]
    """When each job finished, from the first enqueue, in order."""
    batch_sizes: Counter[int]
    failed: int

    @property
    def throughput(self) -> float:
        return self.jobs / self.wall_s

    @property
    def steady_throughput(self) -> float:
        """Jobs a second between the 10th and the 90th percentile completion: without the
        first batches forming while jobs arrive and the last, partial, ones."""
        first, last = int(0.1 * self.jobs), int(0.9 * self.jobs)
        return (last - first) / (self.finished_s[last] - self.finished_s[first])

    def latency(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_jobs(refs: dict[str, list], count: int, steps: int, first: int) -> list[TryOnJob]:
    users = sorted(refs)
    now = datetime.now(UTC)
    jobs = []
    for n in range(first, first + count):
        user = users[n % len(users)]
        person, *garments = refs[user]
        jobs.append(
            TryOnJob(
                kind="single",
                user_id=user,
                person=person,
                garments=[garments[(n // len(users)) % len(garments)]],
                options=RunOptions(steps=steps, seed=n),
                requested_at=now,
                deadline=now + timedelta(hours=1),
            )
        )
    return jobs


async def run_round(settings: QueueSettings, jobs: list[TryOnJob]) -> Round:
    queue, events = TryOnQueue(settings), TryOnEvents(settings)
    await events.start()
    ids = [f"bench-{uuid.uuid4().hex}" for _ in jobs]
    enqueued: dict[str, float] = {}
    latencies, finished, sizes, failed = [], [], Counter[int](), 0
    try:
        with events.subscribe() as stream:
            start = time.perf_counter()
            for job_id, job in zip(ids, jobs, strict=True):
                enqueued[job_id] = time.perf_counter()
                await queue.enqueue(job_id, job)
            pending = set(ids)
            while pending:
                event = await asyncio.wait_for(stream.get(), timeout=600)
                if event.job_id not in pending or event.kind not in ("completed", "failed"):
                    continue
                pending.discard(event.job_id)
                latencies.append(time.perf_counter() - enqueued[event.job_id])
                finished.append(time.perf_counter() - start)
                if event.kind == "failed" or event.result is None:
                    failed += 1
                    continue
                sizes.update(item.batch_size for item in event.result.items)
            wall = time.perf_counter() - start
    finally:
        await events.close()
        await queue.close()
    return Round(len(jobs), wall, latencies, finished, sizes, failed)


# -- the in-process path, for the overhead ------------------------------------------------------


def in_process_latencies(
    args: argparse.Namespace, env: dict, refs: dict, count: int
) -> list[float]:
    """One job at a time through TryOnService in this process (no queue): the same engine."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("VTON_")})
    os.environ.pop("VTON_REDIS_URL")
    service = Service.build(Settings(), CollectorRegistry(), load=engine_loader(args))
    latencies = []
    try:
        for job in make_jobs(refs, count, args.steps, first=10**6):
            options = run_options(job)
            started = time.perf_counter()
            tryon = service.tryons.submit_reference(
                job.user_id, [job.garments[0].clothing_id], None, options, "single", False
            )
            tryon.job.wait(600)
            latencies.append(time.perf_counter() - started)
    finally:
        service.close()
    return latencies


# -- main ---------------------------------------------------------------------------------------


def worker_main(argv: list[str]) -> None:
    from vton.cli.serve_commands import LOG_FORMAT
    from vton.cluster.worker import run_worker

    args = parse(["run", *argv])
    logging.basicConfig(level="INFO", format=LOG_FORMAT)
    asyncio.run(run_worker(Settings(), load=engine_loader(args)))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["run", "worker"], nargs="?", default="run")
    parser.add_argument("--engine", choices=["sleep", "fullsize"], default="sleep")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure")
    parser.add_argument("--devices", default="cpu", help="worker i runs on device i %% count")
    parser.add_argument("--users", type=int, default=128)
    parser.add_argument("--jobs-per-worker", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--step-ms", type=float, default=20.0, help="sleep engine: per step")
    parser.add_argument("--sample-ms", type=float, default=10.0, help="sleep engine: per sample")
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--compile", action="store_true", help="fullsize: torch.compile")
    parser.add_argument("--overhead-jobs", type=int, default=20)
    parser.add_argument("--start-timeout-s", type=float, default=900)
    parser.add_argument("--model-path", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    args.worker_args = [
        "--engine", args.engine, "--step-ms", str(args.step_ms), "--sample-ms", str(args.sample_ms),
    ]  # fmt: skip
    return args


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        worker_main(sys.argv[2:])
        return
    args = parse(sys.argv[1:])
    counts = [int(n) for n in args.workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    if args.model_path is None:  # the tiny model: the sleep engine's start-up, a path otherwise
        args.model_path = make_tiny_model(work / "tiny")
    store = work / "store"
    refs = register_users(LocalStore(store), args.users, (args.width, args.height))
    redis = start_redis(work)
    rows, seeds = [], 0
    try:
        for count in counts:
            queue = f"bench-{count}-{uuid.uuid4().hex[:6]}"
            env = worker_env(args, store, redis.url, queue)
            workers = start_workers(args, env, count, work)
            settings = QueueSettings(url=redis.url, name=queue)
            try:
                # fresh seeds every round: a repeated request would be a result-cache hit
                warm = make_jobs(refs, len(refs), args.steps, seeds)
                seeds += len(warm)
                asyncio.run(run_round(settings, warm))
                jobs = make_jobs(refs, args.jobs_per_worker * count, args.steps, seeds)
                seeds += len(jobs)
                rows.append((count, asyncio.run(run_round(settings, jobs))))
            finally:
                stop(workers)
            print(f"{count} worker(s): {rows[-1][1].throughput:.2f} jobs/s", flush=True)
        overhead = None
        if args.engine == "sleep":
            env = worker_env(args, store, redis.url, "unused")
            local = in_process_latencies(args, env, refs, args.overhead_jobs)
            settings = QueueSettings(url=redis.url, name=f"bench-1-overhead-{uuid.uuid4().hex[:6]}")
            env = worker_env(args, store, redis.url, settings.name)
            workers = start_workers(args, env, 1, work)
            try:
                queued = []
                for job in make_jobs(refs, args.overhead_jobs, args.steps, first=2 * 10**6):
                    queued += asyncio.run(run_round(settings, [job])).latencies_s
            finally:
                stop(workers)
            overhead = (statistics.median(local), statistics.median(queued))
    finally:
        redis.stop()
    report(args, rows, overhead)


def report(
    args: argparse.Namespace, rows: list[tuple[int, Round]], overhead: tuple[float, float] | None
) -> None:
    base = rows[0][1].throughput / rows[0][0]
    steady_base = rows[0][1].steady_throughput / rows[0][0]
    print(f"\n{machine()}; engine={args.engine} steps={args.steps} max_batch={args.max_batch} "
          f"users={args.users} frame={args.width}x{args.height}")  # fmt: skip
    print(
        "| workers | jobs | failed | jobs/s | efficiency | steady jobs/s | steady efficiency "
        "| p50 s | p95 s | batch sizes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for count, r in rows:
        histogram = " ".join(f"{b}:{n}" for b, n in sorted(r.batch_sizes.items()))
        print(
            f"| {count} | {r.jobs} | {r.failed} | {r.throughput:.2f} | "
            f"{r.throughput / (count * base):.2f} | {r.steady_throughput:.2f} | "
            f"{r.steady_throughput / (count * steady_base):.2f} | "
            f"{r.latency(0.5):.2f} | {r.latency(0.95):.2f} "
            f"| {histogram} |"
        )
    if overhead is not None:
        local, queued = overhead
        print(
            f"\none job at a time, median: in-process {local * 1000:.0f} ms, cluster "
            f"{queued * 1000:.0f} ms: overhead {(queued - local) * 1000:.0f} ms a job"
        )
    if args.out is not None:
        data = {
            "machine": machine(),
            "args": {k: str(v) for k, v in vars(args).items()},
            "rows": [
                {"workers": c, **vars(r), "batch_sizes": dict(r.batch_sizes)} for c, r in rows
            ],
            "overhead_s": overhead,
        }
        args.out.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
