"""The seeds' runner, pointed at the front door: connect, positions, account summary,
disconnect, with ib_async exactly as the original trading system used it.

Usage: python seeds_style_runner.py HOST PORT [--concurrent N]
Once by default (run it in a loop for "10 times in a row"); with --concurrent N, N runs at once
in one process, each its own IB() with its own client id. Prints one line per run; exits
non-zero on the first failure. Deadlines scale with IBGW_TEST_PATIENCE.
"""
import argparse
import asyncio
import os
import random

from ib_async import IB

from common import PATIENCE, fail_with

fail = fail_with("seeds-style runner")


async def run_once(host, port, client_id):
    ib = IB()
    await ib.connectAsync(host, port, clientId=client_id, timeout=20 * PATIENCE, readonly=True)
    try:
        positions = await asyncio.wait_for(ib.reqPositionsAsync(), 20 * PATIENCE)
        summary = await asyncio.wait_for(ib.accountSummaryAsync(), 20 * PATIENCE)
        if not positions or not any(v.tag == "NetLiquidation" for v in summary):
            fail(f"client {client_id}: positions={len(positions)} summary={len(summary)}")
        return len(positions), len(summary)
    finally:
        ib.disconnect()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--concurrent", type=int, default=1)
    a = p.parse_args()
    base = random.Random(os.getpid()).randrange(10_000, 1_000_000)
    results = await asyncio.gather(*(run_once(a.host, a.port, base + i) for i in range(a.concurrent)))
    print(f"seeds-style runner: OK runs={len(results)} positions={results[0][0]} summary_rows={results[0][1]}")


if __name__ == "__main__":
    asyncio.run(main())
