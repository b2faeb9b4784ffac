"""The queue's JSON messages: camelCase, versioned, validated on read."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import get_args

import pytest

from tests.cluster.jobs import result_for, sample_job
from vton.cluster.messages import (
    VERSION_PATTERN,
    ItemResult,
    JobFailure,
    PayloadError,
    SchedulerName,
    TryOnJob,
    TryOnProgress,
    TryOnResult,
)
from vton.engine.types import SchedulerName as EngineSchedulerName
from vton.preprocess.manifest import VERSION_PATTERN as MANIFEST_VERSION_PATTERN


def test_a_job_round_trips_through_json_in_camel_case() -> None:
    job = sample_job(garments=2)
    wire = json.loads(json.dumps(job.dump()))
    assert wire["v"] == 1
    assert set(wire) == {
        "v", "kind", "userId", "person", "garments", "category", "options", "requestedAt",
        "deadline",
    }  # fmt: skip
    assert set(wire["options"]) == {
        "steps", "scheduler", "guidanceScale", "seed", "pasteBack", "framing",
    }  # fmt: skip
    assert wire["garments"][1] == {"clothingId": "shirt-1", "version": job.garments[1].version}
    assert TryOnJob.parse(wire) == job


def test_results_and_progress_round_trip() -> None:
    job = sample_job(garments=2)
    result = result_for("job-1", job, "host:1", batch_size=8)
    assert TryOnResult.parse(json.loads(json.dumps(result.dump()))) == result
    assert result.dump()["items"][0]["resultKey"] == "results/user-1/job-1-0.png"
    progress = TryOnProgress(step=3, total_steps=40, items_finished=1)
    assert TryOnProgress.parse(progress.dump()) == progress


def test_an_unknown_version_is_its_own_error() -> None:
    with pytest.raises(PayloadError, match=r"v=2 is not one this worker reads") as caught:
        TryOnJob.parse({**sample_job().dump(), "v": 2})
    assert caught.value.code == "unsupported_version"
    with pytest.raises(PayloadError) as missing:
        TryOnJob.parse({"kind": "single"})
    assert missing.value.code == "unsupported_version"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"userId": "a/b"}, "userId"),
        ({"garments": []}, "garments: List should have at least 1 item"),
        ({"options": {"steps": 0}}, "options.steps"),
        ({"options": {"scheduler": "lms"}}, "options.scheduler"),
        ({"person": {"version": "NOT-A-VERSION"}}, "person.version"),
        ({"requestedAt": "2026-01-01T00:00:00"}, "requestedAt: Input should have timezone info"),
        ({"kind": "single", "garments": [{"clothingId": "a", "version": "1"}] * 2}, "one garment"),
        ({"imageBytes": "iVBOR..."}, "imageBytes: Extra inputs are not permitted"),
        ({"deadline": "2020-01-01T00:00:00Z"}, "deadline must be after requestedAt"),
    ],
)
def test_a_bad_job_says_which_field(change: dict[str, object], says: str) -> None:
    with pytest.raises(PayloadError, match="TryOnJob: ") as caught:
        TryOnJob.parse({**sample_job().dump(), **change})
    assert caught.value.code == "bad_payload"
    assert says in str(caught.value)


def test_an_item_is_either_a_result_or_an_error() -> None:
    ok = {"index": 0, "clothingId": "a", "state": "succeeded", "resultKey": "results/u/x.png"}
    ItemResult.model_validate(ok)
    with pytest.raises(ValueError, match="errorCode and no resultKey"):
        ItemResult.model_validate({**ok, "state": "failed"})
    failed = {**ok, "state": "failed", "resultKey": None, "errorCode": "not_registered"}
    assert ItemResult.model_validate(failed).error_code == "not_registered"
    with pytest.raises(ValueError, match="not an error code"):
        ItemResult.model_validate({**failed, "errorCode": "Not Registered"})
    with pytest.raises(PayloadError, match=r"indexed 0\.\.n-1"):
        TryOnResult.parse({"v": 1, "items": [{**ok, "index": 1}]})


def test_a_deadline_expires() -> None:
    job = sample_job()
    assert job.deadline is not None
    assert not job.expired(job.requested_at)
    assert job.expired(job.deadline + timedelta(microseconds=1))


def test_failure_reasons_round_trip() -> None:
    failure = JobFailure(code="cancelled", message="cancelled while running: by user")
    assert failure.reason() == "cancelled: cancelled while running: by user"
    assert JobFailure.from_reason(failure.reason()) == failure
    assert JobFailure.from_reason("Error: boom") == JobFailure(code="failed", message="Error: boom")


def test_scheduler_names_are_the_engines() -> None:
    assert get_args(SchedulerName) == get_args(EngineSchedulerName)


def test_versions_follow_the_manifests_pattern() -> None:
    assert VERSION_PATTERN == MANIFEST_VERSION_PATTERN
