#!/usr/bin/env python3
"""One-shot trader check against gateway-svc (gateway.v1 over gRPC).

Waits until the upstream session is READY, then reads the managed accounts, the positions for the
requested symbols and four account summary tags, and prints one report per account and symbol:
quantity, average cost, the position's share of net liquidation, and how fresh the data is.

The gRPC stubs are not part of this directory: generate them (see README.md) and point
IBGW_PY_STUBS at the output directory.

Exit codes (3 to 6 use trader-client's numbers, but this example is stricter than trader-client:
it fails whenever the session is not READY in time, and never exits 0 with STALE data, where
trader-client prints stale data younger than --max-staleness and exits 0):
  0   ok: the report was printed from LIVE data
  1   any other error (for example a wrong bearer token)
  3   the gateway could not be reached within --ready-timeout, or a later call got UNAVAILABLE
  4   the gateway answered but its session was not READY within --ready-timeout
  5   the report was printed, but some data is STALE (or UNKNOWN)
  6   unknown account (the gateway answered NOT_FOUND)
  64  bad command line, or IBGW_PY_STUBS missing or wrong
"""

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_UNREACHABLE = 3
EXIT_NOT_READY = 4
EXIT_STALE = 5
EXIT_UNKNOWN_ACCOUNT = 6
EXIT_USAGE = 64

SUMMARY_TAGS = ["NetLiquidation", "BuyingPower", "AvailableFunds", "TotalCashValue"]
POLL_INTERVAL_S = 0.25
RPC_TIMEOUT_S = 10.0


class Exit(Exception):
    """Ends the program with `code` after printing `message` to stderr."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """Bad arguments exit 64 (EX_USAGE); the other codes use trader-client's numbers."""

    def error(self, message):
        self.print_usage(sys.stderr)
        raise Exit(EXIT_USAGE, f"{self.prog}: {message}")


def default_gateway():
    addr = os.environ.get("IBGW_ADDR", "").strip()
    for scheme in ("http://", "https://", "grpc://", "dns:///"):
        if addr.startswith(scheme):
            addr = addr[len(scheme):]
    return addr.rstrip("/") or "127.0.0.1:50051"


def parse_args(argv):
    p = Parser(
        prog="trader_once.py",
        description="Print positions and their share of net liquidation from gateway-svc, once.",
    )
    p.add_argument(
        "--gateway",
        default=default_gateway(),
        metavar="HOST:PORT",
        help="gateway-svc gRPC address (default: $IBGW_ADDR without its scheme, else 127.0.0.1:50051)",
    )
    p.add_argument(
        "--symbols",
        default="",
        metavar="AAPL,MSFT",
        help="comma-separated symbols to report (default: every symbol held)",
    )
    p.add_argument("--account", default=None, help="report only this account (NOT_FOUND exits 6)")
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the session to be READY (default 30)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("IBGW_TOKEN") or None,
        help="bearer token, when the service has auth.token set (default: $IBGW_TOKEN)",
    )
    args = p.parse_args(argv)
    args.symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if args.ready_timeout <= 0:
        p.error("--ready-timeout must be > 0")
    return args


def load_stubs():
    """Imports grpc and the generated gateway.v1 modules from $IBGW_PY_STUBS."""
    stubs = os.environ.get("IBGW_PY_STUBS")
    if not stubs:
        raise Exit(EXIT_USAGE, "IBGW_PY_STUBS is not set: generate the stubs (see README.md) and point it at them")
    if not os.path.isfile(os.path.join(stubs, "gateway", "v1", "gateway_pb2.py")):
        raise Exit(EXIT_USAGE, f"IBGW_PY_STUBS={stubs} has no gateway/v1/gateway_pb2.py: generate the stubs first")
    sys.path.insert(0, os.path.abspath(stubs))
    try:
        import grpc
        from gateway.v1 import gateway_pb2, gateway_pb2_grpc
    except ImportError as e:
        raise Exit(EXIT_USAGE, f"cannot import grpc or the stubs ({e}); install requirements.txt")
    return grpc, gateway_pb2, gateway_pb2_grpc


def ts(t):
    """A protobuf Timestamp as an aware UTC datetime, or None when unset."""
    if t is None or (t.seconds == 0 and t.nanos == 0):
        return None
    return t.ToDatetime(tzinfo=timezone.utc)


def fmt_time(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else "-"


def dec(s):
    try:
        return Decimal(s) if s else None
    except InvalidOperation:
        return None


class Client:
    def __init__(self, grpc, pb, pb_grpc, target, token):
        self.grpc = grpc
        self.pb = pb
        self.target = target
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.GatewayServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else None

    def call(self, method, request, timeout=RPC_TIMEOUT_S):
        return getattr(self.stub, method)(request, timeout=timeout, metadata=self.metadata)

    def close(self):
        self.channel.close()


def freshness_text(pb, f, as_of):
    """LIVE / STALE / UNKNOWN with the details that matter, e.g. 'LIVE as of ... (2s ago)'."""
    name = pb.FreshnessState.Name(f.state).replace("FRESHNESS_STATE_", "")
    as_of_dt = ts(as_of)
    age = ""
    if as_of_dt:
        secs = max(0, int((datetime.now(timezone.utc) - as_of_dt).total_seconds()))
        age = f" ({secs}s ago)"
    text = f"{name} as of {fmt_time(as_of_dt)}{age}"
    if f.state == pb.FRESHNESS_STATE_STALE:
        text += f", stale since {fmt_time(ts(f.since))}"
    if f.reason:
        text += f": {f.reason}"
    return text


def wait_ready(client, ready_timeout):
    """Polls GetHealth until the session is READY; returns the Health message."""
    grpc, pb = client.grpc, client.pb
    deadline = time.monotonic() + ready_timeout
    reached = False
    last = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            health = client.call("GetHealth", pb.GetHealthRequest(), timeout=min(left, 5.0)).health
            reached = True
            if health.state == pb.SESSION_STATE_READY:
                return health
            last = f"{pb.SessionState.Name(health.state).replace('SESSION_STATE_', '')}: {health.reason}"
        except grpc.RpcError as e:
            code = e.code()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                last = f"{code.name}: {e.details()}"
            else:
                raise
        time.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))
    if not reached:
        raise Exit(EXIT_UNREACHABLE, f"gateway {client.target} unreachable for {ready_timeout:g} s ({last})")
    raise Exit(EXIT_NOT_READY, f"session not READY within {ready_timeout:g} s (last: {last})")


