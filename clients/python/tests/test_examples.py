"""The examples in examples/python, run as a user runs them, against the demo."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from typing import IO, List


from conftest import ROOT, Demo, patient

EXAMPLES = ROOT / "examples" / "python"


def test_the_examples_are_here() -> None:
    # Never a silent skip: the examples live in the repository beside these tests.
    assert EXAMPLES.is_dir(), f"{EXAMPLES} is missing"


def run_trader(demo: Demo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "trader_once.py"), "--gateway", demo.grpc, "--ready-timeout", str(patient(10)), *args],
        capture_output=True,
        text=True,
        timeout=patient(30),
        env={k: v for k, v in os.environ.items() if k not in ("IBGW_ADDR", "IBGW_TOKEN")},
    )


def test_trader_once_reports_live_data(demo: Demo) -> None:
    r = run_trader(demo, "--symbols", "AAPL,MSFT")
    assert r.returncode == 0, r.stderr
    for want in ("AAPL", "MSFT", "DU1234567", "DU7654321", "LIVE", "share of NLV", "multiplier 100 included"):
        assert want in r.stdout, (want, r.stdout)
    assert "MSFT   no position [LIVE]" in r.stdout


def test_trader_once_exit_codes(demo: Demo) -> None:
    r = run_trader(demo, "--symbols", "AAPL", "--account", "DU0000000")
    assert r.returncode == 6, (r.returncode, r.stdout, r.stderr)
    assert "unknown account" in r.stderr
    r = run_trader(demo, "--ready-timeout", "0")
    assert r.returncode == 64, r.stderr
    r = run_trader(demo, "--token", "has space")
    assert r.returncode == 64, r.stderr


class Lines:
    """Lines of a child's stdout, read in a thread, waited for with deadlines."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: List[str] = []
        self._q: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._q.put(line.rstrip("\n"))

    def expect(self, what: str, *parts: str, seconds: float = 10) -> str:
        deadline = time.monotonic() + patient(seconds)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; output so far:\n" + "\n".join(self.seen))
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if all(p in line for p in parts):
                return line


def test_follow_positions_through_a_gateway_restart(fresh_demo: Demo) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLES / "follow_positions.py"), fresh_demo.grpc, "MSFT"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        out = Lines(proc.stdout)
        out.expect("the snapshot", "1 SNAPSHOT LIVE")
        fresh_demo.restart_gateway(down_ms=1500)
        out.expect("STALE", "FRESHNESS STALE")
        out.expect("RESYNC", "RESYNC LIVE")
        fresh_demo.set_position("MSFT", 272093, "77")
        out.expect("the change", "DELTA LIVE", "DU1234567 MSFT 77")
        out.expect("the folded set", "DU1234567 MSFT 77")
    finally:
        proc.terminate()
        proc.wait(timeout=patient(10))

