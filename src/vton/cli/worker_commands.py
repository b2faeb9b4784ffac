"""`vton worker`: a GPU worker of the cluster mode (VTON_REDIS_URL)."""

from __future__ import annotations

import asyncio
import logging

import typer

from vton.cli.serve_commands import LOG_FORMAT, _fail, _settings


def worker(
    log_level: str = typer.Option("info", "--log-level", help="debug|info|warning|error"),
) -> None:
    """Run try-ons from the Redis queue (VTON_REDIS_URL) on this host's devices, after warm-up."""
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    settings = _settings()
    if settings.redis_url is None:
        _fail("VTON_REDIS_URL is not set: a worker takes its jobs from Redis")
    from vton.cluster.worker import run_worker  # bullmq: the optional `cluster` extra

    asyncio.run(run_worker(settings))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