def net_liquidation(values, account, currency):
    """The NetLiquidation value of `account`, preferring the position's currency."""
    rows = [v for v in values if v.account == account and v.tag == "NetLiquidation"]
    for v in rows:
        if v.currency == currency:
            return dec(v.value), v.currency
    return (dec(rows[0].value), rows[0].currency) if rows else (None, "")


def report(client, args, health):
    pb = client.pb
    accounts_resp = client.call("ListAccounts", pb.ListAccountsRequest())
    wanted = [args.account] if args.account else []
    positions_resp = client.call("GetPositions", pb.GetPositionsRequest(accounts=wanted, symbols=args.symbols))
    summary_resp = client.call("GetAccountSummary", pb.GetAccountSummaryRequest(accounts=wanted, tags=SUMMARY_TAGS))

    print(
        f"gateway {client.target}: READY ({health.reason}), session epoch {health.session_epoch}, "
        f"client id {health.client_id}, upstream {health.upstream}"
    )
    print(f"accounts:        {freshness_text(pb, accounts_resp.freshness, accounts_resp.as_of)}")
    print(f"positions:       {freshness_text(pb, positions_resp.freshness, positions_resp.as_of)}")
    print(f"account summary: {freshness_text(pb, summary_resp.freshness, summary_resp.as_of)}")

    pos_fresh = pb.FreshnessState.Name(positions_resp.freshness.state).replace("FRESHNESS_STATE_", "")
    accounts = wanted or [a.id for a in accounts_resp.accounts]
    for account in accounts:
        print()
        print(f"account {account}")
        values = [v for v in summary_resp.values if v.account == account]
        by_tag = {}
        for v in values:
            by_tag.setdefault(v.tag, []).append(v)
        summary = []
        for tag in SUMMARY_TAGS:
            rows = by_tag.get(tag)
            summary.append(
                " ".join(f"{tag} {v.value} {v.currency}".rstrip() for v in rows) if rows else f"{tag} n/a"
            )
        print("  " + " | ".join(summary))

        held = [p for p in positions_resp.positions if p.account == account]
        symbols = args.symbols or sorted({p.symbol.upper() for p in held})
        if not symbols:
            print("  (no positions)")
        for symbol in symbols:
            rows = sorted((p for p in held if p.symbol.upper() == symbol), key=lambda p: (p.sec_type != "STK", p.sec_type, p.con_id))
            if not rows:
                print(f"  {symbol:<6} no position [{pos_fresh}]")
                continue
            for p in rows:
                print("  " + position_line(p, values, pos_fresh))

    stale = [
        name
        for name, resp in (("accounts", accounts_resp), ("positions", positions_resp), ("summary", summary_resp))
        if resp.freshness.state != pb.FRESHNESS_STATE_LIVE
    ]
    if stale:
        raise Exit(EXIT_STALE, f"data not LIVE: {', '.join(stale)}")


def position_line(p, values, freshness):
    qty = dec(p.quantity)
    avg = dec(p.avg_cost)
    contract = p.sec_type
    if p.sec_type in ("OPT", "FOP"):
        contract += f" {p.local_symbol or ' '.join(x for x in (p.expiry, p.strike, p.right) if x)}"
    elif p.sec_type == "FUT":
        contract += f" {p.local_symbol or p.expiry}"
    line = f"{p.symbol:<6} {contract:<28} qty {p.quantity:>8}  avg cost {p.avg_cost} {p.currency}"
    if p.multiplier:
        line += f" (multiplier {p.multiplier} included)"
    nlv, nlv_ccy = net_liquidation(values, p.account, p.currency)
    if qty is None or avg is None or not nlv:
        share = "n/a"
    else:
        # IB's avg cost already includes the multiplier (an option's is per contract), so the
        # cost basis is quantity x avg cost, never x multiplier again.
        share = f"{(qty * avg / nlv * 100).quantize(Decimal('0.01'))}%"
        if nlv_ccy and p.currency and nlv_ccy != p.currency:
            share += f" (NLV in {nlv_ccy})"
    return f"{line}  share of NLV {share}  [{freshness}]"


def main(argv):
    try:
        args = parse_args(argv)
        grpc, pb, pb_grpc = load_stubs()
        client = Client(grpc, pb, pb_grpc, args.gateway, args.token)
        try:
            health = wait_ready(client, args.ready_timeout)
            report(client, args, health)
        except grpc.RpcError as e:
            code = e.code()
            if code == grpc.StatusCode.NOT_FOUND:
                raise Exit(EXIT_UNKNOWN_ACCOUNT, f"unknown account: {e.details()}")
            if code == grpc.StatusCode.UNAVAILABLE:
                raise Exit(EXIT_UNREACHABLE, f"gateway unavailable: {e.details()}")
            raise Exit(EXIT_ERROR, f"gRPC {code.name}: {e.details()}")
        finally:
            client.close()
    except Exit as e:
        print(f"trader_once: {e}", file=sys.stderr)
        return e.code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
