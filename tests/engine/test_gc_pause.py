from __future__ import annotations

import gc
import weakref

from vton.engine.gc_pause import freeze_start_up_objects, release_start_up_objects


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_freezing_collects_the_garbage_first_then_keeps_what_lives_out_of_collections() -> None:
    garbage, frozen = Node(), Node()
    dead, alive = weakref.ref(garbage), weakref.ref(frozen)
    del garbage
    try:
        assert freeze_start_up_objects() >= 0.0
        assert dead() is None
        assert gc.get_freeze_count() > 0
        del frozen
        gc.collect()
        assert alive() is not None  # its cycle is garbage now, but no collection looks at it
    finally:
        release_start_up_objects()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None
