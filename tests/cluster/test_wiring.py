"""How the cluster mode is switched on and the small pieces of its wiring."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

pytest.importorskip("bullmq")

from vton.api.cluster_jobs import ClusterJobs, retry_after_s
from vton.api.jobs_backend import LocalJobs
from vton.api.runtime import Runtime
from vton.cli import app
from vton.cluster.handler import error_code
from vton.cluster.queue import queue_settings
from vton.config import Settings
from vton.errors import InvalidInput, NotRegistered
from vton.scheduler import JobTimeout


def never_loads(_settings: Settings, _device: str) -> object:
    raise AssertionError("the runtime is not started in these tests")


def test_the_jobs_backend_is_chosen_by_the_redis_url() -> None:
    local = Runtime(Settings(_env_file=None), never_loads)  # type: ignore[arg-type]
    assert isinstance(local.jobs, LocalJobs)
    settings = Settings(
        _env_file=None, redis_url="redis://127.0.0.1:1/0", queue_name="q", queue_lock_ms=3000
    )
    cluster = Runtime(settings, never_loads)  # type: ignore[arg-type]
    assert isinstance(cluster.jobs, ClusterJobs)
    queue = cluster.jobs.queue_settings
    assert (queue.url, queue.name, queue.prefix) == ("redis://127.0.0.1:1/0", "q", "bull")
    assert (queue.lock_duration_ms, queue.stalled_interval_ms) == (3000, 4000)


def test_queue_settings_need_the_redis_url() -> None:
    with pytest.raises(ValueError, match="VTON_REDIS_URL"):
        queue_settings(Settings(_env_file=None))


def test_a_worker_without_redis_url_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VTON_REDIS_URL", raising=False)
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "VTON_REDIS_URL is not set" in result.output


def test_failure_codes_are_the_error_class_in_snake_case() -> None:
    assert error_code(NotRegistered("x")) == "not_registered"
    assert error_code(InvalidInput("x")) == "invalid_input"
    assert error_code(JobTimeout("x")) == "job_timeout"


def test_retry_after_grows_with_the_waiting_jobs_within_bounds() -> None:
    assert retry_after_s(0, 0) == 1.0
    assert retry_after_s(40, 8) == 5.0
    assert retry_after_s(10_000, 1) == 60.0
