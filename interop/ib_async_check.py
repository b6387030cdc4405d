"""Interop proof: ib_async (text protocol, v157..178) against ib-sim.

Usage: python ib_async_check.py HOST PORT [CONTROL]
With CONTROL (the simulator's control address, host:port) the PnL read over the wire is compared
with what the simulator says the wire carries (GET /pnl/...), before and after a price tick
(PATCH /prices). Exits non-zero with a message on the first mismatch. Every wait is a deadline scaled by
IBGW_TEST_PATIENCE (a whole number, default 3); nothing asserts how fast anything was.
"""
import asyncio
import logging
import sys

from ib_async import IB

from common import PATIENCE, Warnings, fail_with, pnl_truth, tick
from common import until as until_with

fail = fail_with("ib_async")
warnings = Warnings()


async def until(pred, what, secs=5):
    await until_with(pred, what, fail, secs)


def pnl_values(p):
    return (p.dailyPnL, p.unrealizedPnL, p.realizedPnL)


def single_values(p):
    return (p.position, p.dailyPnL, p.unrealizedPnL, p.realizedPnL, p.value)


async def check_pnl_against_truth(ib, control, account, pnl, con_id=265598):
    """reqPnLSingle too; both must carry exactly what the simulator says, then follow a tick."""
    single = ib.reqPnLSingle(account, "", con_id)
    await until(lambda: single.value == single.value, "pnlSingle")  # not NaN: arrived

    def truth():
        return pnl_truth(control, account, con_id)

    def matches():
        want_pnl, want_single = truth()
        return pnl_values(pnl) == want_pnl and single_values(single) == want_single

    await until(matches, f"PnL equal to the simulator's: {pnl} {single} vs {truth()}")
    before = pnl.dailyPnL
    tick(control, con_id, 1.25)
    await until(lambda: pnl.dailyPnL != before and matches(),
                f"PnL after a tick equal to the simulator's: {pnl} {single} vs {truth()}")
    ib.cancelPnLSingle(account, "", con_id)
    return single


async def main(host, port, control=None):
    logging.getLogger("ib_async").addHandler(warnings)
    logging.getLogger("ib_async").setLevel(logging.INFO)
    ib = IB()
    await ib.connectAsync(host, port, clientId=7, timeout=10 * PATIENCE)
    if ib.client.serverVersion() != 178:
        fail(f"negotiated {ib.client.serverVersion()}, expected 178 (text)")
    timeouts = [w for w in warnings.messages if "imeout" in w]
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
    single = await check_pnl_against_truth(ib, control, accounts[0], pnl) if control else None
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
          f"pnl={pnl.dailyPnL} pnl_single={single and single.value} 326=yes")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
