"""Interop proof: ib_async (text protocol, v157..178) through gateway-svc's TWS front door.

Usage: python front_door_ib_async.py HOST PORT SIM_CONTROL
Reads accounts, positions, account summary and PnL; sees an order refused with 321 and a
market-data request refused by name; then lives through a gateway restart (injected through the
simulator's control API): 1100, then 1102, and positions read again afterwards. Exits non-zero
with a message on the first mismatch. Every wait is a deadline scaled by IBGW_TEST_PATIENCE.
"""
import asyncio
import logging
import sys

from ib_async import IB, MarketOrder, Stock

from common import PATIENCE, Warnings, control_call, fail_with
from common import until as until_with

fail = fail_with("ib_async via front door")
warnings = Warnings()


async def until(pred, what, secs=10):
    await until_with(pred, what, fail, secs)


async def main(host, port, control):
    logging.getLogger("ib_async").addHandler(warnings)
    ib = IB()
    codes = []
    ib.errorEvent += lambda reqId, code, msg, contract: codes.append(code)
    await ib.connectAsync(host, port, clientId=7, timeout=10 * PATIENCE)
    if ib.client.serverVersion() != 178:
        fail(f"negotiated {ib.client.serverVersion()}, expected 178 (text)")
    # What ib_async asks at connect (positions, open and completed orders, executions, account
    # updates for every account) must complete without a timeout or any other warning.
    if warnings.messages:
        fail(f"connect produced warnings: {warnings.messages}")
    accounts = ib.managedAccounts()
    if accounts != ["DU1234567", "DU7654321"]:
        fail(f"managed accounts {accounts}")
    truth = control_call(control, "GET", "/positions")
    positions = await ib.reqPositionsAsync()
    if len(positions) != len(truth):
        fail(f"{len(positions)} positions, the simulator holds {len(truth)}")
    summary = await ib.accountSummaryAsync()
    tags = {v.tag for v in summary}
    if not {"NetLiquidation", "TotalCashValue", "BuyingPower"} <= tags:
        fail(f"account summary tags {sorted(tags)}")
    pnl = ib.reqPnL(accounts[0])
    want = control_call(control, "GET", f"/pnl/{accounts[0]}")["daily"]
    await until(lambda: abs(pnl.dailyPnL - want) < 1e-6, f"daily PnL {want}, have {pnl}")
    ib.cancelPnL(accounts[0])

    # Read-only: the order is refused for its id, nothing is sent upstream.
    trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 1))
    await until(lambda: any(e.errorCode == 321 for e in trade.log), "321 for the order")
    bars = await ib.reqHistoricalDataAsync(Stock("AAPL", "SMART", "USD"), "", "1 D", "1 hour", "TRADES", True)
    if bars or 322 not in codes:
        fail(f"historical data was not refused with 322: bars={bars} codes={codes}")

    # A gateway restart: the front-door connection stays; 1100, then 1102; data still reads.
    control_call(control, "POST", "/faults", {"kind": "restart", "down_ms": 300})
    await until(lambda: 1100 in codes, "1100 after the restart")
    await until(lambda: 1102 in codes, "1102 after the restart")
    if not ib.isConnected():
        fail("the front-door connection did not survive the gateway restart")
    again = await ib.reqPositionsAsync()
    if len(again) != len(truth):
        fail(f"{len(again)} positions after the restart, expected {len(truth)}")
    ib.disconnect()
    print(f"ib_async via front door: OK accounts={accounts} positions={len(positions)} tags={len(tags)} "
          f"pnl={pnl.dailyPnL} order=321 historical=322 restart=1100,1102")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
