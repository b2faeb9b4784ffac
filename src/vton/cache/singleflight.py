"""Single-flight: concurrent calls for one key share one execution and its outcome."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    """The first caller for a key runs `fn`; callers arriving while it runs wait for its result
    (or its exception). Once it has finished, the next call runs `fn` again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, Future[Any]] = {}
        self.coalesced = 0  # calls that waited for another's execution

    def do(self, key: Hashable, fn: Callable[[], T]) -> T:
        with self._lock:
            running = self._calls.get(key)
            if running is None:
                call: Future[T] = Future()
                self._calls[key] = call
            else:
                self.coalesced += 1
        if running is not None:
            return running.result()
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
