"""Shared by the front-door interop checks: the patience factor, the simulator's control API and
failing with one line."""
import json
import os
import sys
import urllib.request

PATIENCE = int(os.environ.get("IBGW_TEST_PATIENCE") or "3")


def fail_with(who):
    def fail(msg):
        print(f"{who}: FAIL: {msg}")
        sys.exit(1)

    return fail


def control_call(control, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{control}{path}", data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5 * PATIENCE) as r:
        text = r.read()
    return json.loads(text) if text else None
