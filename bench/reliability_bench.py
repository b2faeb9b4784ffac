"""Reliability under overload and faults (issue 19): each scenario against a real uvicorn server
(tiny model, CPU), in this process, reporting what the issue's targets are about.

- overload: CLIENTS clients doing v2 try-ons (2 steps, a new seed each) for DURATION s, each
  waiting Retry-After after a 429: answers 200 / 429 / 503 / 504, and the samples the engine ran
  for try-ons that did not succeed (past their deadline; target 0), from the server's metrics.
- upload: 50 concurrent one-colour uploads, 7000 x 7000 as a person (over VTON_MAX_IMAGE_PIXELS:
  refused from the header), then 4096 x 4096 as a garment (decoded under
  VTON_DECODE_MEMORY_BYTES): statuses and the process's RSS before, at its peak, after.
- store: S3 on moto's server, users registered and their caches warmed, then the server frozen
  (connections accepted, never answered) for FREEZE s under load: readers (GET /api/person, no
  stale answer) time to their 503 (target <= 3 s), /ready's latency (target <= 1 s), try-ons
  served from the warm caches (target: all) and said stale, and the recovery once it answers.

    PYTHONPATH=src:. python bench/reliability_bench.py                 # short: a few minutes
    PYTHONPATH=src:. python bench/reliability_bench.py --long          # the issue's sizes
    PYTHONPATH=src:. python bench/reliability_bench.py --scenarios upload --json out.json

The clients run in this process too (their share of RSS in the upload burst is their 50 request
bodies, under 40 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import httpx
from PIL import Image

from tests.api.live import LiveServer, make_settings, new_user, register_garment, register_person
from vton.engine.tiny import make_tiny_model
from vton.preprocess.body.standins import write_standins

MiB = 2**20
TRYON = "/api/fitting/single-item-tryon-v2"


@dataclass(frozen=True)
class Sizes:
    """How big each scenario runs; `short` fits in a few minutes on a 2-core machine."""

    clients: int
    duration_s: float
    width: int
    height: int
    timeout_s: float
    steps: int
    upload_clients: int
    freeze_s: float
    store_clients: int


SHORT = Sizes(
    clients=50,
    duration_s=40,
    width=384,
    height=512,
    timeout_s=15,
    steps=2,
    upload_clients=50,
    freeze_s=15,
    store_clients=12,
)
LONG = replace(SHORT, duration_s=150, width=768, height=1024, timeout_s=120, freeze_s=50)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


class PeakRss:
    """Samples RSS every 10 ms while in the block."""

    def __enter__(self) -> PeakRss:
        self.before = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = rss_bytes()


@contextmanager
def serving(model: Path, folder: Path, **overrides: Any) -> Iterator[LiveServer]:
    server = LiveServer(make_settings(model, folder, **overrides)).start()
    try:
        yield server
    finally:
        server.stop()


def warm_users(server: LiveServer, count: int, steps: int) -> list[str]:
    """Users with a person and a garment `shirt`, each tried on once (the caches warm)."""
    users = [new_user() for _ in range(count)]
    for user_id in users:
        with server.client(user_id, timeout=600) as client:
            register_person(client)
            register_garment(client, "shirt")
            body = {"clothingId": "shirt", "denoiseSteps": steps}
            assert client.post(TRYON, json=body).status_code == 200
    return users


def headers(server: LiveServer, user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(user_id)}"}


# -- overload ---------------------------------------------------------------------------------


def overload(model: Path, folder: Path, sizes: Sizes) -> dict[str, Any]:
    settings = {"width": sizes.width, "height": sizes.height}
    settings |= {"request_timeout_s": sizes.timeout_s, "max_queue": 64, "max_batch": 8}
    with serving(model, folder, **settings) as server:
        users = warm_users(server, 5, sizes.steps)
        before = engine_counts(server)
        statuses, latencies = asyncio.run(overload_clients(server, users, sizes))
        drained = wait_until_idle(server)
        after = engine_counts(server)
    computed = after["computed"] - before["computed"]
    succeeded = after["succeeded"] - before["succeeded"]
    ok = sorted(latencies)
    return {
        "clients": sizes.clients,
        "duration_s": sizes.duration_s,
        "frame": f"{sizes.width}x{sizes.height}",
        "timeout_s": sizes.timeout_s,
        "statuses": dict(sorted(statuses.items())),
        "ok_latency_s": {"p50": ok[len(ok) // 2], "max": ok[-1]} if ok else None,
        "samples_computed": computed,
        "samples_succeeded": succeeded,
        "computed_for_nobody": computed - succeeded,
        "server_idle_after_s": drained,
    }


async def overload_clients(
    server: LiveServer, users: list[str], sizes: Sizes
) -> tuple[Counter[int], list[float]]:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    end = time.monotonic() + sizes.duration_s

    async def client(i: int) -> None:
        user_id = users[i % len(users)]
        timeout = sizes.timeout_s + 30
        async with httpx.AsyncClient(
            base_url=server.url, headers=headers(server, user_id), timeout=timeout
        ) as http:
            while time.monotonic() < end:
                body = {"clothingId": "shirt", "denoiseSteps": sizes.steps}
                body["seed"] = random.randrange(2**31)  # never the result cache
                started = time.monotonic()
                response = await http.post(TRYON, json=body)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    latencies.append(time.monotonic() - started)
                elif "retry-after" in response.headers:
                    wait = float(response.headers["retry-after"])
                    await asyncio.sleep(min(wait, max(0.0, end - time.monotonic())))

    await asyncio.gather(*(client(i) for i in range(sizes.clients)))
    return statuses, latencies


def engine_counts(server: LiveServer) -> dict[str, float]:
    """Samples the engine ran (the batch-size histogram's sum) and items that succeeded."""
    return {
        "computed": server.metric("vton_batch_size_sum", missing_ok=True),
        "succeeded": server.metric('vton_items_total{outcome="succeeded"}', missing_ok=True),
    }


def wait_until_idle(server: LiveServer, limit_s: float = 600) -> float:
    """Seconds until the queue is empty and the engine count stops moving (a batch that was
    running when the clients stopped finishes)."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < limit_s:
        now = (server.metric("vton_queue_depth"), engine_counts(server)["computed"])
        if now[0] == 0 and now == last:
            break
        last = now
        time.sleep(1.0)
    return time.monotonic() - started


# -- upload burst ----------------------------------------------------------------------------


def one_colour_png(side: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(out, "PNG", compress_level=1)
    return base64.b64encode(out.getvalue()).decode()


def upload(model: Path, folder: Path, sizes: Sizes) -> dict[str, Any]:
    report: dict[str, Any] = {"clients": sizes.upload_clients}
    with serving(model, folder, max_upload_bytes=16 * MiB) as server:
        settings = server.settings
        report["max_image_pixels"] = settings.max_image_pixels
        report["decode_memory_mib"] = settings.decode_memory_bytes // MiB
        report["malloc_arena_max"] = os.environ.get("MALLOC_ARENA_MAX")
        garment = {"image": one_colour_png(4096), "description": "a top", "category": "upper_body"}
        runs = [
            ("person 7000x7000", "PUT", "/api/person", {"image": one_colour_png(7000)}),
            ("garment 4096x4096", "POST", "/api/clothing", garment),
        ]
        for name, method, path, body in runs:
            with PeakRss() as rss:
                statuses = asyncio.run(burst(server, sizes.upload_clients, method, path, body))
            report[name] = {
                "statuses": dict(sorted(statuses.items())),
                "rss_mib": {
                    "before": rss.before // MiB,
                    "peak": rss.peak // MiB,
                    "after": rss.after // MiB,
                },
            }
    return report


async def burst(
    server: LiveServer, clients: int, method: str, path: str, body: dict
) -> Counter[int]:
    async def one(i: int) -> int:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            response = await http.request(
                method, path, json=body, headers=headers(server, f"burst-{i}")
            )
            return response.status_code

    return Counter(await asyncio.gather(*(one(i) for i in range(clients))))


# -- the store frozen ------------------------------------------------------------------------


@dataclass
class Call:
    kind: str
    started: float
    ended: float
    status: int
    stale: bool = False


def store(model: Path, folder: Path, sizes: Sizes) -> dict[str, Any]:
    from tests.s3_server import S3_ENV, S3TestServer  # moto: only this scenario needs it

    os.environ.update({k: v for k, v in S3_ENV.items() if k not in os.environ})
    s3 = S3TestServer()
    s3.start()
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3.endpoint_url).create_bucket(Bucket=bucket)
    settings = {"store": f"s3://{bucket}/vton", "s3_endpoint_url": s3.endpoint_url}
    try:
        with serving(model, folder, **settings) as server:
            users = warm_users(server, sizes.store_clients, 1)
            calls, freeze_at, thaw_at = store_load(server, s3, users, sizes)
    finally:
        s3.thaw()
        s3.stop()
    return store_report(calls, freeze_at, thaw_at, server.settings.store_call_timeout_s)


def store_load(
    server: LiveServer, s3: Any, users: list[str], sizes: Sizes
) -> tuple[list[Call], float, float]:
    """Readers, try-ons and a /ready poller, 3 s before the freeze, during it, and 10 s after."""
    calls: list[Call] = []
    lock = threading.Lock()
    stop = threading.Event()

    def loop(kind: str, request: Callable[[httpx.Client], httpx.Response], client: Any) -> None:
        with client:
            while not stop.is_set():
                started = time.monotonic()
                response = request(client)
                stale = response.status_code == 200 and kind == "tryon"
                stale = stale and response.json().get("staleSeconds") is not None
                with lock:
                    calls.append(Call(kind, started, time.monotonic(), response.status_code, stale))
                time.sleep(0.2 if kind != "tryon" else 0.0)

    seeds = iter(range(10**9))

    def tryon(client: httpx.Client) -> httpx.Response:
        body = {"clothingId": "shirt", "denoiseSteps": 1, "seed": next(seeds)}
        return client.post(TRYON, json=body)

    threads = []
    for user_id in users:
        threads.append(("tryon", tryon, server.client(user_id, timeout=120)))
        threads.append(("read", lambda c: c.get("/api/person"), server.client(user_id, 120)))
    threads.append(("ready", lambda c: c.get("/ready"), server.client(timeout=120)))
    running = [threading.Thread(target=loop, args=args, daemon=True) for args in threads]
    for thread in running:
        thread.start()
    time.sleep(3)
    freeze_at = time.monotonic()
    s3.freeze()
    time.sleep(sizes.freeze_s)
    s3.thaw()
    thaw_at = time.monotonic()
    time.sleep(10)
    stop.set()
    for thread in running:
        thread.join(180)
    return calls, freeze_at, thaw_at


def store_report(
    calls: list[Call], freeze_at: float, thaw_at: float, call_timeout_s: float
) -> dict[str, Any]:
    def during(kind: str) -> list[Call]:
        return [c for c in calls if c.kind == kind and freeze_at <= c.started < thaw_at]

    reads, tryons, ready = during("read"), during("tryon"), during("ready")
    answered = [c for c in reads if c.status == 503]
    after = [c for c in calls if c.kind == "read" and c.started >= thaw_at and c.status == 200]
    return {
        "freeze_s": round(thaw_at - freeze_at, 1),
        "store_call_timeout_s": call_timeout_s,
        "reads": dict(Counter(c.status for c in reads)),
        "read_503_latency_max_s": max((c.ended - c.started for c in answered), default=None),
        "first_503_after_freeze_s": min((c.ended - freeze_at for c in answered), default=None),
        "ready": dict(Counter(c.status for c in ready)),
        "ready_latency_max_s": max((c.ended - c.started for c in ready), default=None),
        "tryons": dict(Counter(c.status for c in tryons)),
        "tryons_said_stale": sum(c.stale for c in tryons),
        "tryon_latency_max_s": max((c.ended - c.started for c in tryons), default=None),
        "reads_ok_again_after_s": min((c.ended - thaw_at for c in after), default=None),
    }


# -- main -------------------------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[Path, Path, Sizes], dict[str, Any]]] = {
    "overload": overload,
    "upload": upload,
    "store": store,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="the issue's sizes (over 10 min)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = LONG if args.long else SHORT
    results: dict[str, Any] = {"sizes": asdict(sizes), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny_model(Path(tmp) / "model")
        write_standins(model / "ckpt")
        for name in args.scenarios.split(","):
            started = time.monotonic()
            results[name] = SCENARIOS[name](model, Path(tmp) / name, sizes)
            results[name]["wall_s"] = round(time.monotonic() - started, 1)
            print(name, json.dumps(rounded(results[name])), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rounded(results), indent=2))


def rounded(value: Any) -> Any:
    """`value` with its floats to 3 decimals, for reading."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    main()
