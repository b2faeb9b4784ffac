"""Cluster mode end to end: one `vton serve` (two for SSE) and two `vton worker` processes on the
tiny model, one Redis, one store folder. The processes live for the module; tests that kill one
start it again."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

pytest.importorskip("bullmq")

from tests.api.live import SECRET, register_garment, register_person, wait_job
from tests.cluster.conftest import NODE_DIR, RedisServer, start_redis
from tests.cluster.fleet import Fleet, VtonProcess
from vton.api.tokens import TokenCodec
from vton.cluster.queue import JobView, QueueSettings, TryOnQueue

MAX_BATCH = 2
STEPS = 6
WAIT_S = 120.0
GARMENTS = [f"shirt-{i}" for i in range(6)]


class Deployment:
    def __init__(self, tmp: Path, model: Path, max_batch: int = MAX_BATCH) -> None:
        self.tmp = tmp
        self.redis_dir = tmp / "redis"
        self.redis_dir.mkdir()
        self.redis: RedisServer = start_redis(self.redis_dir)
        self.queue_name = f"vton-test-{uuid.uuid4().hex[:6]}"
        self.store = tmp / "store"
        self.fleet = Fleet(
            tmp,
            {
                "VTON_MODEL_PATH": str(model),
                "VTON_WIDTH": "96",
                "VTON_HEIGHT": "128",
                "VTON_STORE": f"file://{self.store}",
                "VTON_JWT_SECRET": SECRET,
                "VTON_DEVICES": "cpu",
                "VTON_MAX_BATCH": str(max_batch),
                "VTON_BATCH_WINDOW_MS": "300",
                "VTON_RESULT_CACHE_BYTES": "1",  # nothing kept in memory: reruns read the store
                "VTON_REDIS_URL": self.redis.url,
                "VTON_QUEUE_NAME": self.queue_name,
                "VTON_QUEUE_LOCK_MS": "4000",
                "VTON_QUEUE_STALLED_MS": "2000",
                "VTON_QUEUE_MAX_WAITING": "1000",
            },
        )
        self.api = self.fleet.api()
        self.workers = [self.fleet.worker(), self.fleet.worker()]
        self.user = f"user-{uuid.uuid4().hex[:8]}"
        self.tokens = TokenCodec(SECRET)
        with self.client() as client:
            register_person(client)
            for clothing_id in GARMENTS:
                register_garment(client, clothing_id)

    def client(self, api: VtonProcess | None = None) -> httpx.Client:
        token = self.tokens.mint(self.user, 3600)
        return httpx.Client(
            base_url=(api or self.api).url or "",
            headers={"Authorization": f"Bearer {token}"},
            timeout=WAIT_S,
        )

    def queue_view(self, job_id: str) -> JobView | None:
        """The job as Redis has it (what the API does not show: attempts, batch sizes)."""

        async def read() -> JobView | None:
            queue = TryOnQueue(QueueSettings(url=self.redis.url, name=self.queue_name))
            try:
                return await queue.get(job_id)
            finally:
                await queue.close()

        return asyncio.run(read())

    def holder(self, job_id: str) -> VtonProcess:
        """The worker process that took the job (its log says so)."""
        (worker,) = [w for w in self.workers if f"job {job_id} taken" in w.log_text()]
        return worker

    def close(self) -> None:
        self.fleet.stop_all()
        self.redis.stop()


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("fleet"), tiny_model_dir)
    yield deployment
    deployment.close()


@pytest.fixture(scope="module")
def unbatched(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[Deployment]:
    """Workers that run one sample a batch: a sample's image then does not depend on what it
    was batched with (across batch compositions the engine agrees to 1e-5, which can move a PNG
    level by 1), so a rerun after a kill must give the same bytes."""
    deployment = Deployment(tmp_path_factory.mktemp("unbatched"), tiny_model_dir, max_batch=1)
    yield deployment
    deployment.close()


def submit(client: httpx.Client, clothing_id: str, seed: int, steps: int = STEPS) -> str:
    body = {"type": "single", "clothingId": clothing_id, "seed": seed, "denoiseSteps": steps}
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()["jobId"]


def run_jobs(deployment: Deployment, seeds: list[int]) -> dict[int, tuple[str, dict]]:
    with deployment.client() as client:
        ids = {seed: submit(client, GARMENTS[seed % len(GARMENTS)], seed) for seed in seeds}
        return {seed: (job_id, wait_job(client, job_id, WAIT_S)) for seed, job_id in ids.items()}


def forget_results(deployment: Deployment) -> None:
    """Removes the stored result PNGs, so the same requests run the engine again."""
    shutil.rmtree(deployment.store / "results", ignore_errors=True)


SEEDS = list(range(100, 108))


@pytest.fixture(scope="module")
def first_run(deployment: Deployment) -> dict[int, tuple[str, dict]]:
    forget_results(deployment)
    return run_jobs(deployment, SEEDS)


def test_jobs_finish_in_batches_across_jobs(deployment: Deployment, first_run: dict) -> None:
    batch_sizes = []
    for job_id, status in first_run.values():
        assert status["state"] == "succeeded", (status["error"], status["results"][0]["error"])
        (item,) = status["results"]
        assert item["success"] and item["image"]
        view = deployment.queue_view(job_id)
        assert view is not None and view.result is not None
        batch_sizes.append(view.result.items[0].batch_size)
    assert max(batch_sizes) > 1, batch_sizes


def test_a_repeated_request_is_a_result_cache_hit(deployment: Deployment, first_run: dict) -> None:
    seed = SEEDS[0]
    with deployment.client() as client:
        status = wait_job(client, submit(client, GARMENTS[seed % len(GARMENTS)], seed), WAIT_S)
    (item,) = status["results"]
    assert item["resultCached"], status
    assert item["image"] == first_run[seed][1]["results"][0]["image"]


def test_a_node_producers_job_runs_on_the_workers(deployment: Deployment, node: str) -> None:
    """What a NestJS service does: enqueue with Node bullmq, wait with QueueEvents; then the
    API reads the same job, and its image is the PNG under the result's key."""
    with deployment.client() as client:
        person = client.get("/api/person").json()["version"]
        garment = client.get(f"/api/clothing/{GARMENTS[2]}").json()["version"]
        now = datetime.now(UTC)
        payload = {
            "v": 1,
            "kind": "single",
            "userId": deployment.user,
            "person": {"version": person},
            "garments": [{"clothingId": GARMENTS[2], "version": garment}],
            "options": {"steps": 3, "seed": 77},
            "requestedAt": now.isoformat(),
            "deadline": (now + timedelta(minutes=2)).isoformat(),
        }
        job_id = uuid.uuid4().hex
        command = [node, str(NODE_DIR / "produce.mjs"), deployment.redis.url]
        command += [deployment.queue_name, "bull", job_id]
        produced = subprocess.run(
            command, input=json.dumps(payload).encode(), capture_output=True, timeout=60
        )
        assert produced.returncode == 0, produced.stderr
        seen = json.loads(produced.stdout.decode().strip().splitlines()[-1])
        assert seen["failedReason"] is None, seen
        (item,) = seen["returnvalue"]["items"]
        assert item["state"] == "succeeded" and item["resultKey"].startswith("results/")
        assert seen["progressEvents"][-1]["step"] == 3
        status = client.get(f"/api/jobs/{job_id}").json()
    assert status["state"] == "succeeded"
    png = base64.b64decode(status["results"][0]["image"])
    assert png == (deployment.store / item["resultKey"]).read_bytes()


