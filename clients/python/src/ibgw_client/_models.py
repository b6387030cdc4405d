"""Plain, immutable Python values for what gateway.v1 sends, and their conversion from protobuf.

Quantities, costs, strikes and multipliers arrive as decimal strings and become `Decimal`, never
`float`. Timestamps become timezone-aware UTC `datetime`s, or None when unset.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Generic, Optional, Tuple, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from .proto import gateway_pb2 as pb

__all__ = [
    "AccountSummary",
    "Accounts",
    "DataFarm",
    "DataFarmKind",
    "DataFarmState",
    "Freshness",
    "FreshnessState",
    "Health",
    "Position",
    "PositionKey",
    "Positions",
    "PositionsUpdate",
    "SessionState",
    "StreamUpdate",
    "SummaryKey",
    "SummaryUpdate",
    "SummaryValue",
    "UpdateKind",
]


class FreshnessState(enum.Enum):
    """How much a piece of data can be trusted right now."""

    UNSPECIFIED = 0
    #: Backed by a live upstream subscription.
    LIVE = 1
    #: The last known value, kept while the link (to IB, or to gateway-svc itself) is down.
    STALE = 2
    #: Nothing has been received yet.
    UNKNOWN = 3


class UpdateKind(enum.Enum):
    """What a stream update carries (see `StreamUpdate`)."""

    UNSPECIFIED = 0
    #: The first update of a stream: the full filtered set in `items`.
    SNAPSHOT = 1
    #: Changes since the previous update: `upserts` and `removals`.
    DELTA = 2
    #: The full set in `items`, plus in `upserts`/`removals` exactly what changed in the gap.
    RESYNC = 3
    #: Only the freshness changed.
    FRESHNESS = 4


class SessionState(enum.Enum):
    """State of gateway-svc's upstream session, plus one client-side state."""

    #: Client-side only, never sent by the service: gateway-svc itself could not be reached.
    UNREACHABLE = -1
    UNSPECIFIED = 0
    CONNECTING = 1
    SYNCING = 2
    READY = 3
    DEGRADED = 4
    RECONNECTING = 5
    STOPPED = 6


class DataFarmKind(enum.Enum):
    UNSPECIFIED = 0
    MARKET_DATA = 1
    HISTORICAL = 2
    SEC_DEF = 3


class DataFarmState(enum.Enum):
    UNSPECIFIED = 0
    OK = 1
    INACTIVE = 2
    CONNECTING = 3
    BROKEN = 4


E = TypeVar("E", bound=enum.Enum)


def _enum(cls: type[E], value: int, default: E) -> E:
    """A protobuf enum number as `cls`; numbers this client does not know map to `default`."""
    try:
        return cls(value)
    except ValueError:
        return default


def _time(ts: Timestamp) -> Optional[datetime]:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=timezone.utc)


def _decimal(text: str) -> Optional[Decimal]:
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class Freshness:
    """How fresh some data is: LIVE, STALE (since when, why) or UNKNOWN."""

    state: FreshnessState
    since: Optional[datetime] = None
    reason: str = ""

    @property
    def is_live(self) -> bool:
        return self.state is FreshnessState.LIVE

    def __str__(self) -> str:
        text = self.state.name
        if self.state is FreshnessState.STALE and self.since is not None:
            text += f" since {self.since:%Y-%m-%dT%H:%M:%SZ}"
        return f"{text} ({self.reason})" if self.reason else text

    @classmethod
    def from_pb(cls, f: pb.Freshness) -> Freshness:
        return cls(
            state=_enum(FreshnessState, f.state, FreshnessState.UNSPECIFIED),
            since=_time(f.since),
            reason=f.reason,
        )


UNKNOWN_FRESHNESS = Freshness(FreshnessState.UNKNOWN)


@dataclass(frozen=True, order=True)
class PositionKey:
    """Identifies a position: account and IB contract id."""

    account: str
    con_id: int


