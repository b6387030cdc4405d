#!/usr/bin/env python3
"""One-shot trader check against gateway-svc, with the ibgw-client package.

Waits until the upstream session is READY, then reads the managed accounts, the positions for the
requested symbols and four account summary tags, and prints one report per account and symbol:
quantity, average cost, the position's share of net liquidation, and how fresh the data is.

Needs the package: pip install ./clients/python (see README.md).

Exit codes (3 to 6 use trader-client's numbers, but this example is stricter than trader-client:
it fails whenever the session is not READY in time, and never exits 0 with STALE data, where
trader-client prints stale data younger than --max-staleness and exits 0):
  0   ok: the report was printed from LIVE data
  1   any other error (for example a wrong bearer token)
  3   the gateway could not be reached within --ready-timeout, or a later call got UNAVAILABLE
  4   the gateway answered but its session was not READY within --ready-timeout
  5   the report was printed, but some data is STALE (or UNKNOWN)
  6   unknown account (the gateway answered NOT_FOUND)
  64  bad command line, or the ibgw-client package is not installed
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from decimal import Decimal
from typing import Dict, List, NoReturn, Optional, Sequence, Tuple

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_UNREACHABLE = 3
EXIT_NOT_READY = 4
EXIT_STALE = 5
EXIT_UNKNOWN_ACCOUNT = 6
EXIT_USAGE = 64

SUMMARY_TAGS = ["NetLiquidation", "BuyingPower", "AvailableFunds", "TotalCashValue"]

try:
    from ibgw_client import (
        Client,
        DeadlineExceededError,
        Freshness,
        GatewayError,
        Health,
        NotFoundError,
        NotReadyError,
        Position,
        SummaryValue,
        UnavailableError,
    )
except ImportError as e:  # pragma: no cover - exercised by hand
    print(f"trader_once: cannot import ibgw_client ({e}); pip install ./clients/python", file=sys.stderr)
    sys.exit(EXIT_USAGE)


class Exit(Exception):
    """Ends the program with `code` after printing `message` to stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """Bad arguments exit 64 (EX_USAGE); the other codes use trader-client's numbers."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise Exit(EXIT_USAGE, f"{self.prog}: {message}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = Parser(
        prog="trader_once.py",
        description="Print positions and their share of net liquidation from gateway-svc, once.",
    )
    p.add_argument(
        "--gateway",
        default=os.environ.get("IBGW_ADDR", "").strip() or "127.0.0.1:50051",
        metavar="ADDRESS",
        help="gateway-svc address: HOST:PORT, http://HOST:PORT or https://HOST:PORT (default: $IBGW_ADDR, else 127.0.0.1:50051)",
    )
    p.add_argument("--symbols", default="", metavar="AAPL,MSFT", help="comma-separated symbols to report (default: every symbol held)")
    p.add_argument("--account", default=None, help="report only this account (NOT_FOUND exits 6)")
    p.add_argument("--ready-timeout", type=float, default=30.0, metavar="SECONDS", help="how long to wait for the session to be READY (default 30)")
    p.add_argument("--token", default=os.environ.get("IBGW_TOKEN") or None, help="bearer token, when the service has auth.token set (default: $IBGW_TOKEN)")
    p.add_argument("--tls-ca", default=None, metavar="FILE", help="PEM CA to trust for TLS (turns TLS on)")
    args = p.parse_args(argv)
    args.symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if args.ready_timeout <= 0:
        p.error("--ready-timeout must be > 0")
    return args


def fmt_time(dt: Optional[datetime]) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else "-"


def freshness_text(f: Freshness, as_of: Optional[datetime]) -> str:
    """LIVE / STALE / UNKNOWN with the details that matter, e.g. 'LIVE as of ... (2s ago)'."""
    age = ""
    if as_of:
        secs = max(0, int((datetime.now(timezone.utc) - as_of).total_seconds()))
        age = f" ({secs}s ago)"
    text = f"{f.state.name} as of {fmt_time(as_of)}{age}"
    if f.state.name == "STALE":
        text += f", stale since {fmt_time(f.since)}"
    if f.reason:
        text += f": {f.reason}"
    return text


def net_liquidation(values: Sequence[SummaryValue], account: str, currency: str) -> Tuple[Optional[Decimal], str]:
    """The NetLiquidation value of `account`, preferring the position's currency."""
    rows = [v for v in values if v.account == account and v.tag == "NetLiquidation"]
    for v in rows:
        if v.currency == currency:
            return v.decimal, v.currency
    return (rows[0].decimal, rows[0].currency) if rows else (None, "")


