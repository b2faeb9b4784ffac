"""Fixtures of the API tests: `server` (one per session: S3 on moto's server, 96x128 try-ons),
`faulty_server` (one per module that asks: local store, both engines behind FaultyPipelines), and
`user` (a new user with a registered person and garment `shirt`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from tests.api.live import (
    FaultyServer,
    LiveServer,
    make_settings,
    new_user,
    register_garment,
    register_person,
    start_faulty_server,
)
from tests.s3_server import S3TestServer


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
        garment_feature_cache_gb=0.05,  # on, so the API tests run through it too
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def faulty_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultyServer]:
    """Local store, a queue of 4, no batch window, a float32 fallback copy of the model."""
    settings = make_settings(
        tiny_model_dir,
        tmp_path_factory.mktemp("faulty"),
        max_queue=4,
        batch_window_ms=0,
        fallback_dtype="float32",
    )
    faulty = start_faulty_server(settings)
    yield faulty
    faulty.main.reset()
    faulty.fallback.reset()
    faulty.server.stop()


@pytest.fixture
def user(server: LiveServer) -> Iterator[tuple[httpx.Client, str]]:
    """A new user with a registered person and garment `shirt`: (client, user id)."""
    user_id = new_user()
    with server.client(user_id) as client:
        register_person(client)
        register_garment(client, "shirt")
        yield client, user_id
