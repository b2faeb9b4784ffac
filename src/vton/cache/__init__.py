"""Caches for artifacts: L1 memory and L2 disk, both LRU bounded in bytes, with single-flight."""

from vton.cache.disk import DiskLRU
from vton.cache.lru import Lru
from vton.cache.singleflight import SingleFlight
from vton.cache.tiered import Found, Source, TieredCache, slowest

__all__ = ["DiskLRU", "Found", "Lru", "SingleFlight", "Source", "TieredCache", "slowest"]
