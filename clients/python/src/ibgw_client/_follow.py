"""What the reconnecting streams do with the service's messages, independent of sync or asyncio.

`Follower` turns the messages of successive gRPC streams into one continuous sequence of updates
for the caller:

* on the first stream, the service's updates pass through (SNAPSHOT, then DELTA / RESYNC /
  FRESHNESS), renumbered with the follower's own `seq`;
* when a stream breaks (gateway-svc restarted or unreachable), one synthetic FRESHNESS update
  says so: STALE since that moment, or since the data went stale already; UNKNOWN if nothing was
  ever known;
* a new stream starts with its own SNAPSHOT, which describes a state the caller has not seen: the
  follower folds the new stream until the service has data (a new gateway-svc process starts with
  an UNKNOWN snapshot), then delivers one RESYNC against what it delivered before: the full set
  in `items`, exactly the difference in `upserts` / `removals`. The caller's set is never emptied
  in between;
* a gap in the service's `seq` is a broken stream: the caller reconnects and resyncs.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Callable, Generic, Hashable, Optional, TypeVar

from ._models import (
    Freshness,
    FreshnessState,
    Health,
    SessionState,
    StreamUpdate,
    UpdateKind,
    now,
)
from .view import FoldedView

M = TypeVar("M")
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class StreamBroken(Exception):
    """The service's stream cannot be followed any more (a gap in seq); reconnect."""


class Backoff:
    """Exponential backoff with jitter: initial, x2 per failure, capped at maximum."""

    def __init__(self, initial: float, maximum: float, rng: Optional[random.Random] = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self._next = self.initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        # Full jitter on the upper half keeps many clients from reconnecting in lockstep.
        return delay / 2 + self._rng.random() * delay / 2


class Follower(Generic[M, T, K]):
    def __init__(
        self,
        convert: Callable[[M], StreamUpdate[T, K]],
        new_view: Callable[[], FoldedView[T, K]],
        view: FoldedView[T, K],
    ) -> None:
        self._convert = convert
        self._new_view = new_view
        #: What the caller has been given.
        self.view = view
        self._server = new_view()
        self._expect = 1
        self._seq = 0
        self._resync_pending = False
        self._outage_reported = False

    @property
    def delivered(self) -> int:
        return self._seq

    def connected(self) -> None:
        """A new gRPC stream was opened: its messages start again at seq 1."""
        self._server = self._new_view()
        self._expect = 1

    def on_message(self, message: M) -> Optional[StreamUpdate[T, K]]:
        """The update to hand the caller for one service message, or None (nothing to say yet)."""
        update = self._convert(message)
        if update.seq != self._expect:
            raise StreamBroken(f"the service's seq jumped from {self._expect - 1} to {update.seq}")
        if self._expect == 1 and update.kind is not UpdateKind.SNAPSHOT:
            raise StreamBroken(f"a stream started with {update.kind.name}, not SNAPSHOT")
        if self._expect > 1 and update.kind is UpdateKind.SNAPSHOT:
            raise StreamBroken("a second SNAPSHOT on one stream")
        self._expect += 1
        self._server.apply(update)

        if self._seq == 0:
            out = update
        elif self._resync_pending:
            if self._server.freshness.state is FreshnessState.UNKNOWN:
                # A fresh gateway-svc without data yet: keep the caller's last known set.
                return None
            upserts, removals = self.view.diff(self._server)
            out = StreamUpdate(
                kind=UpdateKind.RESYNC,
                items=tuple(self._server.values()),
                upserts=tuple(upserts),
                removals=tuple(removals),
                session_epoch=update.session_epoch,
                as_of=update.as_of,
                freshness=update.freshness,
                state_version=update.state_version,
                reconnected=True,
            )
            self._resync_pending = False
        else:
            out = update
        return self._deliver(out)

    def on_broken(self, reason: str) -> Optional[StreamUpdate[T, K]]:
        """The stream broke (UNAVAILABLE, a gap, a missing first message). Returns the synthetic
        FRESHNESS update to hand the caller, once per outage, when it has been given data."""
        if self._seq == 0:
            return None
        self._resync_pending = True
        if self._outage_reported:
            return None
        self._outage_reported = True
        last = self.view.freshness
        if last.state in (FreshnessState.LIVE, FreshnessState.STALE):
            since = last.since if last.state is FreshnessState.STALE and last.since else now()
            freshness = Freshness(FreshnessState.STALE, since, f"gateway-svc unreachable: {reason}")
        else:
            freshness = Freshness(FreshnessState.UNKNOWN, None, f"gateway-svc unreachable: {reason}")
        return self._deliver(
            StreamUpdate(
                kind=UpdateKind.FRESHNESS,
                session_epoch=self.view.session_epoch,
                as_of=self.view.as_of,
                freshness=freshness,
                state_version=self.view.state_version,
                synthetic=True,
            )
        )

    def _deliver(self, update: StreamUpdate[T, K]) -> StreamUpdate[T, K]:
        self._seq += 1
        out = replace(update, seq=self._seq)
        self.view.apply(out)
        if not out.synthetic:
            self._outage_reported = False
        return out


class HealthFollower:
    """Health across reconnects: the service's values, plus one synthetic UNREACHABLE per outage."""

    def __init__(self) -> None:
        self.last: Optional[Health] = None
        self._outage_reported = False

    def on_message(self, health: Health) -> Health:
        self.last = health
        self._outage_reported = False
        return health

    def on_broken(self, reason: str) -> Optional[Health]:
        if self._outage_reported:
            return None
        self._outage_reported = True
        last = self.last
        self.last = Health(
            state=SessionState.UNREACHABLE,
            reason=f"gateway-svc unreachable: {reason}",
            since=now(),
            session_epoch=last.session_epoch if last else 0,
            upstream=last.upstream if last else "",
            synthetic=True,
        )
        return self.last


def describe(code_name: str, details: str) -> str:
    return f"{code_name}: {details}" if details else code_name
