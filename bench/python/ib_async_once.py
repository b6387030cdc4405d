"""One run the way runners worked before gateway-svc: a fresh ib_async connection to the gateway,
positions and the account summary, then disconnect.

Usage: python ib_async_once.py HOST PORT CLIENT_ID

The connection is read-only (no order requests at start-up), which makes this baseline faster,
not slower, than a default ib_async connect. Prints one JSON line:
{"import_ms": ..., "session_ms": ..., "positions": N, "summary": N}
where session_ms covers connect, positions, account summary and disconnect. Exits 1 when the
gateway returned no positions or no summary rows.
"""
import json
import sys
import time

started = time.perf_counter()
import asyncio  # noqa: E402  (timed: importing is part of what every run pays)

from ib_async import IB  # noqa: E402

imported = time.perf_counter()


async def main(host, port, client_id):
    ib = IB()
    t0 = time.perf_counter()
    await ib.connectAsync(host, port, clientId=client_id, timeout=10, readonly=True)
    positions = await ib.reqPositionsAsync()
    summary = await ib.accountSummaryAsync()
    ib.disconnect()
    t1 = time.perf_counter()
    print(json.dumps({
        "import_ms": (imported - started) * 1000.0,
        "session_ms": (t1 - t0) * 1000.0,
        "positions": len(positions),
        "summary": len(summary),
    }))
    if not positions or not summary:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