def position_line(p: Position, values: Sequence[SummaryValue], freshness: str) -> str:
    contract = p.sec_type
    if p.sec_type in ("OPT", "FOP"):
        contract += f" {p.local_symbol or ' '.join(x for x in (p.expiry, str(p.strike or ''), p.right) if x)}"
    elif p.sec_type == "FUT":
        contract += f" {p.local_symbol or p.expiry}"
    line = f"{p.symbol:<6} {contract:<28} qty {p.quantity:>8}  avg cost {p.avg_cost} {p.currency}"
    if p.multiplier is not None:
        line += f" (multiplier {p.multiplier} included)"
    nlv, nlv_ccy = net_liquidation(values, p.account, p.currency)
    if not nlv:
        share = "n/a"
    else:
        # IB's avg cost already includes the multiplier (an option's is per contract), so the
        # cost basis is quantity x avg cost, never x multiplier again.
        share = f"{(p.quantity * p.avg_cost / nlv * 100).quantize(Decimal('0.01'))}%"
        if nlv_ccy and p.currency and nlv_ccy != p.currency:
            share += f" (NLV in {nlv_ccy})"
    return f"{line}  share of NLV {share}  [{freshness}]"


def report(client: Client, args: argparse.Namespace, health: Health) -> None:
    wanted: List[str] = [args.account] if args.account else []
    accounts_resp = client.list_accounts()
    positions_resp = client.get_positions(accounts=wanted, symbols=args.symbols)
    summary_resp = client.get_account_summary(accounts=wanted, tags=SUMMARY_TAGS)

    print(
        f"gateway {client.address}: READY ({health.reason}), session epoch {health.session_epoch}, "
        f"client id {health.client_id}, upstream {health.upstream}"
    )
    print(f"accounts:        {freshness_text(accounts_resp.freshness, accounts_resp.as_of)}")
    print(f"positions:       {freshness_text(positions_resp.freshness, positions_resp.as_of)}")
    print(f"account summary: {freshness_text(summary_resp.freshness, summary_resp.as_of)}")

    pos_fresh = positions_resp.freshness.state.name
    for account in wanted or list(accounts_resp.accounts):
        print()
        print(f"account {account}")
        values = [v for v in summary_resp.values if v.account == account]
        by_tag: Dict[str, List[SummaryValue]] = {}
        for v in values:
            by_tag.setdefault(v.tag, []).append(v)
        summary = []
        for tag in SUMMARY_TAGS:
            rows = by_tag.get(tag)
            summary.append(" ".join(f"{tag} {v.value} {v.currency}".rstrip() for v in rows) if rows else f"{tag} n/a")
        print("  " + " | ".join(summary))

        held = [p for p in positions_resp.positions if p.account == account]
        symbols = args.symbols or sorted({p.symbol.upper() for p in held})
        if not symbols:
            print("  (no positions)")
        for symbol in symbols:
            rows_p = sorted((p for p in held if p.symbol.upper() == symbol), key=lambda p: (p.sec_type != "STK", p.sec_type, p.con_id))
            if not rows_p:
                print(f"  {symbol:<6} no position [{pos_fresh}]")
                continue
            for p in rows_p:
                print("  " + position_line(p, values, pos_fresh))

    stale = [
        name
        for name, fresh in (("accounts", accounts_resp.freshness), ("positions", positions_resp.freshness), ("summary", summary_resp.freshness))
        if not fresh.is_live
    ]
    if stale:
        raise Exit(EXIT_STALE, f"data not LIVE: {', '.join(stale)}")


def main(argv: Sequence[str]) -> int:
    try:
        args = parse_args(argv)
        try:
            client = Client(args.gateway, token=args.token, tls_ca=args.tls_ca)
        except (ValueError, OSError) as e:
            raise Exit(EXIT_USAGE, str(e))
        try:
            try:
                health = client.wait_for_ready(timeout=args.ready_timeout)
            except NotReadyError as e:
                raise Exit(EXIT_NOT_READY if e.reachable else EXIT_UNREACHABLE, str(e.details()))
            report(client, args, health)
        except NotFoundError as e:
            raise Exit(EXIT_UNKNOWN_ACCOUNT, f"unknown account: {e.details()}")
        except (UnavailableError, DeadlineExceededError) as e:
            raise Exit(EXIT_UNREACHABLE, f"gateway unavailable: {e.details()}")
        except GatewayError as e:
            raise Exit(EXIT_ERROR, f"gRPC {e.code().name}: {e.details()}")
        finally:
            client.close()
    except Exit as e:
        print(f"trader_once: {e}", file=sys.stderr)
        return e.code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
