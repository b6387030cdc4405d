"""Connection settings shared by `Client` and `AsyncClient`: address, TLS, bearer token, deadlines,
reconnect backoff and channel options."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple, Union

import grpc

__all__ = ["Settings", "resolve"]

DEFAULT_PORT = 50051
#: Default deadline of every unary call, and of a stream's first message, in seconds.
DEFAULT_TIMEOUT = 5.0

#: grpc target forms passed through unchanged.
GRPC_SCHEMES = ("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:")

ChannelOption = Tuple[str, Union[int, str]]
TlsCa = Union[str, "os.PathLike[str]", bytes]


@dataclass(frozen=True)
class Settings:
    """Resolved connection settings. `repr` never shows the token."""

    #: host:port (or a grpc target such as unix:/path) as given to grpc.
    address: str
    #: TLS on the channel.
    tls: bool
    #: PEM roots to trust (None: the system's roots, when `tls`).
    root_certificates: Optional[bytes] = field(default=None, repr=False)
    #: Name to verify the server certificate against, when not the address's host.
    server_name: Optional[str] = None
    #: The `authorization` header value, "Bearer TOKEN", or None.
    authorization: Optional[str] = field(default=None, repr=False)
    #: Deadline of unary calls and of a stream's first message, in seconds.
    timeout: float = DEFAULT_TIMEOUT
    #: Reconnect backoff of streams and of the channel: first delay and ceiling, in seconds.
    backoff_initial: float = 0.2
    backoff_max: float = 2.0
    options: Tuple[ChannelOption, ...] = ()

    @property
    def has_token(self) -> bool:
        return self.authorization is not None

    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        """Call metadata: the bearer token when there is one."""
        return (("authorization", self.authorization),) if self.authorization else ()

    def channel_options(self) -> list[ChannelOption]:
        opts: list[ChannelOption] = [
            # Notice a dead connection to gateway-svc on an idle stream (half-open TCP).
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            # grpc's own reconnect backoff grows to 120 s by default; keep it at ours.
            ("grpc.initial_reconnect_backoff_ms", max(1, int(self.backoff_initial * 1000))),
            ("grpc.max_reconnect_backoff_ms", max(1, int(self.backoff_max * 1000))),
        ]
        if self.server_name:
            opts.append(("grpc.ssl_target_name_override", self.server_name))
        opts.extend(self.options)
        return opts

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates)


def _split_scheme(target: str) -> Tuple[Optional[str], str]:
    for scheme in ("https://", "http://", "grpcs://", "grpc://"):
        if target.lower().startswith(scheme):
            return scheme[:-3].lower(), target[len(scheme) :].rstrip("/")
    return None, target.rstrip("/")


def _host(address: str) -> str:
    if address.startswith("["):
        return address[1 : address.find("]")] if "]" in address else address[1:]
    if address.count(":") == 1:
        return address.split(":", 1)[0]
    return address


def _with_port(address: str) -> str:
    if address.startswith("["):
        return address if "]:" in address else f"{address}:{DEFAULT_PORT}"
    if address.count(":") == 0:
        return f"{address}:{DEFAULT_PORT}"
    if address.count(":") > 1:  # a bare IPv6 address
        return f"[{address}]:{DEFAULT_PORT}"
    return address


def is_loopback(address: str) -> bool:
    """True for unix sockets, localhost and loopback IP addresses."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = _host(address.split("///", 1)[-1]).lower()
    if host in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_ca(tls_ca: TlsCa) -> bytes:
    if isinstance(tls_ca, bytes):
        data = tls_ca
        where = "tls_ca"
    else:
        path = os.fspath(tls_ca)
        with open(path, "rb") as f:
            data = f.read()
        where = f"tls_ca {path}"
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError(f"{where} holds no PEM certificate")
    return data


def resolve(
    target: str,
    *,
    tls: Optional[bool] = None,
    tls_ca: Optional[TlsCa] = None,
    tls_server_name: Optional[str] = None,
    token: Optional[str] = None,
    allow_token_without_tls: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    backoff_initial: float = 0.2,
    backoff_max: float = 2.0,
    options: Sequence[ChannelOption] = (),
) -> Settings:
    """Checks and resolves the constructor arguments of the clients.

    `target` is HOST:PORT (port 50051 when missing), `http://HOST:PORT` (plaintext) or
    `https://HOST:PORT` (TLS), or a grpc target such as `unix:/run/ibgw.sock`. TLS is on for
    https://, or when `tls=True`, or when `tls_ca` is given. `tls_ca` is a PEM file (path) or PEM
    bytes; without it, TLS trusts the system's roots. A bearer `token` is sent on every call; over
    plaintext it is refused unless the address is loopback or `allow_token_without_tls=True`.
    """
    if not target or not target.strip():
        raise ValueError("empty gateway address")
    scheme, rest = _split_scheme(target.strip())
    if scheme in ("https", "grpcs"):
        if tls is False:
            raise ValueError(f"{target}: an https:// address with tls=False")
        secure = True
    elif scheme in ("http", "grpc"):
        if tls or tls_ca is not None:
            raise ValueError(f"{target}: a plaintext http:// address with TLS options; use https://")
        secure = False
    else:
        secure = bool(tls) or (tls is None and tls_ca is not None)
        if tls is False and tls_ca is not None:
            raise ValueError("tls=False with tls_ca")
    if not rest:
        raise ValueError(f"{target}: no host")
    address = rest if rest.startswith(GRPC_SCHEMES) else _with_port(rest)
    if tls_server_name is not None and not secure:
        raise ValueError("tls_server_name without TLS")
    roots = _read_ca(tls_ca) if tls_ca is not None else None

    authorization = None
    if token is not None:
        if not token or any(not (0x21 <= ord(c) <= 0x7E) for c in token):
            raise ValueError("the token must be non-empty visible ASCII (no spaces or control characters)")
        if not secure and not allow_token_without_tls and not is_loopback(address):
            raise ValueError(
                f"a bearer token to {address} without TLS would cross the network in clear; "
                "use https:// or tls_ca, or pass allow_token_without_tls=True for a network that "
                "never leaves the host"
            )
        authorization = f"Bearer {token}"

    if not timeout > 0:
        raise ValueError("timeout must be > 0 seconds")
    if not 0 < backoff_initial <= backoff_max:
        raise ValueError("need 0 < backoff_initial <= backoff_max")
    return Settings(
        address=address,
        tls=secure,
        root_certificates=roots,
        server_name=tls_server_name,
        authorization=authorization,
        timeout=float(timeout),
        backoff_initial=float(backoff_initial),
        backoff_max=float(backoff_max),
        options=tuple(options),
    )
