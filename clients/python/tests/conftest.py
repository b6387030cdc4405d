"""Test support: `ibgw-demo` on ephemeral ports, the simulator's control API, deadlines.

Tests only wait for conditions, up to deadlines; they never sleep to synchronise and never assert
how fast something happened. Every deadline is multiplied by IBGW_TEST_PATIENCE (a whole number,
default 3), so a loaded machine gets more time and a passing test takes no longer.

IBGW_DEMO_BIN names the ibgw-demo binary, gateway-svc against the embedded simulator (default:
target/debug/ibgw-demo of the repository these tests sit in).
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any, Callable, Iterator, List, Optional, Sequence, TypeVar

import pytest

if os.environ.get("IBGW_CLIENT_INSTALLED") == "1":
    # scripts/python-client tests the wheel it installed, never the source tree.
    import ibgw_client

    if not Path(ibgw_client.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()):
        raise RuntimeError(f"ibgw_client was imported from {ibgw_client.__file__}, not from the venv {sys.prefix}")

ROOT = Path(__file__).resolve().parents[3]
_patience = os.environ.get("IBGW_TEST_PATIENCE", "3")
if not _patience.isdigit() or int(_patience) < 1:
    raise RuntimeError(f"IBGW_TEST_PATIENCE must be a whole number >= 1, not {_patience!r}")
PATIENCE = int(_patience)

T = TypeVar("T")


def patient(seconds: float) -> float:
    """A deadline of `seconds`, scaled by IBGW_TEST_PATIENCE."""
    return seconds * PATIENCE


def demo_bin() -> Path:
    return Path(os.environ.get("IBGW_DEMO_BIN") or ROOT / "target" / "debug" / "ibgw-demo")


def eventually(what: str, seconds: float, check: Callable[[], Optional[T]]) -> T:
    """Polls `check` every 20 ms until it returns something other than None/False, or fails
    after `seconds` (scaled) with the last exception it raised."""
    deadline = time.monotonic() + patient(seconds)
    last: Optional[BaseException] = None
    while True:
        try:
            value = check()
            if value is not None and value is not False:
                return value
        except Exception as e:  # noqa: BLE001 - reported at the deadline
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {patient(seconds):g} s waiting for {what}" + (f": {last!r}" if last else ""))
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Demo:
    """`ibgw-demo` on ephemeral ports (or the given gRPC address), stopped by `stop()`."""

    def __init__(self, grpc_listen: str = "127.0.0.1:0", extra: Sequence[str] = ()) -> None:
        binary = demo_bin()
        if not os.access(binary, os.X_OK):
            pytest.fail(f"{binary} is missing: build it (cargo build -p ibgw-demo --bins) or set IBGW_DEMO_BIN")
        self._log: IO[bytes] = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(
            [
                str(binary),
                "--grpc-listen",
                grpc_listen,
                "--ops-listen",
                "127.0.0.1:0",
                "--tws-api-listen",
                "127.0.0.1:0",
                "--sim-listen",
                "127.0.0.1:0",
                "--sim-control-listen",
                "127.0.0.1:0",
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        line = self._first_line(patient(20))
        self.info: dict[str, str] = json.loads(line)
        self.grpc = self.info["grpc"]
        self.sim_api = self.info["sim_api"]
        self.sim_control = self.info["sim_control"]
        # Keep reading stdout so the demo can never block on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _first_line(self, seconds: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop()
                    raise AssertionError(f"the demo printed no address line within {seconds:g} s:\n{self.log()}")
                if sel.select(left):
                    chunk = os.read(fd, 4096)
                    if not chunk:
                        self.stop()
                        raise AssertionError(f"the demo exited before printing its addresses:\n{self.log()}")
                    buf += chunk
        return buf.split(b"\n", 1)[0].decode()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        try:
            while self.proc.stdout.read(4096):
                pass
        except (OSError, ValueError):
            pass

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.grpc.rsplit(":", 1)
        return host, int(port)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """JSON over HTTP to the simulator's control API."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://{self.sim_control}{path}", data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=patient(5)) as res:
            text = res.read().decode()
        return json.loads(text) if text else None

    def restart_gateway(self, down_ms: int = 1500) -> None:
        """The simulated IB Gateway restarts: every connection closed, connects refused for
        `down_ms`."""
        self.control("POST", "/faults", {"kind": "restart", "down_ms": down_ms})

    def set_position(self, symbol: str, con_id: int, quantity: str, account: str = "DU1234567", avg_cost: float = 310.0) -> None:
        self.control(
            "PATCH",
            "/positions",
            [{"account": account, "con_id": con_id, "symbol": symbol, "exchange": "NASDAQ", "quantity": quantity, "avg_cost": avg_cost}],
        )

    def stop(self) -> int:
        """SIGTERM, then up to 10 s (scaled) for a clean exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=patient(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def demo() -> Iterator[Demo]:
    """One demo for the tests that only read (no faults, no changes to the simulated book)."""
    d = Demo()
    yield d
    assert d.stop() == 0, d.log()


@pytest.fixture
def fresh_demo() -> Iterator[Demo]:
    """A demo of the test's own, for tests that inject faults or change the book."""
    d = Demo()
    yield d
    d.stop()


class Pump:
    """Iterates a (blocking) stream in a thread, so a test can wait for updates with deadlines."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.seen: List[Any] = []
        self.error: Optional[BaseException] = None
        self._q: "queue.Queue[tuple[str, Any]]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self.stream:
                self._q.put(("item", item))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e
            self._q.put(("error", e))
        self._q.put(("end", None))

    def expect(self, what: str, pred: Callable[[Any], bool], seconds: float = 10) -> Any:
        """The next item matching `pred` (items before it are kept in `seen`)."""
        deadline = time.monotonic() + patient(seconds)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {patient(seconds):g} s waiting for {what}; seen: {self.seen!r}")
            try:
                kind, item = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if kind == "error":
                raise AssertionError(f"the stream failed while waiting for {what}: {item!r}") from item
            if kind == "end":
                raise AssertionError(f"the stream ended while waiting for {what}; seen: {self.seen!r}")
            self.seen.append(item)
            if pred(item):
                return item

    def close(self) -> None:
        self.stream.close()
        self._thread.join(timeout=patient(5))
        assert not self._thread.is_alive(), "the stream did not end after close()"
