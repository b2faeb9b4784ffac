"""One ASGI middleware around every request: the body read whole before the app runs (413 over
the size limit, chunked or not; 408 when it does not arrive in time), the HTTP metrics, and one
structured log line per request, carrying the fields the route added with `annotate`:

    request method=POST route=/api/fitting/single-item-tryon-v2 status=200 user=u1 clothing=c1
      cache=person:memory,c1:store result_cached=false artifacts_ms=12 queue_ms=3 ... total_ms=700
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vton.api.errors import BodyTimeout, PayloadTooLarge, error_response

log = logging.getLogger("vton.api.requests")

_FIELDS = "vton_log"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def annotate(request: Request, **fields: Any) -> None:
    """Adds fields to the request's log line."""
    request.scope.setdefault("state", {}).setdefault(_FIELDS, {}).update(fields)


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "vton_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "vton_http_request_seconds",
            "HTTP request latency by route and status (streams: until the stream ends).",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)


class RequestObserver:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, body_timeout_s: float, metrics: HttpMetrics
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})[_FIELDS] = {}
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            try:
                if self._declared_length(scope) > self.max_body_bytes:
                    raise self._too_large()
                body = await self._read_body(receive)
            except (PayloadTooLarge, BodyTimeout) as refused:
                response = error_response(refused)
                response.headers["Connection"] = "close"  # the rest of the body is never read
                await response(scope, receive, observed_send)
                return
            await self.app(scope, _replay(body, receive), observed_send)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is over {self.max_body_bytes} bytes")

    async def _read_body(self, receive: Receive) -> list[Message]:
        """The request's messages up to its body's end (or a disconnect), each counted against
        the size limit, all within the body timeout."""
        messages: list[Message] = []
        received = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    messages.append(message)
                    if message["type"] != "http.request":
                        return messages
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise self._too_large()
                    if not message.get("more_body", False):
                        return messages
        except TimeoutError:
            raise BodyTimeout(
                f"the request body did not arrive within {self.body_timeout_s:g} s"
            ) from None

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.observe(scope["method"], template, status, seconds)
        fields = scope["state"].get(_FIELDS, {})
        extra = " ".join(f"{k}={_format(v)}" for k, v in fields.items())
        log.info(
            "request method=%s route=%s status=%d %s%stotal_ms=%.0f",
            scope["method"],
            template,
            status,
            extra,
            " " if extra else "",
            seconds * 1000.0,
        )


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that first hands out the messages already read."""
    pending = deque(messages)

    async def replayed() -> Message:
        return pending.popleft() if pending else await receive()

    return replayed


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.0f}"
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    return text.replace(" ", "_") if text else "-"
