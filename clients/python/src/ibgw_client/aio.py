"""The asyncio client: `AsyncClient`, the same API as `Client` with coroutines and async
iterators."""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any, AsyncGenerator, AsyncIterator, Callable, Generic, Iterable, Optional, Sequence, TypeVar, Union

import grpc
import grpc.aio

from . import _config
from ._config import ChannelOption, Settings, TlsCa
from ._follow import Backoff, Follower, StreamBroken, describe
from ._models import (
    Accounts,
    AccountSummary,
    Health,
    Position,
    PositionKey,
    Positions,
    StreamUpdate,
    SummaryKey,
    SummaryValue,
    positions_update,
    summary_update,
)
from .client import RETRYABLE, Handler, HealthHandler, filter_values, not_ready_message, unreachable
from .errors import DeadlineExceededError, NotReadyError, UnavailableError, from_rpc_error, status_code, status_details
from .proto import gateway_pb2 as pb
from .proto import gateway_pb2_grpc as pb_grpc
from .view import FoldedView, PositionsView, SummaryView

__all__ = ["AsyncClient", "AsyncHealthStream", "AsyncStream", "AsyncUpdateStream"]

O = TypeVar("O")
T = TypeVar("T")
K = TypeVar("K")
S = TypeVar("S", bound="AsyncStream[Any]")


