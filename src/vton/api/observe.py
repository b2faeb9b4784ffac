"""One ASGI middleware around every request: the body size limit, the HTTP metrics, and one
structured log line per request, carrying the fields the route added with `annotate`:

    request method=POST route=/api/fitting/single-item-tryon-v2 status=200 user=u1 clothing=c1
      cache=person:memory,c1:store result_cached=false artifacts_ms=12 queue_ms=3 ... total_ms=700
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vton.api.errors import PayloadTooLarge, error_response

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
    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: HttpMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})[_FIELDS] = {}
        status = 500
        limit = self.max_body_bytes

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(f"the request body is over {limit} bytes")
            return message

        try:
            if self._declared_length(scope) > limit:
                too_large = PayloadTooLarge(f"the request body is over {limit} bytes")
                await error_response(too_large)(scope, receive, observed_send)
            else:
                await self.app(scope, limited_receive, observed_send)
        finally:
            self._record(scope, status, time.perf_counter() - started)

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


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.0f}"
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    return text.replace(" ", "_") if text else "-"
