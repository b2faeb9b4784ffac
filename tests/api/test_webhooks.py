"""Job webhooks against a real receiver on 127.0.0.1 (listed in VTON_WEBHOOK_ALLOWED_HOSTS):
the signature verifies, a 500 is retried, attempts run out, the delivery shows on the job; and
the address policy: private, loopback and link-local addresses refused unless listed by name,
at submission and again at delivery."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.api.live import (
    WAIT_S,
    LiveServer,
    make_settings,
    new_user,
    register_garment,
    register_person,
    wait_job,
)
from vton.api.webhooks import (
    Delivery,
    RetryPolicy,
    WebhookPolicy,
    WebhookRefused,
    WebhookSender,
    sign,
)

WEBHOOK_SECRET = "whsec-" + "y" * 26
ATTEMPTS = 3


class Receiver:
    """An HTTP server that records each POST and answers the next status of `statuses` (then
    200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/vton"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, statuses: list[int]) -> None:
        with self.lock:
            self.requests.clear()
            self.statuses = list(statuses)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def hooked(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tiny_model_dir,
        tmp_path_factory.mktemp("webhooks"),
        webhook_allowed_hosts="127.0.0.1, *",
        webhook_secret=WEBHOOK_SECRET,
        webhook_max_attempts=ATTEMPTS,
        webhook_backoff_s=0.2,
        webhook_timeout_s=5,
        warmup=False,
    )
    server = LiveServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
def client(hooked: LiveServer) -> Iterator[httpx.Client]:
    with hooked.client(new_user()) as client:
        register_person(client)
        register_garment(client, "shirt")
        yield client


def submit(client: httpx.Client, webhook_url: str, seed: int, **extra: object) -> httpx.Response:
    body = {"type": "single", "clothingId": "shirt", "denoiseSteps": 2, "seed": seed, **extra}
    return client.post("/api/jobs", json=body | {"webhookUrl": webhook_url})


def wait_delivery(client: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while True:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status["webhook"]["state"] in ("succeeded", "failed"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def test_the_finished_job_is_posted_signed_without_images(
    hooked: LiveServer, client: httpx.Client, receiver: Receiver
) -> None:
    receiver.reset([])
    accepted = submit(client, receiver.url, seed=1, outputFormat="jpeg")
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["jobId"]
    assert wait_job(client, job_id)["webhook"]["url"] == receiver.url
    status = wait_delivery(client, job_id)
    webhook = status["webhook"]
    assert webhook["state"] == "succeeded" and webhook["attempts"] == 1, webhook
    assert webhook["lastStatusCode"] == 200 and webhook["deliveredAt"]
    ((headers, body),) = receiver.requests
    timestamp = headers["X-Vton-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert headers["X-Vton-Signature"] == f"sha256={expected.hexdigest()}"
    assert headers["X-Vton-Webhook-Id"] == job_id
    assert headers["Content-Type"] == "application/json"
    posted = json.loads(body)
    assert posted["jobId"] == job_id and posted["state"] == "succeeded"
    assert posted["outputFormat"] == "jpeg" and "webhook" not in posted
    (item,) = posted["results"]
    assert item["image"] is None
    assert item["imageUrl"] == f"{hooked.url}/api/jobs/{job_id}/results/0"
    result = client.get(item["imageUrl"])  # the absolute URL works
    assert result.status_code == 200 and result.headers["content-type"] == "image/jpeg"


def test_a_500_is_retried(client: httpx.Client, receiver: Receiver) -> None:
    receiver.reset([500])
    job_id = submit(client, receiver.url, seed=2).json()["jobId"]
    webhook = wait_delivery(client, job_id)["webhook"]
    assert webhook["state"] == "succeeded" and webhook["attempts"] == 2, webhook
    (_, first), (_, second) = receiver.requests
    assert first == second


def test_a_receiver_that_keeps_failing_uses_up_the_attempts(
    client: httpx.Client, receiver: Receiver
) -> None:
    receiver.reset([503] * ATTEMPTS)
    job_id = submit(client, receiver.url, seed=3).json()["jobId"]
    webhook = wait_delivery(client, job_id)["webhook"]
    assert webhook["state"] == "failed" and webhook["attempts"] == ATTEMPTS, webhook
    assert webhook["lastStatusCode"] == 503 and webhook["nextAttemptAt"] is None
    assert len(receiver.requests) == ATTEMPTS


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/hook",  # private, matched only by "*"
        "http://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "http://[::1]:8080/hook",  # loopback
        "http://localhost:9/hook",  # a name that resolves to loopback
        "ftp://127.0.0.1/hook",
        "http://user:pw@127.0.0.1/hook",
        "not a url",
    ],
)
def test_a_webhook_url_into_the_servers_network_is_refused(client: httpx.Client, url: str) -> None:
    response = submit(client, url, seed=4)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "WebhookRefused"
    assert client.get("/api/jobs").json()["jobs"] == []  # nothing was queued


def test_webhooks_are_off_without_allowed_hosts(user: tuple[httpx.Client, str]) -> None:
    client, _ = user
    response = submit(client, "https://hooks.example.com/vton", seed=5)
    assert response.status_code == 422 and "webhooks are off" in response.json()["detail"]


# -- the policy itself ---------------------------------------------------------------------


def test_the_policy_lists_hosts_by_name_suffix_or_any() -> None:
    policy = WebhookPolicy("hooks.example.com, *.partner.test, 10.0.0.7", WEBHOOK_SECRET)
    assert policy.check_url("https://hooks.example.com/x") == ("hooks.example.com", 443)
    assert policy.check_url("http://a.partner.test:8080/x") == ("a.partner.test", 8080)
    assert policy.check_url("http://10.0.0.7/x") == ("10.0.0.7", 80)  # private, but listed
    for refused in ("https://example.com/x", "https://partner.test/x", "http://10.0.0.8/x"):
        with pytest.raises(WebhookRefused, match="not in VTON_WEBHOOK_ALLOWED_HOSTS"):
            policy.check_url(refused)
    with pytest.raises(WebhookRefused, match="non-public"):
        WebhookPolicy("*", WEBHOOK_SECRET).check_url("http://[::ffff:127.0.0.1]/x")
    with pytest.raises(WebhookRefused, match="webhooks are off"):
        WebhookPolicy("*", None).check_url("https://hooks.example.com/x")
    with pytest.raises(WebhookRefused, match="non-public"):
        policy.check_addresses("a.partner.test", [ipaddress.ip_address("192.168.1.1")])
    policy.check_addresses("a.partner.test", [ipaddress.ip_address("93.184.216.34")])


def test_delivery_checks_the_resolved_address_again(receiver: Receiver) -> None:
    """A name that passed at submission but resolves to loopback at delivery time (DNS
    rebinding) is not contacted: here `localhost`, allowed only by a wildcard."""
    receiver.reset([])
    port = receiver.server.server_address[1]
    sender = WebhookSender(WebhookPolicy("*", WEBHOOK_SECRET), RetryPolicy(3, 0.01, 2))
    states: list[Delivery] = []

    async def record(delivery: Delivery) -> None:
        states.append(delivery)

    url = f"http://localhost:{port}/hooks/vton"
    final = asyncio.run(sender.deliver(Delivery(url), "job-1", b"{}", record))
    assert final.state == "failed" and final.attempts == 1  # refused: not retried
    assert "non-public" in (final.last_error or "")
    assert receiver.requests == [] and states == [final]


def test_signature_is_over_timestamp_and_body() -> None:
    assert sign("k" * 16, "1700000000", b'{"a":1}') == (
        "sha256=" + hmac.new(b"k" * 16, b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    )
