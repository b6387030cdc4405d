"""Shared by the interop checks: the patience factor, the simulator's control API, failing with
one line, waiting on a condition (threads or asyncio) and collecting a library's warnings."""
import asyncio
import json
import logging
import os
import sys
import time
import urllib.request

PATIENCE = int(os.environ.get("IBGW_TEST_PATIENCE") or "3")


def fail_with(who):
    """A `fail(msg)` that prints `who: FAIL: msg` and exits 1."""

    def fail(msg):
        print(f"{who}: FAIL: {msg}")
        sys.exit(1)

    return fail


def control_call(control, method, path, body=None):
    """One call of the simulator's control API (JSON in, JSON out)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{control}{path}", data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5 * PATIENCE) as r:
        text = r.read()
    return json.loads(text) if text else None


def pnl_truth(control, account, con_id):
    """What the simulator puts on the wire now: (daily, unrealized, realized) of the account and
    (position, daily, unrealized, realized, value) of its position in `con_id`."""
    t = control_call(control, "GET", f"/pnl/{account}")
    s = control_call(control, "GET", f"/pnl/{account}/{con_id}")
    return ((t["daily"], t["unrealized"], t["realized"]),
            (float(s["position"]), s["daily"], s["unrealized"], s["realized"], s["value"]))


def tick(control, con_id, by):
    """Moves `con_id`'s price by `by` through the simulator's control API."""
    price = next(p["price"] for p in control_call(control, "GET", "/prices") if p["con_id"] == con_id)
    control_call(control, "PATCH", "/prices", [{"con_id": con_id, "price": price + by}])


def wait(pred, what, fail, secs=10):
    """Polls `pred` from a plain thread until it holds, for at most `secs` × patience."""
    deadline = time.monotonic() + secs * PATIENCE
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    fail(f"timed out waiting for {what}")


async def until(pred, what, fail, secs=10):
    """Polls `pred` inside an event loop until it holds, for at most `secs` × patience."""
    deadline = asyncio.get_running_loop().time() + secs * PATIENCE
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Warnings(logging.Handler):
    """Collects the WARNING-and-above messages of a logger it is added to."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        if record.levelno >= logging.WARNING:
            self.messages.append(record.getMessage())
