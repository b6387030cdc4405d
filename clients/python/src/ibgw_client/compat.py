"""An adapter shaped like ib_async's `IB`, for code migrating from a direct gateway connection.

    from ibgw_client.compat import IB

    ib = IB()
    ib.connect("127.0.0.1", 50051)          # was: ib.connect("127.0.0.1", 4002, clientId=17)
    print(ib.managed_accounts())            # also ib.managedAccounts()
    for p in ib.positions():                # Position(account, contract, position, avg_cost)
        print(p.account, p.contract.symbol, p.contract.con_id, p.position, p.avg_cost)
    for v in ib.account_summary("DU1234567"):   # AccountValue(account, tag, value, currency, model_code)
        print(v.tag, v.value, v.currency)
    ib.disconnect()

Names are snake_case, with ib_async's camelCase spellings as aliases (`managedAccounts`,
`accountSummary`, `avgCost`, `conId`, `secType`, ...), and results are NamedTuples like
ib_async's, so unpacking `account, contract, position, avg_cost = p` keeps working. Differences:
there is no client id (gateway-svc owns the one gateway session), everything is read-only, and
every call asks gateway-svc (which answers from memory) instead of a local cache. During an
outage gateway-svc serves the last known data marked STALE: `ib.last_freshness` is the freshness
of the last answer, and `ib.client` is the full `Client` (streams, health, exact decimals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, NamedTuple, Optional

from ._config import TlsCa
from ._models import Freshness, Position as _Position
from .client import Client
from .errors import GatewayError

__all__ = ["IB", "AccountValue", "Contract", "GatewayError", "Position"]


@dataclass(frozen=True)
class Contract:
    """The contract of a position, with ib_async's field meanings (`strike` a float, 0.0 when
    none; `multiplier` a string, "" when none)."""

    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    last_trade_date_or_contract_month: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    currency: str = ""
    local_symbol: str = ""

    # ib_async's spellings.
    @property
    def conId(self) -> int:
        return self.con_id

    @property
    def secType(self) -> str:
        return self.sec_type

    @property
    def lastTradeDateOrContractMonth(self) -> str:
        return self.last_trade_date_or_contract_month

    @property
    def localSymbol(self) -> str:
        return self.local_symbol


class Position(NamedTuple):
    """One position, as ib_async's `Position`: quantity and average cost as floats (IB's avg
    cost includes the multiplier)."""

    account: str
    contract: Contract
    position: float
    avg_cost: float

    @property
    def avgCost(self) -> float:
        return self.avg_cost


class AccountValue(NamedTuple):
    """One account summary value, as ib_async's `AccountValue`."""

    account: str
    tag: str
    value: str
    currency: str
    model_code: str = ""

    @property
    def modelCode(self) -> str:
        return self.model_code


def _contract(p: _Position) -> Contract:
    return Contract(
        con_id=p.con_id,
        symbol=p.symbol,
        sec_type=p.sec_type,
        last_trade_date_or_contract_month=p.expiry,
        strike=float(p.strike) if p.strike is not None else 0.0,
        right=p.right,
        multiplier=format(p.multiplier, "f") if p.multiplier is not None else "",
        exchange=p.exchange,
        currency=p.currency,
        local_symbol=p.local_symbol,
    )


class IB:
    """The ib_async-shaped adapter. Not connected until `connect()`."""

    def __init__(self) -> None:
        self._client: Optional[Client] = None
        #: Freshness of the last answer (None before the first call).
        self.last_freshness: Optional[Freshness] = None

    def connect(
        self,
        host: str = "127.0.0.1",
        port: int = 50051,
        clientId: int = 0,
        timeout: float = 10.0,
        readonly: bool = True,
        account: str = "",
        *,
        token: Optional[str] = None,
        tls_ca: Optional[TlsCa] = None,
        tls: Optional[bool] = None,
        **client_options: Any,
    ) -> IB:
        """Connects to gateway-svc and waits up to `timeout` seconds for its session to be
        READY (ib_async's connect also returns once synchronised). `clientId`, `readonly` and
        `account` are accepted for compatibility and ignored; the rest goes to `Client`."""
        del clientId, readonly, account
        if self._client is not None:
            raise ConnectionError("already connected")
        target = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
        client = Client(target, token=token, tls_ca=tls_ca, tls=tls, **client_options)
        try:
            client.wait_for_ready(timeout=timeout)
        except BaseException:
            client.close()
            raise
        self._client = client
        return self

    def disconnect(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def is_connected(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise ConnectionError("not connected: call connect() first")
        return self._client

    def __enter__(self) -> IB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def managed_accounts(self) -> List[str]:
        """The managed accounts, in the gateway's order."""
        r = self.client.list_accounts()
        self.last_freshness = r.freshness
        return list(r.accounts)

    def positions(self, account: str = "") -> List[Position]:
        """Positions of `account`, or of every account when it is empty."""
        r = self.client.get_positions(accounts=[account] if account else None)
        self.last_freshness = r.freshness
        return [Position(p.account, _contract(p), float(p.quantity), float(p.avg_cost)) for p in r.positions]

    def account_summary(self, account: str = "") -> List[AccountValue]:
        """Account summary values of `account`, or of every account when it is empty."""
        r = self.client.get_account_summary(accounts=[account] if account else None)
        self.last_freshness = r.freshness
        return [AccountValue(v.account, v.tag, v.value, v.currency) for v in r.values]

    # ib_async's spellings.
    def managedAccounts(self) -> List[str]:
        return self.managed_accounts()

    def accountSummary(self, account: str = "") -> List[AccountValue]:
        return self.account_summary(account)

    def isConnected(self) -> bool:
        return self.is_connected()

