"""Interop proof: IB's official Python client (protobuf at v226) through gateway-svc's TWS front
door.

Usage: python front_door_ibapi.py HOST PORT SIM_CONTROL
Reads accounts, positions, account summary and PnL; sees an order refused with 321 for its id;
lives through a gateway restart (1100, then 1102, positions read again). Every wait is a
deadline scaled by IBGW_TEST_PATIENCE.
"""
import sys

from ibapi.contract import Contract
from ibapi.order import Order

from common import control_call, fail_with
from common import wait as wait_with
from ibapi_official_check import connect

fail = fail_with("ibapi-latest via front door")


def wait(pred, what, secs=10):
    wait_with(pred, what, fail, secs)


def read_positions(app):
    app.positions.clear()
    app.positions_done.clear()
    app.reqPositions()
    wait(app.positions_done.is_set, "positionEnd")
    app.cancelPositions()
    return list(app.positions)


def main(host, port, control):
    app = connect(host, port, 11, fail)
    truth = control_call(control, "GET", "/positions")
    positions = read_positions(app)
    if len(positions) != len(truth):
        fail(f"{len(positions)} positions, the simulator holds {len(truth)}")
    app.reqAccountSummary(9001, "All", "NetLiquidation,TotalCashValue,BuyingPower")
    wait(app.summary_done.is_set, "accountSummaryEnd")
    if {t for _, t, _ in app.summary} != {"NetLiquidation", "TotalCashValue", "BuyingPower"}:
        fail(f"summary {app.summary}")
    want = control_call(control, "GET", f"/pnl/{app.accounts[0]}")["daily"]
    app.reqPnL(9002, app.accounts[0], "")
    wait(lambda: app.pnl_value is not None and abs(app.pnl_value[0] - want) < 1e-6, f"daily PnL {want}")
    app.cancelPnL(9002)

    contract = Contract()
    contract.symbol, contract.secType, contract.exchange, contract.currency = "AAPL", "STK", "SMART", "USD"
    order = Order()
    order.action, order.orderType, order.totalQuantity = "BUY", "MKT", 1
    app.placeOrder(app.next_id, contract, order)
    wait(lambda: (app.next_id, 321) in app.errors, f"321 for order {app.next_id}")

    control_call(control, "POST", "/faults", {"kind": "restart", "down_ms": 300})
    wait(lambda: (-1, 1100) in app.errors, "1100 after the restart")
    wait(lambda: (-1, 1102) in app.errors, "1102 after the restart")
    if not app.isConnected():
        fail("the front-door connection did not survive the gateway restart")
    again = read_positions(app)
    if len(again) != len(truth):
        fail(f"{len(again)} positions after the restart, expected {len(truth)}")
    app.disconnect()
    print(f"ibapi-latest via front door: OK version=226 accounts={app.accounts} positions={len(positions)} "
          f"pnl={app.pnl_value[0]} order=321 restart=1100,1102")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
