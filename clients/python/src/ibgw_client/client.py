"""The synchronous client: `Client`."""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any, Callable, Generic, Iterable, Iterator, Optional, Protocol, Sequence, TypeVar, Union

import grpc

from . import _config
from ._config import ChannelOption, Settings, TlsCa
from ._follow import Backoff, Follower, HealthFollower, StreamBroken, describe
from ._models import (
    Accounts,
    AccountSummary,
    Health,
    Position,
    PositionKey,
    Positions,
    SessionState,
    StreamUpdate,
    SummaryKey,
    SummaryValue,
    positions_update,
    summary_update,
)
from .errors import DeadlineExceededError, NotReadyError, UnavailableError, from_rpc_error, status_code, status_details
from .proto import gateway_pb2 as pb
from .proto import gateway_pb2_grpc as pb_grpc
from .view import FoldedView, PositionsView, SummaryView

__all__ = ["Client", "HealthStream", "Stream", "UpdateStream"]

O = TypeVar("O")
O_co = TypeVar("O_co", covariant=True)
S = TypeVar("S", bound="Stream[Any]")
T = TypeVar("T")
K = TypeVar("K")

#: Codes after which a stream reconnects (with backoff) instead of raising.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


def filter_values(values: Union[str, Iterable[str], None]) -> list[str]:
    """A filter argument as a list: one string is one value, not its characters."""
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    return list(values)


class Handler(Protocol[O_co]):
    def connected(self) -> None: ...

    def on_message(self, message: Any) -> Optional[O_co]: ...

    def on_broken(self, reason: str) -> Optional[O_co]: ...


class HealthHandler:
    """Adapts HealthFollower to the stream loop."""

    def __init__(self) -> None:
        self.follower = HealthFollower()

    def connected(self) -> None:
        pass

    def on_message(self, message: Any) -> Optional[Health]:
        return self.follower.on_message(Health.from_pb(message.health))

    def on_broken(self, reason: str) -> Optional[Health]:
        return self.follower.on_broken(reason)


