"""Caches for artifacts: L1 memory and L2 disk, both LRU bounded in bytes, with single-flight."""

from vton.cache.disk import DiskLRU
from vton.cache.lru import Lru
from vton.cache.singleflight import SingleFlight
from vton.cache.tiered import TieredCache

__all__ = ["DiskLRU", "Lru", "SingleFlight", "TieredCache"]
