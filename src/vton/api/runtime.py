"""What the app holds across requests: settings, the token codec, the metrics registry, the
Service, loaded on a background thread so /health answers while the model loads, and the
backend of asynchronous jobs (in-process, or the cluster's queue with VTON_REDIS_URL)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from vton.api.errors import NotReady
from vton.api.jobs_backend import JobsBackend, LocalJobs
from vton.api.tokens import TokenCodec
from vton.config import Settings
from vton.service import LoadEngine, Service

log = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        load: LoadEngine,
        on_load_failure: Callable[[], None] | None = None,
    ) -> None:
        """on_load_failure: called (from the loading thread) if the service cannot start."""
        self.settings = settings
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self.tokens = TokenCodec.from_secret(secret)
        self.registry = CollectorRegistry()
        self.service: Service | None = None
        self.load_error: str | None = None
        self._load = load
        self._on_load_failure = on_load_failure
        self._thread = threading.Thread(target=self._build, name="vton-load", daemon=True)
        self._closing = threading.Event()
        self.jobs = self._jobs_backend()

    def _jobs_backend(self) -> JobsBackend:
        if self.settings.redis_url is None:
            return LocalJobs(self.settings, self.require)
        from vton.api.cluster_jobs import ClusterJobs  # bullmq: the optional `cluster` extra
        from vton.cluster.queue import queue_settings

        return ClusterJobs(self.settings, queue_settings(self.settings), self.require)

    def start(self) -> None:
        if self.tokens.dev_mode:
            log.warning(
                "DEV MODE: VTON_JWT_SECRET is not set; tokens are signed with a random secret "
                "that dies with this process. Set VTON_JWT_SECRET in production."
            )
        self._thread.start()

    def wait_loaded(self, timeout_s: float | None = None) -> bool:
        """Blocks until loading ended (successfully or not); True if it did within timeout_s."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def require(self) -> Service:
        if self.service is None:
            raise NotReady(self.load_error or "the model is still loading")
        return self.service

    def close(self) -> None:
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.service is not None:
            self.service.close()
            self.service = None

    def _build(self) -> None:
        try:
            service = Service.build(self.settings, self.registry, self._load)
        except Exception as exc:
            self.load_error = f"the service failed to start: {type(exc).__name__}: {exc}"
            log.exception("the service failed to start")
            if self._on_load_failure is not None:
                self._on_load_failure()
            return
        if self._closing.is_set():
            service.close()
            return
        self.service = service
