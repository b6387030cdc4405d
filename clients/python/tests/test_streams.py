"""Streams against the demo: a gateway restart (STALE, then RESYNC, then a change delivered), a
gateway-svc restart (synthetic STALE, then a RESYNC against what the caller had), health, and
wait_for_ready, with the sync and the asyncio client."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from typing import Any, AsyncIterator, Callable, List, Optional, TypeVar

import pytest

from conftest import Demo, Pump, eventually, free_port, patient
from ibgw_client import (
    AsyncClient,
    Client,
    FreshnessState,
    Health,
    NotReadyError,
    PositionKey,
    PositionsUpdate,
    SessionState,
    SummaryUpdate,
    UpdateKind,
)

MSFT = PositionKey("DU1234567", 272093)
T = TypeVar("T")


def kind(k: UpdateKind, state: Optional[FreshnessState] = None) -> Callable[[Any], bool]:
    return lambda u: bool(u.kind is k and (state is None or u.freshness.state is state))


def assert_continuous(updates: List[PositionsUpdate]) -> None:
    assert [u.seq for u in updates] == list(range(1, len(updates) + 1)), [u.seq for u in updates]


def test_positions_stream_through_a_gateway_restart(fresh_demo: Demo) -> None:
    with Client(fresh_demo.grpc) as client:
        client.wait_for_ready(timeout=patient(10))
        stream = client.watch_positions()
        pump = Pump(stream)
        try:
            snap = pump.expect("SNAPSHOT", kind(UpdateKind.SNAPSHOT, FreshnessState.LIVE))
            assert len(snap.items) == 6 and snap.seq == 1
            assert stream.view.get(MSFT) is not None and stream.view.get(MSFT).quantity == Decimal("40")  # type: ignore[union-attr]

            fresh_demo.restart_gateway(down_ms=1500)
            stale = pump.expect("FRESHNESS STALE", kind(UpdateKind.FRESHNESS, FreshnessState.STALE))
            assert stale.freshness.since is not None and stale.freshness.reason and not stale.synthetic
            assert len(stream.view) == 6, "the last known positions are kept while stale"
            resync = pump.expect("RESYNC LIVE", kind(UpdateKind.RESYNC, FreshnessState.LIVE))
            assert len(resync.items) == 6 and resync.session_epoch > snap.session_epoch
            assert not resync.reconnected, "the gRPC stream itself stayed open"

            fresh_demo.set_position("MSFT", 272093, "77")
            delta = pump.expect("DELTA MSFT 77", kind(UpdateKind.DELTA))
            assert [(p.symbol, p.quantity) for p in delta.upserts] == [("MSFT", Decimal("77"))]
            assert stream.view.get(MSFT).quantity == Decimal("77")  # type: ignore[union-attr]
            assert stream.view.freshness.is_live and len(stream.view) == 6

            fresh_demo.set_position("MSFT", 272093, "0")  # closed
            closed = pump.expect("DELTA removal", kind(UpdateKind.DELTA))
            assert closed.removals == (MSFT,)
            assert MSFT not in stream.view and len(stream.view) == 5
            assert_continuous(pump.seen)
        finally:
            pump.close()


def test_async_streams_through_a_gateway_restart(fresh_demo: Demo) -> None:
    async def next_matching(stream: AsyncIterator[T], what: str, pred: Callable[[T], bool], seen: List[T]) -> T:
        deadline = time.monotonic() + patient(10)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; seen {seen!r}")
            item = await asyncio.wait_for(stream.__anext__(), left)
            seen.append(item)
            if pred(item):
                return item

    async def main() -> None:
        async with AsyncClient(fresh_demo.grpc) as client:
            await client.wait_for_ready(timeout=patient(10))
            positions = client.watch_positions(symbols=["MSFT"])
            summary = client.watch_account_summary(accounts=["DU1234567"], tags=["NetLiquidation", "BuyingPower"])
            health = client.watch_health()
            seen: List[PositionsUpdate] = []
            seen_summary: List[SummaryUpdate] = []
            seen_health: List[Health] = []

            snap = await next_matching(positions, "SNAPSHOT", kind(UpdateKind.SNAPSHOT, FreshnessState.LIVE), seen)
            assert [(p.symbol, p.quantity) for p in snap.items] == [("MSFT", Decimal("40"))]
            ssnap = await next_matching(summary, "summary SNAPSHOT", kind(UpdateKind.SNAPSHOT), seen_summary)
            assert {v.tag for v in ssnap.items} == {"NetLiquidation", "BuyingPower"}
            assert len(summary.view) == len(ssnap.items)
            await next_matching(health, "READY", lambda h: h.is_ready, seen_health)

            fresh_demo.restart_gateway(down_ms=1500)
            await next_matching(positions, "STALE", kind(UpdateKind.FRESHNESS, FreshnessState.STALE), seen)
            down = await next_matching(health, "not READY", lambda h: not h.is_ready, seen_health)
            assert down.state in (SessionState.RECONNECTING, SessionState.CONNECTING, SessionState.SYNCING, SessionState.DEGRADED)
            await next_matching(summary, "summary STALE", kind(UpdateKind.FRESHNESS, FreshnessState.STALE), seen_summary)
            await next_matching(positions, "RESYNC", kind(UpdateKind.RESYNC, FreshnessState.LIVE), seen)
            await next_matching(summary, "summary RESYNC", kind(UpdateKind.RESYNC, FreshnessState.LIVE), seen_summary)
            assert len(summary.view) == len(ssnap.items) and summary.view.freshness.is_live
            back = await next_matching(health, "READY again", lambda h: h.is_ready, seen_health)
            assert back.session_epoch > seen_health[0].session_epoch

            fresh_demo.set_position("MSFT", 272093, "77")
            delta = await next_matching(positions, "DELTA", kind(UpdateKind.DELTA), seen)
            assert [(p.symbol, p.quantity) for p in delta.upserts] == [("MSFT", Decimal("77"))]
            assert [p.quantity for p in positions.view.values()] == [Decimal("77")]
            assert_continuous(seen)
            for s in (positions, summary):
                await s.aclose()
            await health.aclose()
            assert positions.closed

    asyncio.run(asyncio.wait_for(main(), patient(60)))


def test_streams_through_a_gateway_svc_restart() -> None:
    demo = Demo()
    try:
        with Client(demo.grpc, backoff_initial=0.05, backoff_max=0.5) as client:
            client.wait_for_ready(timeout=patient(10))
            stream = client.watch_positions()
            pump = Pump(stream)
            health = Pump(client.watch_health())
            try:
                pump.expect("SNAPSHOT", kind(UpdateKind.SNAPSHOT, FreshnessState.LIVE))
                health.expect("READY", lambda h: h.is_ready)
                demo.set_position("MSFT", 272093, "77")
                pump.expect("DELTA MSFT 77", kind(UpdateKind.DELTA))

                assert demo.stop() == 0, demo.log()
                stale = pump.expect("synthetic STALE", kind(UpdateKind.FRESHNESS, FreshnessState.STALE))
                assert stale.synthetic and "gateway-svc unreachable" in stale.freshness.reason
                assert stale.freshness.since is not None
                assert stream.view.get(MSFT).quantity == Decimal("77"), "last known data kept"  # type: ignore[union-attr]
                gone = health.expect("UNREACHABLE", lambda h: h.state is SessionState.UNREACHABLE)
                assert gone.synthetic

                # A new gateway-svc on the same address, with a new simulator (MSFT back at 40).
                demo = Demo(grpc_listen=demo.grpc)
                resync = pump.expect("RESYNC after reconnecting", kind(UpdateKind.RESYNC, FreshnessState.LIVE), seconds=20)
                assert resync.reconnected and not resync.synthetic
                assert len(resync.items) == 6
                assert [(p.symbol, p.quantity) for p in resync.upserts] == [("MSFT", Decimal("40"))]
                assert resync.removals == ()
                assert stream.view.get(MSFT).quantity == Decimal("40")  # type: ignore[union-attr]
                health.expect("READY again", lambda h: h.is_ready, seconds=20)

                demo.set_position("MSFT", 272093, "55")
                delta = pump.expect("DELTA MSFT 55", kind(UpdateKind.DELTA))
                assert [(p.symbol, p.quantity) for p in delta.upserts] == [("MSFT", Decimal("55"))]
                assert_continuous(pump.seen)
                kinds = [u.kind for u in pump.seen]
                assert kinds.count(UpdateKind.SNAPSHOT) == 1, "one SNAPSHOT per stream object, whatever happens"
            finally:
                pump.close()
                health.close()
    finally:
        demo.stop()


def test_wait_for_ready_rides_out_a_missing_gateway_svc() -> None:
    addr = f"127.0.0.1:{free_port()}"
    with Client(addr, backoff_initial=0.05, backoff_max=0.5) as client:
        with pytest.raises(NotReadyError) as e:
            client.wait_for_ready(timeout=0.5)
        assert not e.value.reachable
        result: List[Any] = []
        waiter = threading.Thread(target=lambda: result.append(client.wait_for_ready(timeout=patient(20))))
        waiter.start()
        demo = Demo(grpc_listen=addr)
        try:
            waiter.join(timeout=patient(25))
            assert not waiter.is_alive()
            assert result and result[0].is_ready
        finally:
            client.close()
            demo.stop()


def test_wait_for_ready_through_a_gateway_restart(fresh_demo: Demo) -> None:
    with Client(fresh_demo.grpc) as client:
        before = client.wait_for_ready(timeout=patient(10))
        fresh_demo.restart_gateway(down_ms=1500)
        eventually("the session to leave READY", 10, lambda: not client.get_health().is_ready)
        after = client.wait_for_ready(timeout=patient(10))
        assert after.is_ready and after.session_epoch > before.session_epoch


def test_wait_for_ready_times_out_with_the_last_state(fresh_demo: Demo) -> None:
    with Client(fresh_demo.grpc) as client:
        client.wait_for_ready(timeout=patient(10))
        fresh_demo.restart_gateway(down_ms=int(patient(10) * 1000))
        eventually("the session to leave READY", 10, lambda: not client.get_health().is_ready)
        with pytest.raises(NotReadyError) as e:
            client.wait_for_ready(timeout=0.5)
        assert e.value.reachable and e.value.last is not None and not e.value.last.is_ready
        assert "not READY" in str(e.value)


def test_closing_the_client_ends_its_streams(demo: Demo) -> None:
    client = Client(demo.grpc)
    client.wait_for_ready(timeout=patient(10))
    stream = client.watch_positions()
    pump = Pump(stream)
    pump.expect("SNAPSHOT", kind(UpdateKind.SNAPSHOT))
    client.close()
    pump.close()
    assert stream.closed and pump.error is None

    async def main() -> None:
        ac = AsyncClient(demo.grpc)
        await ac.wait_for_ready(timeout=patient(10))
        astream = ac.watch_positions()  # the session demo's book never changes: nothing follows the snapshot
        first = await asyncio.wait_for(astream.__anext__(), patient(10))
        assert first.kind is UpdateKind.SNAPSHOT and first.freshness.is_live
        blocked = asyncio.ensure_future(astream.__anext__())
        await ac.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(blocked, patient(5))
        assert astream.closed

    asyncio.run(main())
