"""Unary calls against the demo, errors, and the default deadline."""

from __future__ import annotations

import asyncio
import socket
import time
from decimal import Decimal
from typing import Iterator

import grpc
import pytest

from conftest import Demo, free_port, patient
from ibgw_client import (
    AsyncClient,
    Client,
    DeadlineExceededError,
    FreshnessState,
    InvalidArgumentError,
    NotFoundError,
    SessionState,
    UnavailableError,
)


@pytest.fixture
def client(demo: Demo) -> Iterator[Client]:
    with Client(demo.grpc) as c:
        c.wait_for_ready(timeout=patient(10))
        yield c


def test_list_accounts(client: Client) -> None:
    r = client.list_accounts()
    assert r.accounts == ("DU1234567", "DU7654321")
    assert r.freshness.state is FreshnessState.LIVE and r.freshness.is_live
    assert r.session_epoch >= 1 and r.as_of is not None


def test_get_positions_filters_and_exact_values(client: Client) -> None:
    r = client.get_positions(symbols=["AAPL"])
    assert r.freshness.is_live
    rows = {(p.account, p.con_id): p for p in r.positions}
    assert set(rows) == {("DU1234567", 265598), ("DU1234567", 720104601), ("DU7654321", 265598)}
    stock = rows[("DU1234567", 265598)]
    assert (stock.symbol, stock.sec_type, stock.currency, stock.exchange) == ("AAPL", "STK", "USD", "NASDAQ")
    assert stock.quantity == Decimal("100") and stock.avg_cost == Decimal("150.25")
    assert stock.strike is None and stock.multiplier is None
    option = rows[("DU1234567", 720104601)]
    assert option.sec_type == "OPT" and option.quantity == Decimal("-2") and option.avg_cost == Decimal("845")
    assert (option.expiry, option.strike, option.right, option.multiplier) == ("20270115", Decimal("200"), "C", Decimal("100"))
    # One string is one filter value, not its characters.
    only = client.get_positions(accounts="DU7654321")
    assert {p.account for p in only.positions} == {"DU7654321"}
    assert {p.symbol for p in only.positions} == {"AAPL", "TSLA"}
    # Fractional quantities stay exact.
    spy = client.get_positions(symbols="SPY").positions
    assert [p.quantity for p in spy] == [Decimal("25.5")]
    assert client.get_positions(symbols="NOPE").positions == ()


def test_get_account_summary(client: Client) -> None:
    r = client.get_account_summary(accounts=["DU1234567"], tags=["NetLiquidation", "AccountType"])
    assert r.freshness.is_live
    assert {v.account for v in r.values} == {"DU1234567"}
    assert {v.tag for v in r.values} == {"NetLiquidation", "AccountType"}
    nlv = [v for v in r.values if v.tag == "NetLiquidation" and v.currency == "USD"]
    assert len(nlv) == 1 and nlv[0].decimal is not None and nlv[0].decimal > 0
    account_type = [v for v in r.values if v.tag == "AccountType"]
    assert account_type and account_type[0].decimal is None


def test_get_health(client: Client, demo: Demo) -> None:
    h = client.get_health()
    assert h.state is SessionState.READY and h.is_ready
    assert h.upstream == demo.sim_api
    assert h.session_epoch >= 1 and h.server_version > 0 and h.client_id > 0
    assert h.farms and all(f.name for f in h.farms)
    assert not h.synthetic


def test_errors_carry_their_status(client: Client) -> None:
    with pytest.raises(NotFoundError) as nf:
        client.get_positions(accounts=["DU0000000"])
    assert isinstance(nf.value, grpc.RpcError)
    assert nf.value.code() is grpc.StatusCode.NOT_FOUND and "DU0000000" in nf.value.details()
    with pytest.raises(InvalidArgumentError):
        client.get_positions(symbols=["BRK:B"])
    with pytest.raises(InvalidArgumentError):
        client.get_account_summary(tags=["Net Liquidation"])
    with pytest.raises(NotFoundError):
        next(iter(client.watch_positions(accounts="DU0000000")))


def test_unreachable_fails_fast() -> None:
    port = free_port()  # nothing listens there
    with Client(f"127.0.0.1:{port}", timeout=patient(5)) as c:
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            c.list_accounts()
        assert time.monotonic() - started < patient(5)


def test_every_call_has_a_deadline() -> None:
    # A socket that completes TCP handshakes (the kernel's backlog) but never speaks HTTP/2.
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        addr = "127.0.0.1:%d" % blackhole.getsockname()[1]
        with Client(addr, timeout=0.3) as c:
            for call in (c.list_accounts, c.get_positions, c.get_account_summary, c.get_health):
                started = time.monotonic()
                with pytest.raises(DeadlineExceededError):
                    call()
                assert time.monotonic() - started < patient(5)
            with pytest.raises(DeadlineExceededError):
                c.get_health(timeout=0.1)
            # A stream's first message has the same deadline.
            with pytest.raises(DeadlineExceededError):
                next(iter(c.watch_positions(reconnect=False)))

        async def async_calls() -> None:
            async with AsyncClient(addr, timeout=0.3) as ac:
                with pytest.raises(DeadlineExceededError):
                    await ac.list_accounts()
                with pytest.raises(DeadlineExceededError):
                    await ac.watch_account_summary(reconnect=False).__anext__()

        asyncio.run(asyncio.wait_for(async_calls(), patient(10)))


def test_async_unary(demo: Demo) -> None:
    async def main() -> None:
        async with AsyncClient(demo.grpc) as c:
            assert (await c.wait_for_ready(timeout=patient(10))).is_ready
            assert (await c.list_accounts()).accounts == ("DU1234567", "DU7654321")
            positions = (await c.get_positions(symbols=["MSFT"])).positions
            assert [(p.account, p.symbol, p.quantity) for p in positions] == [("DU1234567", "MSFT", Decimal("40"))]
            summary = await c.get_account_summary(tags="NetLiquidation")
            assert {v.account for v in summary.values} == {"DU1234567", "DU7654321"}
            assert (await c.get_health()).is_ready
            with pytest.raises(NotFoundError):
                await c.get_account_summary(accounts=["DU0000000"])

    asyncio.run(main())
