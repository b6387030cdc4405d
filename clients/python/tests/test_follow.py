"""How streams hand the service's messages to the caller (unit tests, no server): folding,
synthetic freshness while gateway-svc is unreachable, the RESYNC after reconnecting, seq gaps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Sequence, Tuple

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ibgw_client import FreshnessState, PositionKey, PositionsUpdate, PositionsView, UpdateKind
from ibgw_client._follow import Backoff, Follower, StreamBroken
from ibgw_client._models import positions_update
from ibgw_client.proto import gateway_pb2 as pb

LIVE = pb.Freshness(state=pb.FRESHNESS_STATE_LIVE)
STALE = pb.Freshness(state=pb.FRESHNESS_STATE_STALE, since=Timestamp(seconds=1_700_000_000), reason="IB link lost (1100)")
UNKNOWN = pb.Freshness(state=pb.FRESHNESS_STATE_UNKNOWN, reason="no data yet")


def pos(symbol: str, con_id: int, qty: str, account: str = "DU1") -> pb.Position:
    return pb.Position(account=account, con_id=con_id, symbol=symbol, sec_type="STK", currency="USD", quantity=qty, avg_cost="1")


def msg(
    kind: int,
    seq: int,
    items: Sequence[pb.Position] = (),
    upserts: Sequence[pb.Position] = (),
    removals: Sequence[Tuple[str, int]] = (),
    freshness: pb.Freshness = LIVE,
    epoch: int = 1,
) -> pb.WatchPositionsResponse:
    return pb.WatchPositionsResponse(
        kind=kind,  # type: ignore[arg-type]
        seq=seq,
        items=items,
        upserts=upserts,
        removals=[pb.PositionKey(account=a, con_id=c) for a, c in removals],
        freshness=freshness,
        session_epoch=epoch,
        state_version=seq,
    )


def follower() -> Follower[Any, Any, Any]:
    return Follower(positions_update, PositionsView, PositionsView())


def quantities(view: PositionsView) -> dict[str, Decimal]:
    return {p.symbol: p.quantity for p in view.values()}


def test_service_updates_pass_through_and_fold() -> None:
    f = follower()
    f.connected()
    snap = f.on_message(msg(pb.UPDATE_KIND_SNAPSHOT, 1, items=[pos("AAPL", 1, "10"), pos("MSFT", 2, "5")]))
    assert snap is not None and snap.kind is UpdateKind.SNAPSHOT and snap.seq == 1
    d = f.on_message(msg(pb.UPDATE_KIND_DELTA, 2, upserts=[pos("TSLA", 3, "1")], removals=[("DU1", 1)]))
    assert d is not None and d.kind is UpdateKind.DELTA and d.seq == 2
    fr = f.on_message(msg(pb.UPDATE_KIND_FRESHNESS, 3, freshness=STALE))
    assert fr is not None and fr.freshness.state is FreshnessState.STALE and fr.freshness.reason == "IB link lost (1100)"
    view = f.view
    assert isinstance(view, PositionsView)
    assert quantities(view) == {"MSFT": Decimal("5"), "TSLA": Decimal("1")}
    assert view.freshness.state is FreshnessState.STALE and view.seq == 3
    rs = f.on_message(msg(pb.UPDATE_KIND_RESYNC, 4, items=[pos("MSFT", 2, "6")], upserts=[pos("MSFT", 2, "6")], removals=[("DU1", 3)], epoch=2))
    assert rs is not None and rs.kind is UpdateKind.RESYNC and not rs.reconnected
    assert quantities(view) == {"MSFT": Decimal("6")} and view.freshness.is_live and view.session_epoch == 2


def test_unreachable_then_reconnect_resyncs_against_what_the_caller_had() -> None:
    f = follower()
    f.connected()
    f.on_message(msg(pb.UPDATE_KIND_SNAPSHOT, 1, items=[pos("AAPL", 1, "10"), pos("MSFT", 2, "5")]))
    f.on_message(msg(pb.UPDATE_KIND_DELTA, 2, upserts=[pos("MSFT", 2, "7")]))

    down = f.on_broken("UNAVAILABLE: shutting down")
    assert down is not None and down.synthetic and down.kind is UpdateKind.FRESHNESS and down.seq == 3
    assert down.freshness.state is FreshnessState.STALE and down.freshness.since is not None
    assert "gateway-svc unreachable: UNAVAILABLE: shutting down" == down.freshness.reason
    assert f.on_broken("UNAVAILABLE: connection refused") is None, "one synthetic update per outage"
    assert quantities(f.view) == {"AAPL": Decimal("10"), "MSFT": Decimal("7")}  # type: ignore[arg-type]

    # A new gateway-svc: first an UNKNOWN snapshot (no data yet): nothing for the caller.
    f.connected()
    assert f.on_message(msg(pb.UPDATE_KIND_SNAPSHOT, 1, freshness=UNKNOWN)) is None
    assert len(f.view) == 2, "the caller's set is never emptied"
    # Then its data, as a RESYNC of its own stream: the caller gets the difference to its set.
    out = f.on_message(msg(pb.UPDATE_KIND_RESYNC, 2, items=[pos("MSFT", 2, "5"), pos("TSLA", 3, "1")]))
    assert out is not None and out.kind is UpdateKind.RESYNC and out.reconnected and out.seq == 4
    assert [(p.symbol, p.quantity) for p in out.items] == [("MSFT", Decimal("5")), ("TSLA", Decimal("1"))]
    assert [(p.symbol, p.quantity) for p in out.upserts] == [("MSFT", Decimal("5")), ("TSLA", Decimal("1"))]
    assert out.removals == (PositionKey("DU1", 1),)
    assert quantities(f.view) == {"MSFT": Decimal("5"), "TSLA": Decimal("1")}  # type: ignore[arg-type]
    # And deltas pass through again.
    d = f.on_message(msg(pb.UPDATE_KIND_DELTA, 3, upserts=[pos("TSLA", 3, "2")]))
    assert d is not None and d.kind is UpdateKind.DELTA and d.seq == 5 and not d.reconnected


def test_reconnect_snapshot_with_data_becomes_a_resync() -> None:
    f = follower()
    f.connected()
    f.on_message(msg(pb.UPDATE_KIND_SNAPSHOT, 1, items=[pos("AAPL", 1, "10")]))
    f.on_broken("UNAVAILABLE")
    f.connected()
    out = f.on_message(msg(pb.UPDATE_KIND_SNAPSHOT, 1, items=[pos("AAPL", 1, "10")]))
    assert out is not None and out.kind is UpdateKind.RESYNC and out.reconnected
    assert out.upserts == () and out.removals == () and len(out.items) == 1
    # The next outage is reported again.
    assert f.on_broken("UNAVAILABLE") is not None


def test_stale_since_is_kept_and_unknown_stays_unknown() -> None:
    f = follower()
    f.connected()
    f.on_message(msg(pb.UPDATE_KIND_SNAPSHOT, 1, items=[pos("AAPL", 1, "10")], freshness=STALE))
    down = f.on_broken("UNAVAILABLE")
    assert down is not None and down.freshness.state is FreshnessState.STALE
    assert down.freshness.since is not None and down.freshness.since.timestamp() == 1_700_000_000

    g = follower()
    assert g.on_broken("UNAVAILABLE") is None, "nothing delivered yet: nothing to say"
    g.connected()
    g.on_message(msg(pb.UPDATE_KIND_SNAPSHOT, 1, freshness=UNKNOWN))
    down = g.on_broken("UNAVAILABLE")
    assert down is not None and down.freshness.state is FreshnessState.UNKNOWN


def test_a_broken_sequence_is_a_broken_stream() -> None:
    f = follower()
    f.connected()
    with pytest.raises(StreamBroken):
        f.on_message(msg(pb.UPDATE_KIND_DELTA, 1))
    f.connected()
    f.on_message(msg(pb.UPDATE_KIND_SNAPSHOT, 1))
    with pytest.raises(StreamBroken, match="jumped"):
        f.on_message(msg(pb.UPDATE_KIND_DELTA, 3))
    f.connected()
    f.on_message(msg(pb.UPDATE_KIND_SNAPSHOT, 1))
    with pytest.raises(StreamBroken):
        f.on_message(msg(pb.UPDATE_KIND_SNAPSHOT, 2))


def test_folded_view_by_hand() -> None:
    view = PositionsView()
    updates: list[PositionsUpdate] = [
        positions_update(msg(pb.UPDATE_KIND_SNAPSHOT, 1, items=[pos("B", 2, "1", "DU2"), pos("A", 1, "1", "DU1")])),
        positions_update(msg(pb.UPDATE_KIND_DELTA, 2, upserts=[pos("C", 3, "4", "DU1")])),
    ]
    for u in updates:
        view.apply(u)
    assert [(p.account, p.con_id) for p in view.values()] == [("DU1", 1), ("DU1", 3), ("DU2", 2)]
    assert view.keys()[0] == PositionKey("DU1", 1) and PositionKey("DU2", 2) in view
    with pytest.raises(ValueError):
        view.apply(positions_update(msg(0, 3)))


def test_backoff_grows_to_its_ceiling_with_jitter() -> None:
    b = Backoff(0.1, 0.8)
    delays = [b.next_delay() for _ in range(6)]
    for d, ceiling in zip(delays, (0.1, 0.2, 0.4, 0.8, 0.8, 0.8)):
        assert ceiling / 2 <= d <= ceiling
    b.reset()
    assert b.next_delay() <= 0.1
