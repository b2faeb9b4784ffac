"""Stale-if-error: the value the store last gave for each key, served instead of a store outage
for at most `max_age_s` after the store last confirmed it.

Every read goes to the store first; a value only stands in when the store does not answer
(StoreUnavailable), so once the store answers again every read is fresh. What the store says is
missing is forgotten at once, and a write through this service (`confirm`) replaces what was
remembered, so a deletion or a re-registration is never undone by a stale value.

    found = manifests.read(key, lambda: decode(store.get(key)))
    found.value, found.age_s   # age_s: None when the store answered now
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from vton.errors import NotRegistered, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ENTRIES = 100_000
"""Keys remembered at most (least recently read forgotten first); manifests are under 1 KB."""


class Read(NamedTuple, Generic[T]):
    value: T
    age_s: float | None
    """Seconds since the store last confirmed the value, when it stood in for an outage; None
    when the store answered this read."""


class _Confirmed(NamedTuple):
    value: object
    at: float
    stale_logged: bool


class StaleIfError(Generic[T]):
    """Thread-safe; `max_age_s` 0 turns stale reads off (every read is the store's)."""

    def __init__(
        self,
        max_age_s: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Confirmed] = OrderedDict()
        self.served = 0
        """Reads answered with a remembered value while the store did not answer."""

    def read(self, key: str, fetch: Callable[[], T], stale_ok: bool = True) -> Read[T]:
        """`fetch()` (the store's value, remembered), or, when it raises StoreUnavailable and
        `stale_ok`, the value the store gave last if it is at most `max_age_s` old. NotRegistered
        from `fetch` forgets the key."""
        try:
            value = fetch()
        except NotRegistered:
            self.forget(key)
            raise
        except StoreUnavailable as error:
            if not stale_ok:
                raise
            stale = self._stale(key, error)
            if stale is None:
                raise
            return stale
        self.confirm(key, value)
        return Read(value, None)

    def confirm(self, key: str, value: T) -> None:
        """The store holds `value` for `key` now (read from it, or written through this
        service)."""
        if not self.max_age_s:
            return
        with self._lock:
            self._entries[key] = _Confirmed(value, self._clock(), False)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def _stale(self, key: str, error: StoreUnavailable) -> Read[T] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            age = self._clock() - entry.at
            if age > self.max_age_s:
                return None
            self.served += 1
            if not entry.stale_logged:  # once per key and outage: a fresh read resets it
                self._entries[key] = entry._replace(stale_logged=True)
                log.warning(
                    "store unavailable (%s): serving %s as the store gave it %.0f s ago "
                    "(stale for at most %g s)",
                    error,
                    key,
                    age,
                    self.max_age_s,
                )
            return Read(entry.value, age)  # type: ignore[arg-type]
