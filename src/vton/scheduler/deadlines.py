"""One thread that fails jobs when their deadline passes, queued or running."""

from __future__ import annotations

import heapq
import itertools
import threading
import time

from vton.scheduler.job import Job


class DeadlineWatcher:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Job]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="vton-deadlines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, job: Job) -> None:
        with self._cond:
            heapq.heappush(self._heap, (job.deadline, next(self._order), job))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._due():
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                due = []
                while self._due():
                    due.append(heapq.heappop(self._heap)[2])
            for job in due:
                job.expire()

    def _due(self) -> bool:
        return bool(self._heap) and self._heap[0][0] <= time.monotonic()