@dataclass(frozen=True)
class Position:
    """One position. `quantity` and `avg_cost` are exact decimals (IB's avg cost includes the
    multiplier); `strike` and `multiplier` are None when the contract has none."""

    account: str
    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    currency: str
    quantity: Decimal
    avg_cost: Decimal
    local_symbol: str = ""
    expiry: str = ""
    strike: Optional[Decimal] = None
    right: str = ""
    multiplier: Optional[Decimal] = None

    @property
    def key(self) -> PositionKey:
        return PositionKey(self.account, self.con_id)

    @classmethod
    def from_pb(cls, p: pb.Position) -> Position:
        return cls(
            account=p.account,
            con_id=p.con_id,
            symbol=p.symbol,
            sec_type=p.sec_type,
            exchange=p.exchange,
            currency=p.currency,
            quantity=_decimal(p.quantity) or Decimal(0),
            avg_cost=_decimal(p.avg_cost) or Decimal(0),
            local_symbol=p.local_symbol,
            expiry=p.expiry,
            strike=_decimal(p.strike),
            right=p.right,
            multiplier=_decimal(p.multiplier),
        )


@dataclass(frozen=True, order=True)
class SummaryKey:
    """Identifies an account summary value: account, tag and currency."""

    account: str
    tag: str
    currency: str


@dataclass(frozen=True)
class SummaryValue:
    """One account summary value, as IB sends it (`value` is usually a decimal string)."""

    account: str
    tag: str
    value: str
    currency: str = ""

    @property
    def key(self) -> SummaryKey:
        return SummaryKey(self.account, self.tag, self.currency)

    @property
    def decimal(self) -> Optional[Decimal]:
        """`value` as a Decimal, or None when it is not a number (e.g. AccountType)."""
        return _decimal(self.value)

    @classmethod
    def from_pb(cls, v: pb.SummaryValue) -> SummaryValue:
        return cls(account=v.account, tag=v.tag, value=v.value, currency=v.currency)


@dataclass(frozen=True)
class Accounts:
    """ListAccounts: the managed accounts in the gateway's order, with their stamps."""

    accounts: Tuple[str, ...]
    session_epoch: int
    seq: int
    as_of: Optional[datetime]
    freshness: Freshness

    @classmethod
    def from_pb(cls, r: pb.ListAccountsResponse) -> Accounts:
        return cls(
            accounts=tuple(a.id for a in r.accounts),
            session_epoch=r.session_epoch,
            seq=r.seq,
            as_of=_time(r.as_of),
            freshness=Freshness.from_pb(r.freshness),
        )


@dataclass(frozen=True)
class Positions:
    """GetPositions: matching positions ordered by account and contract id, with their stamps."""

    positions: Tuple[Position, ...]
    session_epoch: int
    seq: int
    as_of: Optional[datetime]
    freshness: Freshness

    @classmethod
    def from_pb(cls, r: pb.GetPositionsResponse) -> Positions:
        return cls(
            positions=tuple(Position.from_pb(p) for p in r.positions),
            session_epoch=r.session_epoch,
            seq=r.seq,
            as_of=_time(r.as_of),
            freshness=Freshness.from_pb(r.freshness),
        )


@dataclass(frozen=True)
class AccountSummary:
    """GetAccountSummary: matching values ordered by account, tag and currency, with stamps."""

    values: Tuple[SummaryValue, ...]
    session_epoch: int
    seq: int
    as_of: Optional[datetime]
    freshness: Freshness

    @classmethod
    def from_pb(cls, r: pb.GetAccountSummaryResponse) -> AccountSummary:
        return cls(
            values=tuple(SummaryValue.from_pb(v) for v in r.values),
            session_epoch=r.session_epoch,
            seq=r.seq,
            as_of=_time(r.as_of),
            freshness=Freshness.from_pb(r.freshness),
        )


@dataclass(frozen=True)
class DataFarm:
    name: str
    kind: DataFarmKind
    state: DataFarmState
    since: Optional[datetime]
    code: int

    @classmethod
    def from_pb(cls, f: pb.DataFarm) -> DataFarm:
        return cls(
            name=f.name,
            kind=_enum(DataFarmKind, f.kind, DataFarmKind.UNSPECIFIED),
            state=_enum(DataFarmState, f.state, DataFarmState.UNSPECIFIED),
            since=_time(f.since),
            code=f.code,
        )


