"""Fixtures of the API tests: `server` (one per session: S3 on moto's server, 96x128 try-ons),
`faulty_server` (one per module that asks: local store, the engine behind a FaultyPipeline), and
`user` (a new user with a registered person and garment `shirt`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from tests.api.live import (
    FaultyPipeline,
    LiveServer,
    make_settings,
    new_user,
    register_garment,
    register_person,
)
from tests.s3_server import S3TestServer
from vton.config import Settings
from vton.scheduler import DevicePipelines
from vton.service.engine import DeviceEngine, load_engine


@pytest.fixture(scope="session")
def server(
    tiny_model_dir: Path, s3_server: S3TestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    bucket = f"api-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server.endpoint_url).create_bucket(Bucket=bucket)
    settings = make_settings(
        tiny_model_dir,
        tmp_path_factory.mktemp("api"),
        store=f"s3://{bucket}/vton",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_max_attempts=1,
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def faulty_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, FaultyPipeline]]:
    faulty: list[FaultyPipeline] = []

    def load(settings: Settings, device: str) -> DeviceEngine:
        engine = load_engine(settings, device)
        faulty.append(FaultyPipeline(engine.pipelines.main))
        return DeviceEngine(
            engine.device,
            engine.model,
            engine.dtype,
            engine.fallback_dtype,
            DevicePipelines(faulty[-1], engine.pipelines.fallback),
        )

    settings = make_settings(
        tiny_model_dir, tmp_path_factory.mktemp("faulty"), max_queue=4, batch_window_ms=0
    )
    live = LiveServer(settings, load=load).start()
    yield live, faulty[0]
    faulty[0].gate.set()
    live.stop()


@pytest.fixture
def user(server: LiveServer) -> Iterator[tuple[httpx.Client, str]]:
    """A new user with a registered person and garment `shirt`: (client, user id)."""
    user_id = new_user()
    with server.client(user_id) as client:
        register_person(client)
        register_garment(client, "shirt")
        yield client, user_id
