"""Idempotency-Key on job submission: the same key with the same body, from the same user,
while the first job is readable (its deadline plus VTON_JOB_TTL_S), answers that job again
instead of queueing a second; the same key with another body is 409 IdempotencyConflict.

Here: the key's checks, the body's digest, and the in-process table of single-host mode (the
cluster keeps its table in Redis: vton.api.cluster_jobs).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict

from vton.errors import InvalidInput, VtonError

KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
"""Printable ASCII without spaces, 1-255 characters (what Stripe and the IETF draft accept)."""


class IdempotencyConflict(VtonError):
    """The Idempotency-Key was used before with another request body."""


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise InvalidInput("Idempotency-Key: 1-255 printable ASCII characters without spaces")
    return key


def body_digest(kind: str, body: str) -> str:
    """The digest of a request body (its canonical JSON) on one route `kind`."""
    return hashlib.sha256(f"{kind}\n{body}".encode()).hexdigest()


def conflict(key: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"Idempotency-Key {key!r} was used with another request body; use a new key"
    )


class LocalIdempotency:
    """(user, key) -> (digest, job id) until the job can no longer be read. Thread-safe; the
    caller serialises check-then-submit per process (LocalJobs holds a lock across both)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[str, str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, user_id: str, key: str, digest: str) -> str | None:
        """The job id submitted with this key and body, None if the key is unused or expired;
        raises IdempotencyConflict for another body."""
        with self._lock:
            self._expire()
            entry = self._entries.get((user_id, key))
        if entry is None or entry[2] <= time.monotonic():
            return None
        if entry[0] != digest:
            raise conflict(key)
        return entry[1]

    def remember(self, user_id: str, key: str, digest: str, job_id: str, ttl_s: float) -> None:
        with self._lock:
            self._entries[(user_id, key)] = (digest, job_id, time.monotonic() + ttl_s)
            self._entries.move_to_end((user_id, key))

    def forget(self, user_id: str, key: str) -> None:
        """A key whose job is gone early (its person deleted) is free again."""
        with self._lock:
            self._entries.pop((user_id, key), None)

    def _expire(self) -> None:
        """Drops expired entries from the front (entries are kept in insertion order and
        every ttl is job timeout + job ttl, so expiry is nearly in order)."""
        now = time.monotonic()
        while self._entries:
            first = next(iter(self._entries))
            if self._entries[first][2] > now:
                return
            del self._entries[first]
