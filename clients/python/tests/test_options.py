"""Connection options: addresses, TLS, the bearer token (unit tests), and TLS plus a token against
a demo that requires both (when openssl is available to make a certificate)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Iterator, Tuple

import grpc
import pytest

from conftest import Demo, patient
from ibgw_client import AsyncClient, Client, DeadlineExceededError, UnauthenticatedError, UnavailableError
from ibgw_client._config import is_loopback, resolve

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_addresses_and_schemes() -> None:
    assert resolve("127.0.0.1:50051").address == "127.0.0.1:50051"
    assert resolve("gateway").address == "gateway:50051"
    assert resolve("[::1]").address == "[::1]:50051"
    assert resolve("::1").address == "[::1]:50051"
    assert resolve("http://127.0.0.1:1234/").address == "127.0.0.1:1234"
    assert not resolve("http://127.0.0.1:1234").tls
    s = resolve("https://gw.example:443")
    assert s.tls and s.address == "gw.example:443" and s.root_certificates is None
    assert resolve("unix:/run/ibgw.sock").address == "unix:/run/ibgw.sock"
    with pytest.raises(ValueError):
        resolve("")
    with pytest.raises(ValueError):
        resolve("https://gw:443", tls=False)
    with pytest.raises(ValueError):
        resolve("http://gw:80", tls_ca=PEM)
    with pytest.raises(ValueError):
        resolve("gw:80", tls_server_name="gw")


def test_tls_ca_from_bytes_and_file(tmp_path: Path) -> None:
    s = resolve("gw:50051", tls_ca=PEM)
    assert s.tls and s.root_certificates == PEM
    ca = tmp_path / "ca.pem"
    ca.write_bytes(PEM)
    s = resolve("gw:50051", tls_ca=str(ca), tls_server_name="gateway-svc")
    assert s.tls and s.root_certificates == PEM
    assert ("grpc.ssl_target_name_override", "gateway-svc") in s.channel_options()
    assert resolve("gw:50051", tls_ca=ca).root_certificates == PEM
    assert resolve("gw:50051", tls=True).tls
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="no PEM certificate"):
        resolve("gw:50051", tls_ca=tmp_path / "junk.pem")
    with pytest.raises(OSError):
        resolve("gw:50051", tls_ca=tmp_path / "missing.pem")


def test_token_is_sent_as_bearer_and_never_shown() -> None:
    s = resolve("127.0.0.1:50051", token="s3cret-token")
    assert s.metadata() == (("authorization", "Bearer s3cret-token"),)
    assert "s3cret" not in repr(s)
    client = Client("127.0.0.1:50051", token="s3cret-token")
    try:
        assert "s3cret" not in repr(client) and "token=set" in repr(client)
    finally:
        client.close()
    assert resolve("127.0.0.1:50051").metadata() == ()
    for bad in ("", "two words", "line\nbreak", "caf\u00e9"):
        with pytest.raises(ValueError):
            resolve("127.0.0.1:50051", token=bad)


def test_token_in_clear_only_on_loopback_or_when_allowed() -> None:
    for local in ("127.0.0.1:50051", "localhost:50051", "[::1]:50051", "127.3.2.1:1", "unix:/run/ibgw.sock"):
        assert is_loopback(local), local
        resolve(local, token="t")
    with pytest.raises(ValueError, match="in clear"):
        resolve("10.0.0.5:50051", token="t")
    with pytest.raises(ValueError, match="in clear"):
        resolve("http://gateway-svc:50051", token="t")
    assert resolve("gateway-svc:50051", token="t", allow_token_without_tls=True).has_token
    assert resolve("https://gateway-svc:50051", token="t").has_token
    assert resolve("gateway-svc:50051", token="t", tls_ca=PEM).has_token


def test_deadline_and_backoff_options() -> None:
    s = resolve("127.0.0.1:1", timeout=0.25, backoff_initial=0.05, backoff_max=0.5, options=[("grpc.primary_user_agent", "t")])
    assert s.timeout == 0.25
    opts = dict(s.channel_options())
    assert opts["grpc.initial_reconnect_backoff_ms"] == 50
    assert opts["grpc.max_reconnect_backoff_ms"] == 500
    assert opts["grpc.primary_user_agent"] == "t"
    assert "grpc.keepalive_time_ms" in opts
    for bad in (dict(timeout=0), dict(backoff_initial=1.0, backoff_max=0.5), dict(backoff_initial=0)):
        with pytest.raises(ValueError):
            resolve("127.0.0.1:1", **bad)


# --- TLS and a token, end to end ------------------------------------------------------------------

TOKEN = "python-client-test-token-0123456789"


def make_cert(directory: Path, name: str) -> Tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=patient(20),
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Demo, Path, Path]]:
    # Never a silent skip: the test command installs openssl, so its absence is a setup fault.
    assert shutil.which("openssl") is not None, "openssl is needed to make a test certificate (apt-get install openssl)"
    d = tmp_path_factory.mktemp("tls")
    cert, key = make_cert(d, "server")
    other, _ = make_cert(d, "other")
    config = d / "gateway.toml"
    config.write_text(
        f'[grpc]\ntls_cert_path = "{cert}"\ntls_key_path = "{key}"\n\n[auth]\ntoken = "{TOKEN}"\n'
    )
    demo = Demo(extra=["--config", str(config)])
    yield demo, cert, other
    demo.stop()


def test_tls_and_token_against_the_demo(tls_demo: Tuple[Demo, Path, Path]) -> None:
    demo, cert, other = tls_demo
    with Client(demo.grpc, tls_ca=cert, token=TOKEN) as client:
        assert client.wait_for_ready(timeout=patient(10)).is_ready
        assert client.list_accounts().accounts == ("DU1234567", "DU7654321")
    # https:// with the CA, via the name in the certificate.
    _, port = demo.host_port
    with Client(f"https://localhost:{port}", tls_ca=cert.read_bytes(), token=TOKEN) as client:
        assert client.get_positions(symbols="AAPL").positions
    with Client(demo.grpc, tls_ca=cert) as client:
        with pytest.raises(UnauthenticatedError) as e:
            client.list_accounts()
        assert e.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with Client(demo.grpc, tls_ca=cert, token="wrong-token") as client:
        with pytest.raises(UnauthenticatedError):
            client.get_positions()
        # Streams carry the token too: a wrong one is raised, not retried.
        with pytest.raises(UnauthenticatedError):
            next(iter(client.watch_positions()))
    # A certificate the client does not trust: the handshake fails, as UNAVAILABLE.
    with Client(demo.grpc, tls_ca=other, token=TOKEN, timeout=patient(2)) as client:
        with pytest.raises(UnavailableError):
            client.list_accounts()
    # Plaintext against the TLS port fails as well.
    with Client(demo.grpc, token=TOKEN, timeout=patient(2)) as client:
        with pytest.raises((UnavailableError, DeadlineExceededError)):
            client.list_accounts()

    async def use_async() -> None:
        async with AsyncClient(demo.grpc, tls_ca=cert, token=TOKEN) as client:
            assert (await client.wait_for_ready(timeout=patient(10))).is_ready
            stream = client.watch_positions(symbols=["AAPL"])
            first = await asyncio.wait_for(stream.__anext__(), patient(10))
            assert first.items
            await stream.aclose()
        async with AsyncClient(demo.grpc, tls_ca=cert) as client:
            with pytest.raises(UnauthenticatedError):
                await client.list_accounts()

    asyncio.run(use_async())