class AsyncStream(Generic[O]):
    """An async iterator over a reconnecting server stream. `await stream.aclose()` (or leaving
    an `async with` block) ends it; with `reconnect=False`, UNAVAILABLE is raised instead."""

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
        self._closed = False
        self._call: Any = None
        self._gen = self._run()

    def __aiter__(self) -> AsyncIterator[O]:
        return self

    async def __anext__(self) -> O:
        if self._closed:
            raise StopAsyncIteration
        return await self._gen.__anext__()

    async def __aenter__(self) -> AsyncStream[O]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    def _is_closed(self) -> bool:
        # A call, not an attribute: the flag changes while the generator is suspended.
        return self._closed

    def _stop(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    async def aclose(self) -> None:
        self._stop()
        try:
            await self._gen.aclose()
        except RuntimeError:
            pass  # another task is inside __anext__; the cancelled call ends it

    async def _run(self) -> AsyncGenerator[O, None]:
        backoff = Backoff(self._settings.backoff_initial, self._settings.backoff_max)
        while not self._is_closed():
            call = self._call = self._open_call()
            self._handler.connected()
            reason = "the stream ended"
            try:
                first = True
                while True:
                    if first:
                        try:
                            message = await asyncio.wait_for(call.read(), self._settings.timeout)
                        except asyncio.TimeoutError:
                            reason = f"no first message within {self._settings.timeout:g} s"
                            if not self._reconnect:
                                raise DeadlineExceededError(
                                    grpc.StatusCode.DEADLINE_EXCEEDED, f"{self._what}: {reason}"
                                ) from None
                            break
                        first = False
                    else:
                        message = await call.read()
                    if message is grpc.aio.EOF:
                        break
                    try:
                        out = self._handler.on_message(message)
                    except StreamBroken as e:
                        reason = str(e)
                        break
                    backoff.reset()
                    if out is not None:
                        yield out
            except grpc.RpcError as e:
                if self._is_closed():
                    return
                code = status_code(e)
                if code in RETRYABLE and self._reconnect:
                    reason = describe(code.name, status_details(e))
                else:
                    raise from_rpc_error(e) from None
            except asyncio.CancelledError:
                if self._is_closed():
                    return
                raise
            finally:
                call.cancel()
            if self._is_closed():
                return
            if not self._reconnect:
                raise UnavailableError(grpc.StatusCode.UNAVAILABLE, f"{self._what}: {reason}")
            out = self._handler.on_broken(reason)
            if out is not None:
                yield out
            await asyncio.sleep(backoff.next_delay())


class AsyncUpdateStream(AsyncStream[StreamUpdate[T, K]], Generic[T, K]):
    """A reconnecting positions or account-summary stream; `view` is the folded set."""

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


class AsyncHealthStream(AsyncStream[Health]):
    """A reconnecting health stream (see `HealthStream`)."""

    def __init__(self, open_call: Callable[[], Any], settings: Settings, reconnect: bool) -> None:
        self._health = HealthHandler()
        super().__init__(open_call, self._health, settings, reconnect, "WatchHealth")

    @property
    def last(self) -> Optional[Health]:
        return self._health.follower.last


class AsyncClient:
    """An asyncio client of gateway-svc, with the options and methods of `Client`.

        async with AsyncClient("127.0.0.1:50051") as client:
            await client.wait_for_ready(timeout=30)
            async for update in client.watch_positions(symbols=["AAPL"]):
                print(update.kind.name, update.freshness, update.upserts)

    Create it inside a running event loop.
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
            self._channel = grpc.aio.secure_channel(s.address, s.credentials(), options=s.channel_options())
        else:
            self._channel = grpc.aio.insecure_channel(s.address, options=s.channel_options())
        self._stub = pb_grpc.GatewayServiceStub(self._channel)
        self._metadata = s.metadata() or None
        self._streams: weakref.WeakSet[AsyncStream[Any]] = weakref.WeakSet()

    @property
    def address(self) -> str:
        return self.settings.address

    def __repr__(self) -> str:
        return f"AsyncClient({self.settings.address!r}, tls={self.settings.tls}, token={'set' if self.settings.has_token else 'none'})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; open streams end (their iterators stop)."""
        for stream in list(self._streams):
            stream._stop()
        await self._channel.close()

    def _track(self, stream: S) -> S:
        self._streams.add(stream)
        return stream

    def _timeout(self, timeout: Optional[float]) -> float:
        return self.settings.timeout if timeout is None else timeout

    async def list_accounts(self, *, timeout: Optional[float] = None) -> Accounts:
        try:
            r = await self._stub.ListAccounts(pb.ListAccountsRequest(), timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return Accounts.from_pb(r)

    async def get_positions(
        self,
        accounts: Union[str, Iterable[str], None] = None,
        symbols: Union[str, Iterable[str], None] = None,
        *,
        timeout: Optional[float] = None,
    ) -> Positions:
        request = pb.GetPositionsRequest(accounts=filter_values(accounts), symbols=filter_values(symbols))
        try:
            r = await self._stub.GetPositions(request, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return Positions.from_pb(r)

    async def get_account_summary(
        self,
        accounts: Union[str, Iterable[str], None] = None,
        tags: Union[str, Iterable[str], None] = None,
        *,
        timeout: Optional[float] = None,
    ) -> AccountSummary:
        request = pb.GetAccountSummaryRequest(accounts=filter_values(accounts), tags=filter_values(tags))
        try:
            r = await self._stub.GetAccountSummary(request, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return AccountSummary.from_pb(r)

    async def get_health(self, *, timeout: Optional[float] = None) -> Health:
        try:
            r = await self._stub.GetHealth(pb.GetHealthRequest(), timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return Health.from_pb(r.health)

    async def wait_for_ready(self, timeout: float = 30.0) -> Health:
        """Waits until the upstream session is READY; see `Client.wait_for_ready`."""
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
                while True:
                    message = await call.read()
                    if not isinstance(message, pb.WatchHealthResponse):
                        break  # grpc.aio.EOF
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
            await asyncio.sleep(min(backoff.next_delay(), max(0.0, deadline - time.monotonic())))

    def watch_positions(
        self,
        accounts: Union[str, Iterable[str], None] = None,
        symbols: Union[str, Iterable[str], None] = None,
        *,
        reconnect: bool = True,
    ) -> AsyncUpdateStream[Position, PositionKey]:
        """See `Client.watch_positions`."""
        request = pb.WatchPositionsRequest(accounts=filter_values(accounts), symbols=filter_values(symbols))

        def open_call() -> Any:
            return self._stub.WatchPositions(request, metadata=self._metadata)

        follower: Follower[Any, Position, PositionKey] = Follower(positions_update, PositionsView, PositionsView())
        return self._track(AsyncUpdateStream(open_call, follower, self.settings, reconnect, "WatchPositions"))

    def watch_account_summary(
        self,
        accounts: Union[str, Iterable[str], None] = None,
        tags: Union[str, Iterable[str], None] = None,
        *,
        reconnect: bool = True,
    ) -> AsyncUpdateStream[SummaryValue, SummaryKey]:
        """See `Client.watch_account_summary`."""
        request = pb.WatchAccountSummaryRequest(accounts=filter_values(accounts), tags=filter_values(tags))

        def open_call() -> Any:
            return self._stub.WatchAccountSummary(request, metadata=self._metadata)

        follower: Follower[Any, SummaryValue, SummaryKey] = Follower(summary_update, SummaryView, SummaryView())
        return self._track(AsyncUpdateStream(open_call, follower, self.settings, reconnect, "WatchAccountSummary"))

    def watch_health(self, *, reconnect: bool = True) -> AsyncHealthStream:
        """See `Client.watch_health`."""

        def open_call() -> Any:
            return self._stub.WatchHealth(pb.WatchHealthRequest(), metadata=self._metadata)

        return self._track(AsyncHealthStream(open_call, self.settings, reconnect))
