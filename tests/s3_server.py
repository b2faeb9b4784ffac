"""A real S3-protocol server for tests: moto's server mode on 127.0.0.1, on a free port.

Fixtures (imported by tests/conftest.py): `s3_server` (one per session), `s3_store` (an S3Store
on a fresh bucket), `artifact_store` (each test runs twice: local folder and S3).

It can delay every object GET on the server side (`delay_s`), to show that loads overlap, hold
every request unanswered (`freeze()` until `thaw()`: a silent store, connections accepted and
never answered), and counts object GETs per key path (`gets`). Stopping closes the socket, so
clients see a refused connection, and `start()` again serves on the same port with the same data
(moto's state is per process).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from vton.store import LocalStore, S3Store, Store

# Fake credentials for boto3 (moto accepts any); set by the session fixture.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3TestServer(ThreadedMotoServer):
    def __init__(self, port: int = 0) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.delay_s = 0.0
        self.gets: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._thawed = threading.Event()
        self._thawed.set()

    @property
    def endpoint_url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def _server_entry(self) -> None:
        # ThreadedMotoServer's own entry, with the app wrapped and the chosen port remembered.
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self._ip_address, self._port, self._wrap(app), True, request_handler=MotoRequestHandler
        )
        self._port = self._server.server_port
        self._server_ready_event.set()
        self._server.serve_forever()

    def stop(self) -> None:
        super().stop()
        if self._server is not None:
            self._server.server_close()

    def freeze(self) -> None:
        """Requests from now on wait, unanswered, until `thaw()`."""
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    def _wrap(self, app: Any) -> Any:
        def delayed(environ: dict[str, Any], start_response: Any) -> Any:
            self._thawed.wait()
            path = environ.get("PATH_INFO", "")
            is_object_get = environ["REQUEST_METHOD"] == "GET" and path.strip("/").count("/") >= 1
            if is_object_get:
                with self._lock:
                    self.gets[path] += 1
                if self.delay_s:
                    time.sleep(self.delay_s)
            return app(environ, start_response)

        return delayed


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3TestServer]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in S3_ENV.items():
            env.setenv(name, value)
        server = S3TestServer()
        server.start()
        yield server
        server.stop()


def make_s3_store(server: S3TestServer, **options: Any) -> S3Store:
    """An S3Store on a new, empty bucket of `server`."""
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=server.endpoint_url).create_bucket(Bucket=bucket)
    return S3Store(bucket, "prefix/", endpoint_url=server.endpoint_url, **options)


@pytest.fixture
def s3_store(s3_server: S3TestServer) -> Iterator[S3Store]:
    s3_server.delay_s = 0.0
    s3_server.gets.clear()
    yield make_s3_store(s3_server, max_attempts=1)
    s3_server.delay_s = 0.0


@pytest.fixture(params=["file", "s3"])
def artifact_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The same test on both backends."""
    if request.param == "file":
        return LocalStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")