def test_a_killed_workers_jobs_finish_once_with_the_same_images(unbatched: Deployment) -> None:
    forget_results(unbatched)
    before = run_jobs(unbatched, SEEDS)
    forget_results(unbatched)
    with unbatched.client() as client:
        ids = {seed: submit(client, GARMENTS[seed % len(GARMENTS)], seed) for seed in SEEDS}
        deadline = time.monotonic() + WAIT_S
        while True:
            progressed = [i for i in ids.values() if client.get(f"/api/jobs/{i}").json()["step"]]
            if progressed:
                break
            assert time.monotonic() < deadline
            time.sleep(0.02)
        victim = unbatched.holder(progressed[0])
        victim.kill()
        statuses = {seed: wait_job(client, job_id, WAIT_S) for seed, job_id in ids.items()}
    unbatched.workers[unbatched.workers.index(victim)] = unbatched.fleet.worker()
    rerun = 0
    for seed, status in statuses.items():
        assert status["state"] == "succeeded", (status["error"], status["results"][0]["error"])
        (item,) = status["results"]
        first = before[seed][1]
        assert first["state"] == "succeeded", (first["error"], first["results"][0]["error"])
        assert item["image"] == first["results"][0]["image"], f"seed {seed}"
        view = unbatched.queue_view(ids[seed])
        assert view is not None and view.state == "completed"
        rerun += view.attempts_started > 1
    assert rerun >= 1, "the killed worker held no running job"


def read_events(response: httpx.Response, limit: int | None = None) -> list[tuple[str, str, dict]]:
    """(id, event, data) of each event, up to `limit` events."""
    events: list[tuple[str, str, dict]] = []
    event_id = name = ""
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = line.removeprefix("id: ")
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((event_id, name, json.loads(line.removeprefix("data: "))))
            event_id = ""
            if limit is not None and len(events) >= limit:
                break
    return events


