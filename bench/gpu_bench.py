"""Full-size IDM-VTON (random weights) on one GPU: each variant of the engine is a row of ROWS,
started as the service starts a device and measured on the same inputs and noise. Prints a
short table last; details go to $OUT (or ./var/bench).

    PYTHONPATH=src:. python bench/gpu_bench.py [--rows reference,default] [--restart]
        [--no-compile] [--max-batch 8] [--steps 20] [--batches 8] [--first-steps 4]
    PYTHONPATH=src:. python bench/gpu_bench.py --tiny --device cpu     (a check of the logic)

Each row gets a freshly built model (the optimisations change the model in place). Measures:
`first_requests` (right after the warm-up: one request of each shape the service can reach,
timed, with the CUDA graphs captured, the steps run eagerly and the Dynamo graphs traced during
it), `tryon` (one 20-step
try-on: median of repeats after a first call, per phase, peak memory, the image against the
first row's), `garments` (10 garments on one person, in batches of at most --max-batch as the
service's scheduler forms them; one after another for the reference) and `batch` (try-ons per
second at each of --batches). `--restart` then starts the default engine again in a new
process with the same compile cache: the service's warm restart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from bench.harness import (
    FULL_SIZE,
    OUT,
    TINY_SIZE,
    Samples,
    as_the_original_runs,
    build_fullsize_model,
    build_tiny_model,
    compile_counters,
    diffusion_options,
    engine_counters,
    free_memory,
    machine,
    matmul_tflops,
    peak_gib,
    psnr,
    reset_peak_memory,
    start_up,
    sync,
    timed,
    tryon,
)
from vton.engine.optimize import EngineOptimizations
from vton.engine.pipeline import TryOnPipeline
from vton.engine.types import DiffusionOptions, TryOnSample

GARMENT_CACHE_BYTES = 40 << 30  # 10 garments x 20 steps at 1024x768 (NOTES: garment cache row)


@dataclass(frozen=True)
class Variant:
    """One row: the engine's switches and what to measure with them."""

    name: str
    optimizations: EngineOptimizations
    measures: tuple[str, ...] = ("tryon", "garments", "batch")
    original: bool = False
    """The original implementation's way around the engine: no warm-up, one try-on at a time,
    TF32 at torch's defaults and inference mode (harness.as_the_original_runs)."""
    keyed: bool = True
    note: str = ""


ROWS = (
    Variant(
        "reference",
        # sync_free_steps: the original waits for the GPU at each step too (diffusers' DDPM step
        # reads its device timestep), so this favours the reference (NOTES, "Why the reference
        # mode was slower")
        replace(EngineOptimizations.reference(), sync_free_steps=True),
        measures=("tryon", "garments"),
        original=True,
        keyed=False,
        note="the original's arithmetic and precision, one try-on at a time",
    ),
    Variant(
        "default",
        EngineOptimizations(),
        measures=("first_requests", "tryon", "garments", "batch"),
        note="the service's defaults",
    ),
    Variant(
        "garment_features_once",
        EngineOptimizations(garment_features_once=True),
        note="opt-in, changes the output",
    ),
    Variant(
        "garment_cache",
        EngineOptimizations(garment_feature_cache_bytes=GARMENT_CACHE_BYTES),
        measures=("first_requests", "tryon", "garments"),
        note="opt-in; repeat garments: each measure's first call fills the cache",
    ),
    Variant("uncompiled", EngineOptimizations(compile=False), note="defaults without compile"),
)


@dataclass
class Bench:
    """What every row is measured with."""

    args: argparse.Namespace
    size: tuple[int, int]
    samples: Samples
    build: Callable[[], Any]
    first_png: bytes | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options(self, steps: int | None = None, guidance_scale: float = 2.0) -> DiffusionOptions:
        return diffusion_options(self.size, steps or self.args.steps, guidance_scale)


def in_batches(samples: list[TryOnSample], size: int) -> Iterator[list[TryOnSample]]:
    for i in range(0, len(samples), size):
        yield samples[i : i + size]


def seconds(fn: Callable[[], object]) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def dynamo_graphs() -> dict[str, int]:
    """Graphs Dynamo traced so far: a request that traces one compiles inside its latency."""
    return {"dynamo_graphs": compile_counters()["dynamo_unique_graphs"]}


