"""The ib_async-shaped adapter against the demo."""

from __future__ import annotations

import pytest

from conftest import Demo, free_port, patient
from ibgw_client import NotReadyError
from ibgw_client.compat import IB, AccountValue, Contract, Position


def test_ib_async_shaped_adapter(demo: Demo) -> None:
    host, port = demo.host_port
    ib = IB()
    assert not ib.isConnected()
    with ib.connect(host, port, clientId=17, timeout=patient(10)):
        assert ib.is_connected() and ib.isConnected()
        assert ib.managed_accounts() == ["DU1234567", "DU7654321"] == ib.managedAccounts()
        assert ib.last_freshness is not None and ib.last_freshness.is_live

        positions = ib.positions()
        assert len(positions) == 6 and all(isinstance(p, Position) for p in positions)
        by_key = {(p.account, p.contract.con_id): p for p in positions}
        stock = by_key[("DU1234567", 265598)]
        account, contract, position, avg_cost = stock  # a NamedTuple, as in ib_async
        assert (account, position, avg_cost) == ("DU1234567", 100.0, 150.25) and stock.avgCost == 150.25
        assert isinstance(contract, Contract)
        assert (contract.symbol, contract.sec_type, contract.currency, contract.exchange) == ("AAPL", "STK", "USD", "NASDAQ")
        assert (contract.conId, contract.secType, contract.localSymbol) == (265598, "STK", "AAPL")
        option = by_key[("DU1234567", 720104601)].contract
        assert (option.sec_type, option.strike, option.right, option.multiplier) == ("OPT", 200.0, "C", "100")
        assert option.last_trade_date_or_contract_month == option.lastTradeDateOrContractMonth == "20270115"
        assert {p.contract.symbol for p in ib.positions("DU7654321")} == {"AAPL", "TSLA"}

        summary = ib.account_summary("DU1234567")
        assert summary and all(isinstance(v, AccountValue) and v.account == "DU1234567" for v in summary)
        nlv = [v for v in summary if v.tag == "NetLiquidation" and v.currency == "USD"]
        assert len(nlv) == 1 and float(nlv[0].value) > 0 and nlv[0].modelCode == ""
        assert {v.account for v in ib.accountSummary()} == {"DU1234567", "DU7654321"}
    assert not ib.isConnected()
    with pytest.raises(ConnectionError):
        ib.positions()


def test_connect_waits_for_ready_and_gives_up() -> None:
    with pytest.raises(NotReadyError):
        IB().connect("127.0.0.1", free_port(), timeout=0.5)