def test_sse_resumes_on_another_api_process(deployment: Deployment) -> None:
    second = deployment.fleet.api()
    try:
        with deployment.client() as client, deployment.client(second) as other:
            job_id = submit(client, GARMENTS[0], seed=901, steps=12)
            with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
                assert response.status_code == 200
                first = read_events(response, limit=1)
            (event_id, name, data) = first[0]
            assert name == "progress" and event_id, first
            headers = {"Last-Event-ID": event_id}
            with other.stream("GET", f"/api/jobs/{job_id}/events", headers=headers) as response:
                assert response.status_code == 200
                rest = read_events(response)
        names = [name for _, name, _ in rest]
        assert names[-2:] == ["item", "finished"], names
        assert rest[-1][2]["state"] == "succeeded"
        steps = [d["step"] for _, n, d in rest if n == "progress"]
        assert all(step > data["step"] for step in steps), (data, steps)
        assert rest[-2][2]["imageUrl"] and rest[-2][2]["image"] is None  # URLs, not images
    finally:
        second.stop()


def test_cancel_a_waiting_and_a_running_job_and_429_when_full(deployment: Deployment) -> None:
    strict = deployment.fleet.api(VTON_QUEUE_MAX_WAITING="2")
    try:
        with deployment.client() as client, deployment.client(strict) as limited:
            # 2 workers x 2 batches x MAX_BATCH held at most: the rest wait
            held = 2 * 2 * MAX_BATCH
            ids = [
                submit(client, GARMENTS[i % 6], seed=1000 + i, steps=40) for i in range(held + 3)
            ]
            deadline = time.monotonic() + WAIT_S
            while True:
                states = [client.get(f"/api/jobs/{i}").json() for i in ids]
                running = [s for s in states if s["state"] == "running" and s["step"] > 0]
                if running:
                    break
                assert time.monotonic() < deadline, states
                time.sleep(0.1)
            waiting = [s for s in states if s["state"] == "queued"]
            assert waiting, states

            refused = limited.post(
                "/api/jobs", json={"type": "single", "clothingId": GARMENTS[0], "seed": 5}
            )
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["Retry-After"]) >= 1

            cancelled = client.delete(f"/api/jobs/{waiting[-1]['jobId']}")
            assert cancelled.status_code == 200
            assert cancelled.json()["state"] == "cancelled"

            target = running[0]["jobId"]
            assert client.delete(f"/api/jobs/{target}").status_code == 200
            final = wait_job(client, target, WAIT_S)
            assert final["state"] == "cancelled", final
            for job_id in ids:
                client.delete(f"/api/jobs/{job_id}")
    finally:
        strict.stop()


def test_sigterm_finishes_the_jobs_a_worker_holds_then_it_exits(deployment: Deployment) -> None:
    with deployment.client() as client:
        ids = [submit(client, GARMENTS[i % 6], 2000 + i, steps=10) for i in range(4)]
        deadline = time.monotonic() + WAIT_S
        while not (held := [i for i in ids if client.get(f"/api/jobs/{i}").json()["step"]]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        worker = deployment.holder(held[0])
        assert worker.stop() == 0, worker.log_text()[-3000:]
        statuses = [wait_job(client, job_id, WAIT_S) for job_id in ids]
    deployment.workers[deployment.workers.index(worker)] = deployment.fleet.worker()
    assert [s["state"] for s in statuses] == ["succeeded"] * len(ids), statuses
    view = deployment.queue_view(held[0])
    assert view is not None and view.attempts_started == 1, view


def test_the_system_answers_again_after_a_redis_restart(deployment: Deployment) -> None:
    """Redis stops: 503; an API process started meanwhile starts anyway; Redis comes back on
    the same port (empty): both API processes and the workers carry on by themselves."""
    port = deployment.redis.port
    deployment.redis.stop()
    late = deployment.fleet.api()
    try:
        for api in (deployment.api, late):
            with deployment.client(api) as client:
                body = {"type": "single", "clothingId": GARMENTS[1]}
                down = client.post("/api/jobs", json=body)
                assert down.status_code == 503, down.text
        deployment.redis = start_redis(deployment.redis_dir, port)
        for seed, api in enumerate((deployment.api, late)):
            with deployment.client(api) as client:
                job_id = submit_when_up(client, seed)
                events = client.get(f"/api/jobs/{job_id}/events").text
                assert "event: finished" in events
                status = wait_job(client, job_id, WAIT_S)
            assert status["state"] == "succeeded", status
    finally:
        late.stop()


def submit_when_up(client: httpx.Client, seed: int) -> str:
    body = {"type": "single", "clothingId": GARMENTS[1], "seed": 4242 + seed, "denoiseSteps": 2}
    deadline = time.monotonic() + WAIT_S
    while (response := client.post("/api/jobs", json=body)).status_code != 202:
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline
        time.sleep(0.5)
    return response.json()["jobId"]
