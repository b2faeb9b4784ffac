"""Job webhooks: the finished job POSTed to the job's webhookUrl, signed, retried, its delivery
state kept for GET /api/jobs/{id}.

Which URLs (VTON_WEBHOOK_ALLOWED_HOSTS): http(s) to a host the list names. An entry is a host
name or IP (`hooks.example.com`, `10.0.0.5`), `*.example.com` (its subdomains) or `*` (any
host). A host matched by a wildcard must resolve to public addresses only: loopback, private,
link-local and other non-global addresses are refused, so the server cannot be made a proxy
into its own network; a host listed by its exact name may resolve to any address (the operator
named it). The check runs at submission (422) and again at every delivery attempt after DNS
resolution, and the attempt connects to the address it checked (TLS still verifies the host
name), so a DNS answer that changes in between (rebinding) reaches nothing unchecked.

Each POST: `Content-Type: application/json`, the JobStatus without base64 images (result URLs
absolute), and
    X-Vton-Webhook-Id: <job id>          the same on every attempt (deduplicate on it)
    X-Vton-Timestamp:  <unix seconds>    of this attempt; reject old ones (replay)
    X-Vton-Signature:  sha256=<hex>      HMAC-SHA256(VTON_WEBHOOK_SECRET, f"{timestamp}.{body}")
A 2xx answer delivers; anything else (or no answer within VTON_WEBHOOK_TIMEOUT_S) is retried
after VTON_WEBHOOK_BACKOFF_S, doubling, up to VTON_WEBHOOK_MAX_ATTEMPTS attempts. Redirects
are not followed. Delivery runs in the API process that accepted the job; a restart of that
process abandons the deliveries it had not finished.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

import httpx

from vton.config import Settings
from vton.errors import InvalidInput

log = logging.getLogger(__name__)

WebhookState = Literal["pending", "retrying", "succeeded", "failed"]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRefused(InvalidInput):
    """A webhook URL this server does not POST to."""


@dataclass(frozen=True)
class Delivery:
    """A webhook's delivery as the job shows it."""

    url: str
    state: WebhookState = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: float | None = None
    """Unix seconds of the next attempt while retrying."""
    delivered_at: float | None = None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Vton-Signature value of a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def is_public(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class WebhookPolicy:
    """Which webhook URLs are accepted, and where a delivery may connect."""

    def __init__(self, allowed_hosts: str, secret: str | None) -> None:
        entries = {e.strip().lower().rstrip(".") for e in allowed_hosts.split(",")}
        entries.discard("")
        self.any_host = "*" in entries
        self.suffixes = tuple(e[1:] for e in entries if e.startswith("*.") and len(e) > 2)
        self.exact = {e for e in entries if not e.startswith("*")}
        self.secret = secret

    @property
    def enabled(self) -> bool:
        return self.secret is not None and bool(self.any_host or self.suffixes or self.exact)

    def check_url(self, url: str) -> tuple[str, int]:
        """(host, port) of an acceptable webhook URL; raises WebhookRefused saying why not."""
        if not self.enabled:
            raise WebhookRefused(
                "webhookUrl: webhooks are off on this server (VTON_WEBHOOK_ALLOWED_HOSTS and "
                "VTON_WEBHOOK_SECRET)"
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise WebhookRefused("webhookUrl: not a valid URL") from None
        host = (parts.hostname or "").rstrip(".")
        if parts.scheme not in ("http", "https") or not host:
            raise WebhookRefused("webhookUrl: an http:// or https:// URL with a host is needed")
        if parts.username is not None or parts.password is not None:
            raise WebhookRefused("webhookUrl: credentials in the URL are not accepted")
        if not self._listed(host):
            raise WebhookRefused(f"webhookUrl: host {host!r} is not in VTON_WEBHOOK_ALLOWED_HOSTS")
        literal = _ip(host)
        if literal is not None:
            self.check_addresses(host, [literal])
        return host, port or (443 if parts.scheme == "https" else 80)

    def _listed(self, host: str) -> bool:
        return self.any_host or host in self.exact or any(host.endswith(s) for s in self.suffixes)

    def check_addresses(self, host: str, addresses: list[IpAddress]) -> None:
        """Refuses a host matched only by a wildcard whose addresses are not all public."""
        if host in self.exact:
            return
        private = [str(a) for a in addresses if not is_public(a)]
        if private:
            raise WebhookRefused(
                f"webhookUrl: {host!r} resolves to a non-public address ({', '.join(private)}); "
                "list the host by name in VTON_WEBHOOK_ALLOWED_HOSTS to allow it"
            )

    async def resolve(self, url: str) -> IpAddress:
        """The checked address a delivery to `url` connects to (WebhookRefused if none)."""
        host, port = self.check_url(url)
        literal = _ip(host)
        if literal is not None:
            return literal
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as e:
            raise ConnectionError(f"cannot resolve {host!r}: {e}") from e
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise ConnectionError(f"{host!r} has no address")
        self.check_addresses(host, addresses)
        return addresses[0]


def _ip(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_s: float = 20.0
    """Wait before the second attempt; doubled before each further one."""
    timeout_s: float = 10.0

    def wait_s(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return self.backoff_s * 2 ** (attempt - 1)


class WebhookSender:
    """POSTs bodies to webhook URLs under a WebhookPolicy and a RetryPolicy."""

    def __init__(self, policy: WebhookPolicy, retry: RetryPolicy) -> None:
        self.policy = policy
        self.retry = retry

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookSender:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        return cls(
            WebhookPolicy(settings.webhook_allowed_hosts, secret),
            RetryPolicy(
                settings.webhook_max_attempts,
                settings.webhook_backoff_s,
                settings.webhook_timeout_s,
            ),
        )

    async def deliver(
        self,
        delivery: Delivery,
        webhook_id: str,
        body: bytes,
        on_update: Callable[[Delivery], Awaitable[None]],
    ) -> Delivery:
        """Attempts until a 2xx, a refused address, or the last attempt; every state change
        goes to on_update (the job's record)."""
        async with httpx.AsyncClient(timeout=self.retry.timeout_s, trust_env=False) as client:
            while True:
                status, error, final = await self._attempt(client, delivery.url, webhook_id, body)
                attempts = delivery.attempts + 1
                now = time.time()
                if status is not None and 200 <= status < 300:
                    delivery = replace(
                        delivery,
                        state="succeeded",
                        attempts=attempts,
                        last_status_code=status,
                        last_error=None,
                        next_attempt_at=None,
                        delivered_at=now,
                    )
                    await on_update(delivery)
                    return delivery
                final = final or attempts >= self.retry.max_attempts
                wait_s = self.retry.wait_s(attempts)
                delivery = replace(
                    delivery,
                    state="failed" if final else "retrying",
                    attempts=attempts,
                    last_status_code=status,
                    last_error=error,
                    next_attempt_at=None if final else now + wait_s,
                )
                await on_update(delivery)
                log.info(
                    "webhook %s attempt %d: %s", webhook_id, attempts, error or f"HTTP {status}"
                )
                if final:
                    return delivery
                await asyncio.sleep(wait_s)

    async def _attempt(
        self, client: httpx.AsyncClient, url: str, webhook_id: str, body: bytes
    ) -> tuple[int | None, str | None, bool]:
        """(status code, error, whether to stop retrying) of one POST."""
        try:
            address = await self.policy.resolve(url)
        except WebhookRefused as e:
            return None, str(e), True
        except ConnectionError as e:
            return None, str(e), False
        assert self.policy.secret is not None  # enabled: check_url passed
        parsed = httpx.URL(url)
        timestamp = str(int(time.time()))
        headers = {
            "Host": parsed.netloc.decode("ascii"),
            "Content-Type": "application/json",
            "User-Agent": "vton-webhooks",
            "X-Vton-Webhook-Id": webhook_id,
            "X-Vton-Timestamp": timestamp,
            "X-Vton-Signature": sign(self.policy.secret, timestamp, body),
        }
        pinned = parsed.copy_with(host=str(address))
        extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
        try:
            response = await client.post(
                pinned, content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as e:
            return None, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, False
        return response.status_code, None, False