@dataclass(frozen=True)
class Health:
    """Health of gateway-svc's upstream session (GetHealth, WatchHealth).

    A reconnecting health stream reports `SessionState.UNREACHABLE` (with `synthetic=True`) while
    gateway-svc itself cannot be reached.
    """

    state: SessionState
    reason: str = ""
    since: Optional[datetime] = None
    session_epoch: int = 0
    reconnects: int = 0
    next_attempt_at: Optional[datetime] = None
    client_id: int = 0
    client_id_conflicts: int = 0
    last_probe_rtt_ms: float = 0.0
    upstream: str = ""
    server_version: int = 0
    expected_outage: bool = False
    subscribers: int = 0
    farms: Tuple[DataFarm, ...] = ()
    #: True when this value was made by the client (gateway-svc unreachable), not sent by it.
    synthetic: bool = False

    @property
    def is_ready(self) -> bool:
        return self.state is SessionState.READY

    @classmethod
    def from_pb(cls, h: pb.Health) -> Health:
        return cls(
            state=_enum(SessionState, h.state, SessionState.UNSPECIFIED),
            reason=h.reason,
            since=_time(h.since),
            session_epoch=h.session_epoch,
            reconnects=h.reconnects,
            next_attempt_at=_time(h.next_attempt_at),
            client_id=h.client_id,
            client_id_conflicts=h.client_id_conflicts,
            last_probe_rtt_ms=h.last_probe_rtt_ms,
            upstream=h.upstream,
            server_version=h.server_version,
            expected_outage=h.expected_outage,
            subscribers=h.subscribers,
            farms=tuple(DataFarm.from_pb(f) for f in h.farms),
        )


T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True)
class StreamUpdate(Generic[T, K]):
    """One update of a reconnecting stream (`watch_positions`, `watch_account_summary`).

    A stream starts with a SNAPSHOT, then carries DELTA, FRESHNESS and RESYNC updates; `seq` is
    1 for the snapshot and +1 per update, without gaps, for the whole life of the stream object,
    across reconnects. Apply each update in order (`PositionsView.apply` does) and the result is
    exactly the service's current set.

    When gateway-svc cannot be reached, the stream makes a FRESHNESS update itself
    (`synthetic=True`): STALE with the time it went down, or UNKNOWN when nothing was known. After
    reconnecting it delivers a RESYNC (`reconnected=True`) computed against what it delivered
    before, so the caller never sees an empty set in between.

    `session_epoch` and `state_version` are the service's, comparable only within one gateway-svc
    process; `reconnected` marks a new gRPC stream.
    """

    kind: UpdateKind
    items: Tuple[T, ...] = ()
    upserts: Tuple[T, ...] = ()
    removals: Tuple[K, ...] = ()
    session_epoch: int = 0
    seq: int = 0
    as_of: Optional[datetime] = None
    freshness: Freshness = field(default=UNKNOWN_FRESHNESS)
    state_version: int = 0
    #: The first update of a new gRPC stream after the previous one broke (always a RESYNC).
    reconnected: bool = False
    #: Made by the client (gateway-svc unreachable), not sent by the service.
    synthetic: bool = False


PositionsUpdate = StreamUpdate[Position, PositionKey]
SummaryUpdate = StreamUpdate[SummaryValue, SummaryKey]


def positions_update(m: pb.WatchPositionsResponse) -> PositionsUpdate:
    return StreamUpdate(
        kind=_enum(UpdateKind, m.kind, UpdateKind.UNSPECIFIED),
        items=tuple(Position.from_pb(p) for p in m.items),
        upserts=tuple(Position.from_pb(p) for p in m.upserts),
        removals=tuple(PositionKey(r.account, r.con_id) for r in m.removals),
        session_epoch=m.session_epoch,
        seq=m.seq,
        as_of=_time(m.as_of),
        freshness=Freshness.from_pb(m.freshness),
        state_version=m.state_version,
    )


def summary_update(m: pb.WatchAccountSummaryResponse) -> SummaryUpdate:
    return StreamUpdate(
        kind=_enum(UpdateKind, m.kind, UpdateKind.UNSPECIFIED),
        items=tuple(SummaryValue.from_pb(v) for v in m.items),
        upserts=tuple(SummaryValue.from_pb(v) for v in m.upserts),
        removals=tuple(SummaryKey(r.account, r.tag, r.currency) for r in m.removals),
        session_epoch=m.session_epoch,
        seq=m.seq,
        as_of=_time(m.as_of),
        freshness=Freshness.from_pb(m.freshness),
        state_version=m.state_version,
    )


def now() -> datetime:
    return datetime.now(timezone.utc)
