"""ibgw-client: a Python client for gateway-svc (gateway.v1 over gRPC).

    from ibgw_client import Client, AsyncClient

`Client` (synchronous) and `AsyncClient` (asyncio) wrap every gateway.v1 call with deadlines, TLS
and bearer-token options, `wait_for_ready`, and streams that reconnect and resynchronise across
gateway and gateway-svc restarts. `ibgw_client.view` folds stream updates into the current set;
`ibgw_client.compat.IB` is shaped like ib_async's `IB`; `ibgw_client.proto` holds the generated
gateway_pb2 / gateway_pb2_grpc modules for raw access.
"""

from ._models import (
    Accounts,
    AccountSummary,
    DataFarm,
    DataFarmKind,
    DataFarmState,
    Freshness,
    FreshnessState,
    Health,
    Position,
    PositionKey,
    Positions,
    PositionsUpdate,
    SessionState,
    StreamUpdate,
    SummaryKey,
    SummaryUpdate,
    SummaryValue,
    UpdateKind,
)
from .aio import AsyncClient, AsyncHealthStream, AsyncStream, AsyncUpdateStream
from .client import Client, HealthStream, Stream, UpdateStream
from .errors import (
    DeadlineExceededError,
    GatewayError,
    InvalidArgumentError,
    NotFoundError,
    NotReadyError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from .view import FoldedView, PositionsView, SummaryView

__version__ = "0.1.0"

__all__ = [
    "AccountSummary",
    "Accounts",
    "AsyncClient",
    "AsyncHealthStream",
    "AsyncStream",
    "AsyncUpdateStream",
    "Client",
    "DataFarm",
    "DataFarmKind",
    "DataFarmState",
    "DeadlineExceededError",
    "FoldedView",
    "Freshness",
    "FreshnessState",
    "GatewayError",
    "Health",
    "HealthStream",
    "InvalidArgumentError",
    "NotFoundError",
    "NotReadyError",
    "Position",
    "PositionKey",
    "Positions",
    "PositionsUpdate",
    "PositionsView",
    "ResourceExhaustedError",
    "SessionState",
    "Stream",
    "StreamUpdate",
    "SummaryKey",
    "SummaryUpdate",
    "SummaryValue",
    "SummaryView",
    "UnauthenticatedError",
    "UnavailableError",
    "UpdateKind",
    "UpdateStream",
]