class Stream(Generic[O]):
    """An iterator over a reconnecting server stream. Iterate it; `close()` (or leaving a `with`
    block) ends it from any thread. With `reconnect=False`, UNAVAILABLE is raised instead."""

    def __init__(
        self,
        open_call: Callable[[], Any],
        handler: Handler[O],
        settings: Settings,
        reconnect: bool,
        what: str,
    ) -> None:
        self._open_call = open_call
        self._handler = handler
        self._settings = settings
        self._reconnect = reconnect
        self._what = what
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._first_timed_out = False
        self._gen = self._run()

    def __iter__(self) -> Iterator[O]:
        return self

    def __next__(self) -> O:
        if self._closed.is_set():
            raise StopIteration
        return next(self._gen)

    def __enter__(self) -> Stream[O]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Ends the stream: a blocked `next()` in another thread returns (StopIteration)."""
        self._closed.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    def _first_message_late(self, call: Any) -> None:
        self._first_timed_out = True
        call.cancel()

    def _run(self) -> Iterator[O]:
        backoff = Backoff(self._settings.backoff_initial, self._settings.backoff_max)
        while not self._closed.is_set():
            with self._lock:
                if self._closed.is_set():
                    return
                call = self._call = self._open_call()
            self._first_timed_out = False
            timer = threading.Timer(self._settings.timeout, self._first_message_late, args=(call,))
            timer.daemon = True
            timer.start()
            self._handler.connected()
            reason = "the stream ended"
            try:
                for message in call:
                    timer.cancel()
                    try:
                        out = self._handler.on_message(message)
                    except StreamBroken as e:
                        reason = str(e)
                        break
                    backoff.reset()
                    if out is not None:
                        yield out
            except grpc.RpcError as e:
                if self._closed.is_set():
                    return
                code = status_code(e)
                if self._first_timed_out:
                    reason = f"no first message within {self._settings.timeout:g} s"
                    if not self._reconnect:
                        raise DeadlineExceededError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{self._what}: {reason}") from None
                elif code in RETRYABLE and self._reconnect:
                    reason = describe(code.name, status_details(e))
                else:
                    raise from_rpc_error(e) from None
            finally:
                timer.cancel()
                call.cancel()
            if self._closed.is_set():
                return
            if not self._reconnect:
                raise UnavailableError(grpc.StatusCode.UNAVAILABLE, f"{self._what}: {reason}")
            out = self._handler.on_broken(reason)
            if out is not None:
                yield out
            if self._closed.wait(backoff.next_delay()):
                return


class UpdateStream(Stream[StreamUpdate[T, K]], Generic[T, K]):
    """A reconnecting positions or account-summary stream. `view` is the set the updates so far
    describe (updated before each update is returned)."""

    def __init__(
        self,
        open_call: Callable[[], Any],
        follower: Follower[Any, T, K],
        settings: Settings,
        reconnect: bool,
        what: str,
    ) -> None:
        super().__init__(open_call, follower, settings, reconnect, what)
        self._follower = follower

    @property
    def view(self) -> FoldedView[T, K]:
        return self._follower.view


class HealthStream(Stream[Health]):
    """A reconnecting health stream: the current health, every change, and a synthetic
    `SessionState.UNREACHABLE` value while gateway-svc cannot be reached."""

    def __init__(self, open_call: Callable[[], Any], settings: Settings, reconnect: bool) -> None:
        self._health = HealthHandler()
        super().__init__(open_call, self._health, settings, reconnect, "WatchHealth")

    @property
    def last(self) -> Optional[Health]:
        return self._health.follower.last


class Client:
    """A synchronous client of gateway-svc.

        with Client("127.0.0.1:50051") as client:
            client.wait_for_ready(timeout=30)
            for p in client.get_positions(symbols=["AAPL"]).positions:
                print(p.account, p.symbol, p.quantity, p.avg_cost)

    Every unary call has a deadline, `timeout` seconds (default 5) unless the call passes its own;
    streams reconnect on UNAVAILABLE with backoff (`backoff_initial` doubling up to
    `backoff_max` seconds) and give up on a first message that takes longer than `timeout`.
    TLS: `https://` addresses, `tls=True` (system roots) or `tls_ca` (PEM path or bytes);
    `tls_server_name` overrides the name checked in the certificate. `token` is sent as
    `authorization: Bearer TOKEN` on every call. Errors are `ibgw_client.errors.GatewayError`s.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        tls: Optional[bool] = None,
        tls_ca: Optional[TlsCa] = None,
        tls_server_name: Optional[str] = None,
        token: Optional[str] = None,
        allow_token_without_tls: bool = False,
        timeout: float = _config.DEFAULT_TIMEOUT,
        backoff_initial: float = 0.2,
        backoff_max: float = 2.0,
        options: Sequence[ChannelOption] = (),
    ) -> None:
        self.settings = _config.resolve(
            target,
            tls=tls,
            tls_ca=tls_ca,
            tls_server_name=tls_server_name,
            token=token,
            allow_token_without_tls=allow_token_without_tls,
            timeout=timeout,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            options=options,
        )
        s = self.settings
        if s.tls:
            self._channel = grpc.secure_channel(s.address, s.credentials(), options=s.channel_options())
        else:
            self._channel = grpc.insecure_channel(s.address, options=s.channel_options())
        self._stub = pb_grpc.GatewayServiceStub(self._channel)
        self._metadata = s.metadata() or None
        self._streams: weakref.WeakSet[Stream[Any]] = weakref.WeakSet()

    @property
    def address(self) -> str:
        return self.settings.address

    def __repr__(self) -> str:
        return f"Client({self.settings.address!r}, tls={self.settings.tls}, token={'set' if self.settings.has_token else 'none'})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; open streams end (their iterators stop)."""
        for stream in list(self._streams):
            stream.close()
        self._channel.close()

    def _track(self, stream: S) -> S:
        self._streams.add(stream)
        return stream

    def _timeout(self, timeout: Optional[float]) -> float:
        return self.settings.timeout if timeout is None else timeout

    def list_accounts(self, *, timeout: Optional[float] = None) -> Accounts:
        """The managed accounts of the upstream session, in the gateway's order."""
        try:
            r = self._stub.ListAccounts(pb.ListAccountsRequest(), timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return Accounts.from_pb(r)

    def get_positions(
        self,
        accounts: Union[str, Iterable[str], None] = None,
        symbols: Union[str, Iterable[str], None] = None,
        *,
        timeout: Optional[float] = None,
    ) -> Positions:
        """Current positions, optionally only of some accounts and symbols (NOT_FOUND for an
        unknown account; a symbol nobody holds matches nothing)."""
        request = pb.GetPositionsRequest(accounts=filter_values(accounts), symbols=filter_values(symbols))
        try:
            r = self._stub.GetPositions(request, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return Positions.from_pb(r)

    def get_account_summary(
        self,
        accounts: Union[str, Iterable[str], None] = None,
        tags: Union[str, Iterable[str], None] = None,
        *,
        timeout: Optional[float] = None,
    ) -> AccountSummary:
        """Account summary values, optionally only of some accounts and tags."""
        request = pb.GetAccountSummaryRequest(accounts=filter_values(accounts), tags=filter_values(tags))
        try:
            r = self._stub.GetAccountSummary(request, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return AccountSummary.from_pb(r)

    def get_health(self, *, timeout: Optional[float] = None) -> Health:
        """The state of the upstream session and of the service."""
        try:
            r = self._stub.GetHealth(pb.GetHealthRequest(), timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return Health.from_pb(r.health)

    def wait_for_ready(self, timeout: float = 30.0) -> Health:
        """Waits until the upstream session is READY (through WatchHealth, riding out an
        unreachable or restarting gateway-svc) and returns that health. Raises NotReadyError
        after `timeout` seconds, with the last health seen."""
        deadline = time.monotonic() + timeout
        backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
        last: Optional[Health] = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotReadyError(not_ready_message(self.address, timeout, last), last)
            call = self._stub.WatchHealth(
                pb.WatchHealthRequest(), timeout=remaining, metadata=self._metadata, wait_for_ready=True
            )
            try:
                for message in call:
                    last = Health.from_pb(message.health)
                    if last.is_ready:
                        return last
            except grpc.RpcError as e:
                code = status_code(e)
                if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                    continue
                if code not in RETRYABLE:
                    raise from_rpc_error(e) from None
                last = unreachable(describe(code.name, status_details(e)), last)
            finally:
                call.cancel()
            time.sleep(min(backoff.next_delay(), max(0.0, deadline - time.monotonic())))

    def watch_positions(
        self,
        accounts: Union[str, Iterable[str], None] = None,
        symbols: Union[str, Iterable[str], None] = None,
        *,
        reconnect: bool = True,
    ) -> UpdateStream[Position, PositionKey]:
        """Positions as a SNAPSHOT, then DELTA / FRESHNESS / RESYNC updates, across gateway
        restarts and gateway-svc restarts (see `StreamUpdate`). `stream.view` holds the result."""
        request = pb.WatchPositionsRequest(accounts=filter_values(accounts), symbols=filter_values(symbols))

        def open_call() -> Any:
            return self._stub.WatchPositions(request, metadata=self._metadata)

        follower: Follower[Any, Position, PositionKey] = Follower(positions_update, PositionsView, PositionsView())
        return self._track(UpdateStream(open_call, follower, self.settings, reconnect, "WatchPositions"))

    def watch_account_summary(
        self,
        accounts: Union[str, Iterable[str], None] = None,
        tags: Union[str, Iterable[str], None] = None,
        *,
        reconnect: bool = True,
    ) -> UpdateStream[SummaryValue, SummaryKey]:
        """The account summary as a SNAPSHOT, then updates, like `watch_positions`."""
        request = pb.WatchAccountSummaryRequest(accounts=filter_values(accounts), tags=filter_values(tags))

        def open_call() -> Any:
            return self._stub.WatchAccountSummary(request, metadata=self._metadata)

        follower: Follower[Any, SummaryValue, SummaryKey] = Follower(summary_update, SummaryView, SummaryView())
        return self._track(UpdateStream(open_call, follower, self.settings, reconnect, "WatchAccountSummary"))

    def watch_health(self, *, reconnect: bool = True) -> HealthStream:
        """The current health, then every change; `SessionState.UNREACHABLE` (synthetic) while
        gateway-svc cannot be reached."""

        def open_call() -> Any:
            return self._stub.WatchHealth(pb.WatchHealthRequest(), metadata=self._metadata)

        return self._track(HealthStream(open_call, self.settings, reconnect))


def unreachable(reason: str, last: Optional[Health]) -> Health:
    return Health(
        state=SessionState.UNREACHABLE,
        reason=f"gateway-svc unreachable: {reason}",
        session_epoch=last.session_epoch if last else 0,
        upstream=last.upstream if last else "",
        synthetic=True,
    )


def not_ready_message(address: str, timeout: float, last: Optional[Health]) -> str:
    if last is None:
        return f"gateway-svc at {address} did not answer within {timeout:g} s"
    if last.synthetic:
        return f"gateway-svc at {address} not reachable within {timeout:g} s ({last.reason})"
    return f"session not READY within {timeout:g} s (last: {last.state.name}: {last.reason})"
