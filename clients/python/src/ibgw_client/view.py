"""Folded views: apply a stream's SNAPSHOT / DELTA / RESYNC / FRESHNESS updates in order and hold
the resulting set, with its freshness and stamps.

    view = PositionsView()
    for update in client.watch_positions():
        view.apply(update)
        print(view.freshness, [(p.symbol, p.quantity) for p in view.values()])

Every stream object also keeps one of these up to date as `stream.view`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Dict, Generic, Hashable, Iterator, List, Optional, TypeVar

from ._models import (
    UNKNOWN_FRESHNESS,
    Freshness,
    Position,
    PositionKey,
    StreamUpdate,
    SummaryKey,
    SummaryValue,
    UpdateKind,
)

__all__ = ["FoldedView", "PositionsView", "SummaryView"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class FoldedView(Generic[T, K]):
    """The set a stream describes, folded from its updates.

    SNAPSHOT and RESYNC replace the set with `items`; DELTA removes `removals`, then applies
    `upserts`; FRESHNESS changes only the freshness. Every update also sets `freshness`, `as_of`,
    `session_epoch` and `state_version`, and `seq` (the last applied update's).
    """

    def __init__(self, key: Callable[[T], K]) -> None:
        self._key = key
        self._rows: Dict[K, T] = {}
        self.freshness: Freshness = UNKNOWN_FRESHNESS
        self.as_of: Optional[datetime] = None
        self.session_epoch = 0
        self.state_version = 0
        self.seq = 0
        #: At least one SNAPSHOT or RESYNC has been applied.
        self.initialized = False

    def apply(self, update: StreamUpdate[T, K]) -> None:
        kind = update.kind
        if kind in (UpdateKind.SNAPSHOT, UpdateKind.RESYNC):
            self._rows = {self._key(item): item for item in update.items}
            self.initialized = True
        elif kind is UpdateKind.DELTA:
            for removed in update.removals:
                self._rows.pop(removed, None)
            for item in update.upserts:
                self._rows[self._key(item)] = item
        elif kind is not UpdateKind.FRESHNESS:
            raise ValueError(f"cannot apply an update of kind {kind.name}")
        self.freshness = update.freshness
        self.as_of = update.as_of
        self.session_epoch = update.session_epoch
        self.state_version = update.state_version
        self.seq = update.seq

    def get(self, key: K) -> Optional[T]:
        return self._rows.get(key)

    def values(self) -> List[T]:
        """The rows, ordered by key (positions: account, contract id; summary: account, tag,
        currency), the order in which the service sends them."""
        return [self._rows[k] for k in sorted(self._rows, key=_sort_key)]

    def keys(self) -> List[K]:
        return sorted(self._rows, key=_sort_key)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[T]:
        return iter(self.values())

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def diff(self, other: FoldedView[T, K]) -> tuple[list[T], list[K]]:
        """What turns this view's rows into `other`'s: (upserts, removals), in key order."""
        upserts = [row for k, row in sorted(other._rows.items(), key=lambda kv: _sort_key(kv[0])) if self._rows.get(k) != row]
        removals = [k for k in sorted(self._rows, key=_sort_key) if k not in other._rows]
        return upserts, removals

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self._rows)} rows, {self.freshness}, seq {self.seq}>"


def _sort_key(key: object) -> tuple[int, object]:
    # Keys are ordered dataclasses of one type in practice; the tuple keeps sorting total.
    return (0, key)


class PositionsView(FoldedView[Position, PositionKey]):
    """Positions keyed by (account, con_id)."""

    def __init__(self) -> None:
        super().__init__(lambda p: p.key)


class SummaryView(FoldedView[SummaryValue, SummaryKey]):
    """Account summary values keyed by (account, tag, currency)."""

    def __init__(self) -> None:
        super().__init__(lambda v: v.key)
