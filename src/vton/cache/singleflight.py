"""Single-flight: concurrent calls for one key share one execution and its outcome."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


class SingleFlight:
    """The first caller for a key runs `fn`; callers arriving while it runs wait for its result
    (or its exception). Once it has finished, the next call runs `fn` again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, Future] = {}
        self.coalesced = 0  # calls that waited for another's execution

    def do(self, key: Hashable, fn: Callable[[], T]) -> T:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if leader:
                call = self._calls[key] = Future()
            else:
                self.coalesced += 1
        if not leader:
            return call.result()
        try:
            result = fn()
        except BaseException as e:
            call.set_exception(e)
            raise
        else:
            call.set_result(result)
            return result
        finally:
            with self._lock:
                del self._calls[key]