def measure_first_requests(bench: Bench, row: Variant, pipeline: TryOnPipeline) -> dict:
    """One request of each reachable shape (batch 1..max, guidance on and off, keyed and
    unkeyed samples), new people and garments each, right after the warm-up: its seconds, and
    the CUDA graphs captured, the steps run eagerly and the graphs Dynamo traced during it
    (all 0 when the warm-up covered the shape; GarmentNet's passes ahead depend on the step
    count, hence --first-steps); with --first-again the same request once more."""
    shapes: dict[str, dict[str, Any]] = {}
    first = 1000
    for batch in range(1, bench.args.max_batch + 1):
        for guidance_scale in (2.0, 1.0):
            for keyed in (True, False):
                samples = bench.samples.mixed(batch, keyed, first=first)
                first += batch
                options = bench.options(bench.args.first_steps, guidance_scale)
                before = {**engine_counters(pipeline), **dynamo_graphs()}
                took = seconds(lambda s=samples, o=options: tryon(pipeline, s, o))
                after = {**engine_counters(pipeline), **dynamo_graphs()}
                again = None
                if bench.args.first_again:
                    again = seconds(lambda s=samples, o=options: tryon(pipeline, s, o))
                label = f"b{batch} guidance {guidance_scale} {'keyed' if keyed else 'unkeyed'}"
                shapes[label] = {
                    "first_s": took,
                    "again_s": again,
                    **{
                        f"{name}_during_first": (None if a is None else a - (before[name] or 0))
                        for name, a in after.items()
                    },
                }
                print(f"[{row.name}] first request {label}: {shapes[label]}", flush=True)
    return {"first_requests": shapes, "counters_after": engine_counters(pipeline)}


def measure_tryon(bench: Bench, row: Variant, pipeline: TryOnPipeline) -> dict:
    one = [bench.samples.one(0, 0, row.keyed)]
    options = bench.options()
    reset_peak_memory()
    png = tryon(pipeline, one, options)[0][0]  # warms this row's caches
    peak = peak_gib()
    runs = []
    for _ in range(bench.args.repeats):
        took = seconds(lambda: runs.append(tryon(pipeline, one, options)[1]))
        runs[-1]["total"] = took * 1e3
    phases = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    if bench.first_png is None:
        bench.first_png = png
    max_abs, db = psnr(bench.first_png, png)
    return {
        "tryon_s": phases["total"] / 1e3,
        "tryon_ms_per_phase": phases,
        "peak_gib_b1": peak,
        "image_vs_first_row": f"{max_abs} / {db:.1f} dB",
        "image_sha256": hashlib.sha256(png).hexdigest(),  # compares the output across runs
    }


def measure_garments(bench: Bench, row: Variant, pipeline: TryOnPipeline) -> dict:
    garments = bench.samples.garments_on_one_person(10, row.keyed)
    size = 1 if row.original else bench.args.max_batch
    options = bench.options()

    def run() -> None:
        for batch in in_batches(garments, size):
            tryon(pipeline, batch, options)

    return {"garments10_s": timed(run, repeats=1, warmup=0 if row.original else 1)}


def measure_batch(bench: Bench, row: Variant, pipeline: TryOnPipeline) -> dict:
    out = {}
    for batch in bench.args.batches:
        mixed = bench.samples.mixed(batch, row.keyed)
        took = timed(lambda m=mixed: tryon(pipeline, m, bench.options()), repeats=1, warmup=1)
        out[f"tput_b{batch}"] = batch / took
    return out


MEASURES = {
    "first_requests": measure_first_requests,
    "tryon": measure_tryon,
    "garments": measure_garments,
    "batch": measure_batch,
}


def run_row(bench: Bench, row: Variant) -> dict:
    opts = row.optimizations
    if bench.args.no_compile:
        opts = replace(opts, compile=False)
    started = start_up(bench.build, opts, bench.args.max_batch, bench.size, warm=not row.original)
    result: dict[str, Any] = {
        "build_s": started.build_s,
        "warm_up_s": started.warm_up_s,
        "warm_up_ms": started.warm_up_ms,
        "gc_full_collection_ms": started.gc_full_collection_ms,
        "status": [s.line() for s in started.pipeline.optimization_status],
    }
    ready = f"build {started.build_s:.1f}s + optimise and warm-up {started.warm_up_s:.1f}s"
    print(f"[{row.name}] ready: {ready}", flush=True)
    context: AbstractContextManager = as_the_original_runs() if row.original else nullcontext()
    with context:
        for name in row.measures:
            result.update(MEASURES[name](bench, row, started.pipeline))
            print(f"[{row.name}] {name} done", flush=True)
    result["compile_counters"] = compile_counters()  # a row recompiling shows here
    return result


