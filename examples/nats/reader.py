#!/usr/bin/env python3
"""A remote reader of ibgw-bridge's NATS JetStream data, with the official nats-py client.

Prints the latest positions from the key-value bucket (with their freshness, and whether the
bridge is running), then follows the change stream from a stream sequence: by default from just
after what the bucket showed, so nothing is missed and nothing is applied twice.

    pip install -r examples/nats/requirements.txt
    python3 examples/nats/reader.py --server nats://127.0.0.1:4222
    python3 examples/nats/reader.py --account DU1234567 --from-seq 1 --max 20
"""

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, NoKeysError, NotFoundError


def token(s: str) -> str:
    """An account code as ibgw-bridge writes it in subjects and keys (letters, digits, - kept)."""
    if not s:
        return "_"
    return "".join(chr(b) if chr(b).isalnum() and b < 128 or b == 0x2D else f"_{b:02X}" for b in s.encode())


def freshness(f: dict) -> str:
    if f["state"] == "STALE":
        return f"STALE since {f.get('since')} ({f.get('reason')})"
    return f["state"] if f["state"] == "LIVE" else f"{f['state']} ({f.get('reason')})"


def bridge_state(beat: dict) -> str:
    """The bridge's heartbeat: data is only as live as the bridge that writes it."""
    updated = datetime.fromisoformat(beat["updated_at"].replace("Z", "+00:00"))
    age_ms = (datetime.now(timezone.utc) - updated).total_seconds() * 1000
    if not beat.get("running", False):
        return f"bridge STOPPED at {beat['updated_at']}: treat everything as STALE"
    if age_ms > beat["stale_after_ms"]:
        return f"bridge SILENT for {age_ms / 1000:.1f} s: treat everything as STALE"
    return "bridge running"


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="nats://127.0.0.1:4222")
    ap.add_argument("--account", help="one account (default: all)")
    ap.add_argument("--from-seq", type=int, help="follow from this stream sequence (default: after the bucket)")
    ap.add_argument("--max", type=int, default=0, help="stop after this many messages (0: never)")
    ap.add_argument("--idle", type=float, default=0, help="stop after this many seconds without a message (0: never)")
    args = ap.parse_args()

    nc = await nats.connect(args.server, connect_timeout=3, max_reconnect_attempts=-1)
    js = nc.jetstream()
    status = await js.key_value("ibgw-status")
    try:
        print(bridge_state(json.loads((await status.get("bridge")).value)))
    except KeyNotFoundError:
        print("no heartbeat: has the bridge ever run?")

    # 1. The latest value of every row, and where in the stream it stands.
    positions = await js.key_value("ibgw-positions")
    prefix = f"{token(args.account)}." if args.account else ""
    try:
        keys = [k for k in await positions.keys() if k.startswith(prefix)]
    except NoKeysError:
        keys = []
    rows = [json.loads((await positions.get(k)).value) for k in sorted(keys)]
    accounts = sorted({r["account"] for r in rows} | ({args.account} if args.account else set()))
    seen: dict = {}  # subject -> the seq the bucket already reflects
    after = None
    for account in accounts:
        try:
            s = json.loads((await status.get(f"positions.{token(account)}")).value)
        except KeyNotFoundError:
            continue
        seen[s["subject"]] = s["seq"]
        after = s["stream_seq"] if after is None else min(after, s["stream_seq"])
        print(f"{account}: {s['rows']} positions, {freshness(s['freshness'])}, "
              f"epoch {s['session_epoch']}, as of {s['as_of']}, stream seq {s['stream_seq']}")
    for r in rows:
        print(f"  {r['account']} {r['symbol']:<6} {r['sec_type']:<4} {r['quantity']:>10} @ {r['avg_cost']} {r['currency']}")

    # 2. Every change from there on. Each subject's `seq` runs 1, 2, 3...: a jump means messages
    #    were missed (the stream's max_age), so re-read the bucket.
    # From the earliest subject's position on; messages a subject's bucket rows already reflect
    # are skipped (applying one twice would change nothing anyway: rows are set, not added).
    start = args.from_seq if args.from_seq is not None else (after or 0) + 1
    if args.from_seq is not None:
        seen = {}
    subject = f"ibgw.v1.positions.{token(args.account)}" if args.account else "ibgw.v1.positions.*"
    print(f"following {subject} from stream sequence {start}")
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(start, 1))
    try:
        sub = await js.subscribe(subject, ordered_consumer=True, config=config)
    except NotFoundError:
        print("no stream IBGW: is the bridge running?", file=sys.stderr)
        return 1
    last_seq: dict = {}
    count = 0
    while args.max == 0 or count < args.max:
        try:
            msg = await sub.next_msg(timeout=args.idle or 3600)
        except nats.errors.TimeoutError:
            if args.idle:
                break
            continue
        count += 1
        c = json.loads(msg.data)
        if c["seq"] <= seen.get(msg.subject, 0):
            continue
        prev = last_seq.get(msg.subject)
        gap = "" if prev is None or c["seq"] == prev + 1 else f"  GAP after seq {prev}: re-read the bucket"
        last_seq[msg.subject] = c["seq"]
        changes = [f"{p['symbol']}={p['quantity']}" for p in c.get("upserts", [])]
        changes += [f"closed {k['con_id']}" for k in c.get("removals", [])]
        print(f"#{msg.metadata.sequence.stream} {c['account']} {c['kind']} seq {c['seq']} "
              f"epoch {c['session_epoch']} {freshness(c['freshness'])}: {', '.join(changes) or '-'}{gap}")
    await nc.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
