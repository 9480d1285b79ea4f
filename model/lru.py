"""A bounded least-recently-used map: the per-process memories of the planner and the stacked evaluator.

`collections.OrderedDict` does the bookkeeping (`move_to_end`, `popitem(last=False)`); this class only adds the
capacity, so the three memories share one eviction rule instead of three hand-written loops.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most `capacity` entries; reading or writing an entry makes it the most recent, and the least recent
    entry goes first when a write would exceed the capacity (capacity 0 remembers nothing)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, default: V | None = None) -> V | None:
        if key not in self._entries:
            return default
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: K, value: V) -> V:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
