#!/usr/bin/env python3
"""Follow positions with asyncio, through gateway restarts and gateway-svc restarts.

    python examples/python/follow_positions.py [ADDRESS] [SYMBOL...]

Prints one line per update: its seq, kind (SNAPSHOT, DELTA, FRESHNESS, RESYNC), freshness and
what changed, then the folded set. A gateway restart shows as FRESHNESS STALE, then RESYNC LIVE;
a gateway-svc restart as a synthetic FRESHNESS STALE ("gateway-svc unreachable"), then a RESYNC
marked reconnected. Ctrl-C ends it.
"""

from __future__ import annotations

import asyncio
import sys

from ibgw_client import AsyncClient


async def follow(address: str, symbols: list[str]) -> None:
    async with AsyncClient(address) as client:
        await client.wait_for_ready(timeout=30)
        stream = client.watch_positions(symbols=symbols)
        async for u in stream:
            changed = [f"{p.account} {p.symbol} {p.quantity}" for p in u.upserts] + [f"{k.account} {k.con_id} closed" for k in u.removals]
            print(u.seq, u.kind.name, u.freshness, "reconnected" if u.reconnected else "", changed, flush=True)
            print("   ", [f"{p.account} {p.symbol} {p.quantity}" for p in stream.view.values()], flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(follow(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051", sys.argv[2:]))
    except KeyboardInterrupt:
        pass