def restart(args: argparse.Namespace) -> dict:
    """The default engine started again in a new process (same compile cache on disk)."""
    command = [sys.executable, __file__, "--startup-only", "--max-batch", str(args.max_batch)]
    command += ["--dtype", args.dtype, "--device", args.device]
    command += ["--no-compile"] * args.no_compile + ["--tiny"] * args.tiny
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": f"exit status {done.returncode}: {done.stderr[-2000:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def startup_only(bench: Bench) -> None:
    """Prints the default engine's start-up as one JSON line (the child of `restart`)."""
    opts = EngineOptimizations(compile=not bench.args.no_compile)
    started = start_up(bench.build, opts, bench.args.max_batch, bench.size)
    record = {
        "build_s": started.build_s,
        "warm_up_s": started.warm_up_s,
        "ready_s": started.build_s + started.warm_up_s,
        "warm_up_ms": started.warm_up_ms,
        "gc_full_collection_ms": started.gc_full_collection_ms,
        **engine_counters(started.pipeline),
        **compile_counters(),
    }
    print(json.dumps(record), flush=True)


def table(bench: Bench, header: str) -> str:
    def cell(r: dict, key: str, fmt: str) -> str:
        return "-" if r.get(key) is None else format(r[key], fmt)

    batch = bench.args.batches[-1]
    lines = [
        header,
        f"| variant | ready (s) | one try-on (s) | 10 garments (s) | batch {batch} (try-ons/s) "
        "| peak b1 (GiB) | image vs first row | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in ROWS:
        r = bench.results.get(row.name)
        if r is None:
            continue
        ready = r["build_s"] + r["warm_up_s"]
        lines.append(
            f"| {row.name} | {ready:.1f} | {cell(r, 'tryon_s', '.3f')} "
            f"| {cell(r, 'garments10_s', '.3f')} | {cell(r, f'tput_b{batch}', '.2f')} "
            f"| {cell(r, 'peak_gib_b1', '.1f')} | {r.get('image_vs_first_row', '-')} "
            f"| {row.note} |"
        )
    for row in ROWS:
        shapes = bench.results.get(row.name, {}).get("first_requests")
        if not shapes:
            continue
        lines += [
            "",
            f"First request of each shape after the warm-up ({row.name}, "
            f"{bench.args.first_steps} steps):",
            "| shape | first (s) | again (s) | CUDA graphs captured | steps run eagerly "
            "| Dynamo graphs traced |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for label, s in shapes.items():
            lines.append(
                f"| {label} | {s['first_s']:.3f} | {cell(s, 'again_s', '.3f')} "
                f"| {s['cuda_graphs_during_first']} | {s['eager_steps_during_first']} "
                f"| {s['dynamo_graphs_during_first']} |"
            )
    r = bench.results.get("restart", {})
    if "error" in r:
        lines += ["", f"Restart failed: {r['error'][-300:]}"]
    elif r:
        lines += [
            "",
            f"Restart (default engine, new process, same compile cache): ready in "
            f"{r['ready_s']:.1f} s (build {r['build_s']:.1f} + optimise and warm-up "
            f"{r['warm_up_s']:.1f}); Dynamo graphs {r['dynamo_unique_graphs']}, FX-graph cache "
            f"hits {r['fxgraph_cache_hit']} / misses {r['fxgraph_cache_miss']}",
        ]
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    names = [row.name for row in ROWS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="reference,default", help=f"of {','.join(names)}")
    parser.add_argument("--restart", action="store_true", help="then time a warm restart")
    parser.add_argument("--startup-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--max-batch", type=int, default=8, help="the service's VTON_MAX_BATCH")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="one try-on's timed runs")
    parser.add_argument("--batches", default="8", help="batch sizes whose throughput is timed")
    parser.add_argument("--first-steps", type=int, default=4, help="steps of first requests")
    parser.add_argument("--first-again", action="store_true", help="each first request twice")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny model")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    args.rows = args.rows.split(",")
    unknown = set(args.rows) - set(names)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; known: {names}")
    if not args.startup_only and max(args.batches) > args.max_batch:
        parser.error("--batches beyond --max-batch would capture graphs inside the measurement")
    if not args.tiny and args.device == "cpu":
        parser.error("the full-size model needs a GPU: use --tiny on a CPU")
    return args


def main() -> None:
    args = parse_args()
    dtype = getattr(torch, args.dtype)
    size = TINY_SIZE if args.tiny else FULL_SIZE
    if args.tiny:
        build = lambda: build_tiny_model(dtype, args.device)  # noqa: E731
    else:
        build = lambda: build_fullsize_model(dtype, args.device)  # noqa: E731
    bench = Bench(args, size, Samples(size), build)
    if args.startup_only:
        startup_only(bench)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    rate = ""
    if args.device.startswith("cuda") and not args.tiny:
        rate = f" | matmul {matmul_tflops(dtype):.0f} TFLOP/s"
    header = (
        f"{machine()} | {args.dtype} | {'tiny model' if args.tiny else 'full size'} "
        f"{size[0]}x{size[1]} | {args.steps} steps | compile {not args.no_compile}{rate}"
    )
    print(header, flush=True)
    for row in ROWS:
        if row.name in args.rows:
            bench.results[row.name] = run_row(bench, row)
            free_memory()
            write_out(bench, header)  # what is done survives a run stopped at its time limit
    if args.restart:
        bench.results["restart"] = restart(args)
    print(write_out(bench, header))


def write_out(bench: Bench, header: str) -> str:
    text = table(bench, header)
    (OUT / "gpu_bench.json").write_text(json.dumps(bench.results, indent=2, default=str))
    (OUT / "gpu_bench.md").write_text(text)
    return text


if __name__ == "__main__":
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.abspath("var/inductor-cache"))
    main()
