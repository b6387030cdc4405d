"""Interop proof: ib_async (text protocol, v157..178) against ib-sim.

Usage: python ib_async_check.py HOST PORT
Exits non-zero with a message on the first mismatch. Every wait is a deadline scaled by
IBGW_TEST_PATIENCE (a whole number, default 3); nothing asserts how fast anything was.
"""
import asyncio
import logging
import os
import sys

from ib_async import IB

warnings = []
PATIENCE = int(os.environ.get("IBGW_TEST_PATIENCE") or "3")


class Collect(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            warnings.append(record.getMessage())


def fail(msg):
    print(f"ib_async: FAIL: {msg}")
    sys.exit(1)


async def main(host, port):
    logging.getLogger("ib_async").addHandler(Collect())
    logging.getLogger("ib_async").setLevel(logging.INFO)
    ib = IB()
    await ib.connectAsync(host, port, clientId=7, timeout=10 * PATIENCE)
    if ib.client.serverVersion() != 178:
        fail(f"negotiated {ib.client.serverVersion()}, expected 178 (text)")
    timeouts = [w for w in warnings if "imeout" in w]
    if timeouts:
        fail(f"connect produced timeout warnings: {timeouts}")
    accounts = ib.managedAccounts()
    if len(accounts) < 2:
        fail(f"managed accounts {accounts}")
    positions = await ib.reqPositionsAsync()
    if len(positions) < 5 or not any(p.contract.symbol == "AAPL" for p in positions):
        fail(f"positions {positions}")
    summary = await ib.accountSummaryAsync()
    tags = {v.tag for v in summary}
    if len(tags & {"NetLiquidation", "TotalCashValue", "BuyingPower", "AvailableFunds", "ExcessLiquidity"}) < 5:
        fail(f"account summary tags {sorted(tags)}")
    t = await ib.reqCurrentTimeAsync()
    if t.year < 2024:
        fail(f"current time {t}")
    pnl = ib.reqPnL(accounts[0])
    deadline = asyncio.get_running_loop().time() + 5 * PATIENCE
    while not (pnl.dailyPnL == pnl.dailyPnL and pnl.dailyPnL != 0):  # not NaN, set
        if asyncio.get_running_loop().time() > deadline:
            fail(f"pnl never arrived: {pnl}")
        await asyncio.sleep(0.1)
    ib.cancelPnL(accounts[0])

    # A second client with the same id must get 326 and be closed.
    dup = IB()
    errors = []
    dup.errorEvent += lambda reqId, code, msg, contract: errors.append(code)
    try:
        await dup.connectAsync(host, port, clientId=7, timeout=3 * PATIENCE)
        fail("duplicate client id was accepted")
    except Exception:
        pass
    if 326 not in errors:
        fail(f"duplicate id did not yield 326, errors={errors}")
    ib.disconnect()
    print(f"ib_async: OK version=178 accounts={accounts} positions={len(positions)} tags={len(tags)} "
          f"pnl={pnl.dailyPnL} 326=yes")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
