"""Where each artifact of a try-on came from: memory (L1), disk (L2) or the store.

The artifact loader answers with the objects only; this cache records, per key and version,
where its latest lookup found it, and the service reads that back for the keys of a request.
Under concurrent requests for the same key, a waiter for another's load reads that load's source.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Literal, TypeVar

from vton.cache import TieredCache

T = TypeVar("T")
Source = Literal["memory", "disk", "store"]
_RANK: dict[Source, int] = {"memory": 0, "disk": 1, "store": 2}
MAX_RECORDS = 4096


class ObservedCache(TieredCache):
    """A TieredCache that remembers the source of its latest lookups (bounded)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._sources: OrderedDict[tuple[str, str], Source] = OrderedDict()
        self._sources_lock = threading.Lock()

    def get(self, key: str, version: str, fetch: Callable[[], bytes], decode) -> T:  # type: ignore[override]
        if self.l1.peek(key, version) is not None:
            source: Source = "memory"
            value = super().get(key, version, fetch, decode)
        else:
            fetched = False

            def counted_fetch() -> bytes:
                nonlocal fetched
                fetched = True
                return fetch()

            value = super().get(key, version, counted_fetch, decode)
            source = "store" if fetched else "disk"
        with self._sources_lock:
            self._sources[(key, version)] = source
            self._sources.move_to_end((key, version))
            while len(self._sources) > MAX_RECORDS:
                self._sources.popitem(last=False)
        return value

    def source(self, wanted: Iterable[tuple[str, str]]) -> Source:
        """The slowest source among the (key, version) lookups; store if one is unknown."""
        with self._sources_lock:
            found = [self._sources.get(k, "store") for k in wanted]
        return max(found, key=_RANK.__getitem__, default="memory")
