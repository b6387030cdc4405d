"""Interop proof: IB's official Python client (ibapi-latest 10.51.x, protobuf at v226) against ib-sim.

Usage: python ibapi_official_check.py HOST PORT [CONTROL]
With CONTROL (the simulator's control address, host:port) the pnl and pnlSingle callbacks are
compared with what the simulator says the wire carries (GET /pnl/...), before and after a price
tick (PATCH /prices).
Every wait is a deadline scaled by IBGW_TEST_PATIENCE (a whole number, default 3); nothing
asserts how fast anything was.
"""
import sys
import threading

from ibapi.client import EClient
from ibapi.wrapper import EWrapper

from common import PATIENCE, fail_with, pnl_truth, tick
from common import wait as wait_with

fail = fail_with("ibapi-latest")


class App(EWrapper, EClient):
    def __init__(self):
        EClient.__init__(self, self)
        self.accounts = None
        self.next_id = None
        self.positions = []
        self.positions_done = threading.Event()
        self.summary = []
        self.summary_done = threading.Event()
        self.time = None
        self.time_ms = None
        self.pnl_value = None
        self.pnl_single_value = None
        self.errors = []
        self.ready = threading.Event()

    def managedAccounts(self, accountsList):
        self.accounts = accountsList.split(",")
        self._check_ready()

    def nextValidId(self, orderId):
        self.next_id = orderId
        self._check_ready()

    def _check_ready(self):
        if self.accounts and self.next_id is not None:
            self.ready.set()

    def error(self, reqId, errorTime, errorCode, errorString, advancedOrderRejectJson=""):
        self.errors.append((reqId, errorCode))

    def position(self, account, contract, position, avgCost):
        self.positions.append((account, contract.symbol, position, avgCost))

    def positionEnd(self):
        self.positions_done.set()

    def accountSummary(self, reqId, account, tag, value, currency):
        self.summary.append((account, tag, value))

    def accountSummaryEnd(self, reqId):
        self.summary_done.set()

    def currentTime(self, t):
        self.time = t

    def currentTimeInMillis(self, t):
        self.time_ms = t

    def pnl(self, reqId, dailyPnL, unrealizedPnL, realizedPnL):
        self.pnl_value = (dailyPnL, unrealizedPnL, realizedPnL)

    def pnlSingle(self, reqId, pos, dailyPnL, unrealizedPnL, realizedPnL, value):
        self.pnl_single_value = (float(pos), dailyPnL, unrealizedPnL, realizedPnL, value)


def check_pnl_against_truth(app, control, account, con_id=265598):
    """pnl and pnlSingle carry exactly what the simulator says, before and after a price tick."""
    app.reqPnLSingle(9003, account, "", con_id)
    wait(lambda: app.pnl_single_value, "pnlSingle")

    def matches():
        return (app.pnl_value, app.pnl_single_value) == pnl_truth(control, account, con_id)

    wait(matches, "PnL equal to the simulator's")
    before = app.pnl_value
    tick(control, con_id, 1.25)
    wait(lambda: app.pnl_value != before and matches(), "PnL after a tick equal to the simulator's")
    app.cancelPnLSingle(9003)


def wait(pred, what, secs=10):
    wait_with(pred, what, fail, secs)


def connect(host, port, client_id, fail):
    """A started App on its reader thread, at protobuf v226; `fail` reports what went wrong."""
    app = App()
    app.connect(host, port, clientId=client_id)
    threading.Thread(target=app.run, daemon=True).start()
    if not app.ready.wait(10 * PATIENCE):
        fail("no managedAccounts/nextValidId")
    if app.serverVersion() != 226:
        fail(f"negotiated {app.serverVersion()}, expected 226 (protobuf)")
    return app


def main(host, port, control=None):
    app = connect(host, port, 11, fail)
    app.reqPositions()
    wait(app.positions_done.is_set, "positionEnd")
    if len(app.positions) < 5:
        fail(f"positions {app.positions}")
    app.reqAccountSummary(9001, "All", "NetLiquidation,TotalCashValue,BuyingPower,AvailableFunds,ExcessLiquidity")
    wait(app.summary_done.is_set, "accountSummaryEnd")
    tags = {t for _, t, _ in app.summary}
    if len(tags) < 5:
        fail(f"summary tags {tags}")
    app.reqCurrentTime()
    wait(lambda: app.time, "currentTime")
    app.reqCurrentTimeInMillis()
    wait(lambda: app.time_ms, "currentTimeInMillis")
    app.reqPnL(9002, app.accounts[0], "")
    wait(lambda: app.pnl_value, "pnl")
    if control:
        check_pnl_against_truth(app, control, app.accounts[0])
    app.cancelPnL(9002)

    dup = App()
    dup.connect(host, port, clientId=11)
    t = threading.Thread(target=dup.run, daemon=True)
    t.start()
    wait(lambda: (-1, 326) in dup.errors, "326 on duplicate id")
    t.join(5 * PATIENCE)
    if dup.isConnected():
        fail("duplicate connection was not closed")
    app.disconnect()
    print(f"ibapi-latest: OK version=226 accounts={app.accounts} positions={len(app.positions)} "
          f"tags={len(tags)} time={app.time} pnl={app.pnl_value} pnl_single={app.pnl_single_value} 326=yes")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
