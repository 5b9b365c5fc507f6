"""The driver's bookkeeping of which item is on which node: nothing lost, none twice.

Pure (no Ray, no I/O): the fleet's I/O loops call it. Each node has at most ``window``
items outstanding (its read-ahead), so the input streams through the fleet in bounded
memory. When a node is lost its outstanding items are queued again for the others (and
counted as re-dispatched); a result that arrives for an item its node no longer holds (a
lost node's late answer, or a second answer) is refused, so each item is recorded once.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class NodeLost(Exception):
    """Every node of the fleet was lost with items still to run."""


class Dispatcher(Generic[K, V]):
    """Which node holds which item, and what waits to be sent again."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window!r}")
        self.window = window
        self._held: dict[str, dict[K, V]] = {}
        self._lost: set[str] = set()
        self._again: collections.deque[tuple[K, V]] = collections.deque()
        self.redispatched = 0
        self.done_by_node: collections.Counter[str] = collections.Counter()

    def add_node(self, node: str) -> None:
        if node in self._held or node in self._lost:
            raise ValueError(f"node {node!r} was already added")
        self._held[node] = {}

    @property
    def nodes(self) -> list[str]:
        """The nodes still alive."""
        return list(self._held)

    @property
    def lost(self) -> set[str]:
        return set(self._lost)

    def room(self, node: str) -> int:
        held = self._held.get(node)
        return 0 if held is None else self.window - len(held)

    def outstanding(self, node: str | None = None) -> int:
        if node is not None:
            return len(self._held.get(node, ()))
        return sum(len(held) for held in self._held.values())

    def waiting_again(self) -> int:
        return len(self._again)

    def take_again(self, limit: int) -> list[tuple[K, V]]:
        """Up to ``limit`` items of lost nodes, to send first."""
        taken: list[tuple[K, V]] = []
        while self._again and len(taken) < limit:
            taken.append(self._again.popleft())
        return taken

    def assign(self, node: str, key: K, value: V) -> None:
        held = self._held.get(node)
        if held is None:
            raise ValueError(f"node {node!r} is not alive")
        if len(held) >= self.window:
            raise ValueError(f"node {node!r} has no room")
        if any(key in h for h in self._held.values()):
            raise ValueError(f"item {key!r} is already on a node")
        held[key] = value

    def complete(self, node: str, key: K) -> V | None:
        """``node`` answered ``key``: the item to record, or None to ignore the answer."""
        held = self._held.get(node)
        if held is None or key not in held:
            return None
        self.done_by_node[node] += 1
        return held.pop(key)

    def lose(self, node: str) -> list[K]:
        """``node`` is gone: queue its items again; returns their keys."""
        held = self._held.pop(node, None)
        if held is None:
            return []
        self._lost.add(node)
        self._again.extend(held.items())
        self.redispatched += len(held)
        return list(held)

    def idle(self) -> bool:
        """Nothing outstanding and nothing waiting to be sent again."""
        return not self._again and self.outstanding() == 0
